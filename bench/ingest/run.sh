#!/usr/bin/env bash
# bench/ingest/run.sh — end-to-end signed webhook ingest: HTTP → plugin
# signature check → router → durable group commit (SQLite WAL, one
# fdatasync per group) → 200, under wrk load with a unique message id per
# request, beside nginx `return 200` from the peer harness in the same run.
# Then checks every acknowledged message is stored exactly once, and
# measures the daemon's idle memory with every bundled plugin loaded.
#
# usage: bench/ingest/run.sh            (as root on Debian 12; installs wrk, nginx-light)
# env:   DURATION=10s WARMUP=3s THREADS=2 CONNS=64 REPEAT=3 USERS=100
#        PEERS_DIR=../shared/bench-peers (the team's harness; copied, never modified)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/ingest
DURATION=${DURATION:-10s} WARMUP=${WARMUP:-3s} THREADS=${THREADS:-2} CONNS=${CONNS:-64} REPEAT=${REPEAT:-3}
export USERS=${USERS:-100} SECRET=bench-secret
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}

for p in wrk nginx-light sqlite3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light sqlite3; break; }
done
"$ROOT/scripts/deps.sh" build
cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=OFF >/dev/null
cmake --build "$ROOT/build-bench" -j "$(nproc)" >/dev/null
SB=$ROOT/build-bench/switchboard

WORK=$(mktemp -d /tmp/sb-ingest.XXXXXX)
DAEMON=
cleanup() { [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; return 1; }

echo "# $(date -Is) $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION --latency; $REPEAT runs each; unique ids"

# --- the anchor: nginx `return 200`, from the team's harness ----------------
if [ -d "$PEERS_DIR" ]; then
  cp -r "$PEERS_DIR" "$WORK/peers"
  (cd "$WORK/peers" && OUT="$WORK/peers-out" DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNS=$CONNS \
    REPEAT=$REPEAT ./run.sh nginx >/dev/null 2>&1) || echo "# nginx peer run failed"
  [ -f "$WORK/peers-out/summary.tsv" ] && grep -v '^peer' "$WORK/peers-out/summary.tsv" |
    awk -F'\t' '{printf "nginx        run %s: %6d req/s  p50 %6.2f ms  p99 %6.2f ms\n", $2, $3, $4, $6}'
else
  echo "# $PEERS_DIR not found: no nginx anchor"
fi

# --- switchboard: the custom channel, durable ------------------------------
port=$(free_port)
cat >"$WORK/sb.json" <<JSON
{"listen": "127.0.0.1:$port", "store": "sqlite:$WORK/bench.db", "log_level": "warn",
 "plugins": {"dirs": ["$ROOT/build-bench/plugins"], "allow": ["custom"]},
 "channels": [{"name": "bench", "plugin": "custom",
   "credentials": {"webhook_url": "http://127.0.0.1:9/out", "signing_secret": "$SECRET"}}]}
JSON
"$SB" run -c "$WORK/sb.json" >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
wait_http "http://127.0.0.1:$port/healthz"
url=http://127.0.0.1:$port/hooks/bench/messages
rows() { sqlite3 "$WORK/bench.db" "select count(*) from messages where direction = 'in'"; }
RUN_ID=warm wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$HERE/custom.lua" "$url" >/dev/null
total_ok=0
for r in $(seq 1 "$REPEAT"); do
  before=$(rows)
  out=$(RUN_ID="r$r-$(date +%s%N)" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s --latency -s "$HERE/custom.lua" "$url")
  sleep 0.5
  after=$(rows)
  j=$(sed -n 's/^WRKJSON //p' <<<"$out")
  python3 - "$r" "$j" "$((after - before))" <<'PY'
import json, sys
r, j, stored = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
bad = j["err_status"] + j["err_connect"] + j["err_read"] + j["err_write"] + j["err_timeout"]
acked = j["requests"] - j["err_status"]
print("switchboard  run %s: %6d req/s  p50 %6.2f ms  p99 %6.2f ms  acknowledged %d, stored %d, errors %d%s" % (
    r, j["rps"], j["lat_p50_ms"], j["lat_p99_ms"], acked, stored, bad,
    "" if stored >= acked else "  ** LOST %d **" % (acked - stored)))
PY
done
dups=$(sqlite3 "$WORK/bench.db" "select count(*) - count(distinct external_id) from messages where direction = 'in'")
echo "stored twice: $dups (every external id at most once)"
echo "group commit: $(curl -s "http://127.0.0.1:$port/metrics" | awk '/^switchboard_store_transactions_total/ {t=$2} /^switchboard_inbound_messages_total/ {m+=$2} END {printf "%d messages in %d transactions\n", m, t}')"
kill -TERM "$DAEMON"
wait "$DAEMON" || true
DAEMON=

# --- idle memory with every bundled plugin loaded ---------------------------
port=$(free_port)
cat >"$WORK/idle.json" <<JSON
{"listen": "127.0.0.1:$port", "store": "sqlite:$WORK/idle.db", "log_level": "warn",
 "plugins": {"dirs": ["$ROOT/build-bench/plugins"], "allow": ["*"]}}
JSON
"$SB" run -c "$WORK/idle.json" >"$WORK/idle.log" 2>&1 &
DAEMON=$!
wait_http "http://127.0.0.1:$port/healthz"
sleep 2
plugins=$(cd "$ROOT/build-bench/plugins" && ls *.so | tr '\n' ' ')
echo "idle memory with all bundled plugins loaded ($plugins): $(awk '/VmRSS/ {print $2, $3}' /proc/$DAEMON/status) RSS"
