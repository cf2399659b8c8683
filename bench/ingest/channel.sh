# bench/ingest/channel.sh — sourced by cpu.sh, anatomy.sh, callgrind.sh,
# sched.sh and stages.sh: their scratch directory and the channel under load, by CHANNEL.
# Needs ROOT and PEERS_DIR. Sets W (a work directory, removed on exit), port
# (a free loopback port) and the PIDs the exit trap stops: D (the daemon,
# started by start_daemon), S (the caller's tracer or load) and G (the Graph API double,
# started here for Messenger); a caller's on_cleanup function, if any, runs
# after they stop and before W goes. Then sets B (the build tree), channel
# (its config entry), url, script (the wrk script) and prefix (of the
# message ids a run named RUN_ID=measured stores), and start_daemon.
W=$(mktemp -d "/tmp/sb-ingest-$(basename "$0" .sh).XXXXXX")
D= G= S=
cleanup() {
  for pid in "$S" "$D" "$G"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  if declare -F on_cleanup >/dev/null; then on_cleanup; fi
  rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

if [ "$CHANNEL" = messenger ]; then
  B=$ROOT/build-bench-fb
  export APP_SECRET=bench-app-secret PAGE_ID=100000000000001
  "$B/tests/graph_double_server" --token bench-page-token --page "$PAGE_ID" --port-file "$W/double.port" \
    >"$W/double.log" 2>&1 &
  G=$!
  for _ in $(seq 50); do [ -s "$W/double.port" ] && break; sleep 0.1; done
  channel="{\"name\": \"messenger\", \"plugin\": \"messenger\", \"credentials\": {\"page_id\": \"$PAGE_ID\",
    \"page_access_token\": \"bench-page-token\", \"app_secret\": \"$APP_SECRET\", \"verify_token\": \"v\",
    \"graph_api_base\": \"http://127.0.0.1:$(cat "$W/double.port")/v21.0\"}}"
  url=http://127.0.0.1:$port/hooks/messenger script=$PEERS_DIR/messenger.lua prefix=m_measured_
else
  B=$ROOT/build-bench
  export SECRET=bench-secret
  channel="{\"name\": \"bench\", \"plugin\": \"custom\", \"credentials\": {\"webhook_url\": \"http://127.0.0.1:9/out\",
    \"signing_secret\": \"$SECRET\"}}"
  url=http://127.0.0.1:$port/hooks/bench/messages script=$ROOT/bench/ingest/custom.lua prefix=b-measured-
fi

# start_daemon BIN [LAUNCHER...]: the channel's config in $W/sb.json (the
# store $W/bench.db, the plugins beside BIN, and SB_EXTRA: more top-level
# members, each followed by a comma), BIN started on it (under LAUNCHER,
# e.g. valgrind, if given) as D; returns once it answers /healthz.
start_daemon() {
  local bin=$1
  shift
  echo "{\"listen\": \"127.0.0.1:$port\", \"store\": \"sqlite:$W/bench.db\", \"log_level\": \"warn\", ${SB_EXTRA:-}
    \"plugins\": {\"dirs\": [\"$(dirname "$bin")/plugins\"], \"allow\": [\"$CHANNEL\"]}, \"channels\": [$channel]}" >"$W/sb.json"
  "$@" "$bin" run -c "$W/sb.json" >"$W/daemon.log" 2>&1 &
  D=$!
  for _ in $(seq 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
}
