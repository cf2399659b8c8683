# bench/ingest/channel.sh — sourced by cpu.sh and callgrind.sh: the channel
# under load, by CHANNEL. Needs ROOT, W (a work directory), port and
# PEERS_DIR; sets B (the build tree), channel (its config entry), url,
# script (the wrk script) and prefix (of the message ids a run named
# RUN_ID=measured stores); for Messenger it starts the Graph API double
# (PID in G, stopped by the caller's cleanup).
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
