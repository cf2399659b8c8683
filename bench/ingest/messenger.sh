#!/usr/bin/env bash
# bench/ingest/messenger.sh — the team's peer harness (../shared/bench-peers,
# copied, unchanged) with its Messenger-shaped load (wrk + messenger.lua:
# unique mid per request, X-Hub-Signature-256 under APP_SECRET) against our
# daemon's Messenger channel, beside nginx `return 200` in the same run.
# The Graph API double answers the plugin's User Profile lookups.
#
# nginx runs before and after ours (the harness runs its peers in the order
# given: PEERS, default "nginx target nginx"), since this VM's speed drifts
# within minutes; each of our runs is then set against the median nginx run.
#
# usage: bench/ingest/messenger.sh     env: DURATION WARMUP THREADS CONNS REPEAT (harness knobs), PEERS
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
export DURATION=${DURATION:-10s} WARMUP=${WARMUP:-3s} THREADS=${THREADS:-2} CONNS=${CONNS:-64} REPEAT=${REPEAT:-3}
export APP_SECRET=bench-app-secret PAGE_ID=100000000000001

for p in wrk nginx-light sqlite3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light sqlite3; break; }
done
"$ROOT/scripts/deps.sh" test
B=$ROOT/build-bench-fb # Release, with the test tree for the Graph double
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=ON >/dev/null
cmake --build "$B" -j "$(nproc)" --target switchboard plugin_messenger graph_double_server >/dev/null

WORK=$(mktemp -d /tmp/sb-ingest-fb.XXXXXX)
DOUBLE=
cleanup() { [ -n "$DOUBLE" ] && kill "$DOUBLE" 2>/dev/null && wait "$DOUBLE" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

"$B/tests/graph_double_server" --token bench-page-token --page "$PAGE_ID" \
  --port-file "$WORK/double.port" >"$WORK/double.log" 2>&1 &
DOUBLE=$!
for _ in $(seq 50); do [ -s "$WORK/double.port" ] && break; sleep 0.1; done
gport=$(cat "$WORK/double.port")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/sb.json" <<JSON
{"listen": "127.0.0.1:$port", "store": "sqlite:$WORK/bench.db", "log_level": "warn",
 "plugins": {"dirs": ["$B/plugins"], "allow": ["messenger"]},
 "channels": [{"name": "messenger", "plugin": "messenger",
   "credentials": {"page_id": "$PAGE_ID", "page_access_token": "bench-page-token", "app_secret": "$APP_SECRET",
                   "verify_token": "bench-verify", "graph_api_base": "http://127.0.0.1:$gport/v21.0"}}]}
JSON

cp -r "$PEERS_DIR" "$WORK/peers"
cd "$WORK/peers"
TARGET_URL=http://127.0.0.1:$port/hooks/messenger \
TARGET_CMD="$B/switchboard run -c $WORK/sb.json" \
TARGET_ROWS_CMD="sqlite3 $WORK/bench.db \"select count(*) from messages where direction = 'in'\"" \
OUT="$WORK/out" ./run.sh ${PEERS:-nginx target nginx} >"$WORK/harness.log" 2>&1 || { tail -20 "$WORK/harness.log"; exit 1; }
echo "# from $(sed -n '1s/^# \([^ ]*\).*/\1/p' "$WORK/out/env.txt") to $(date -Is)"
column -t -s $'\t' "$WORK/out/summary.tsv"
python3 - "$WORK/out/summary.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
nginx, ours = [float(r[2]) for r in rows if r[0] == "nginx"], [float(r[2]) for r in rows if r[0] == "target"]
if nginx and ours:
    m = statistics.median(nginx)
    print("of the median nginx run (%.0f req/s): %s" % (m, " ".join("%.0f %%" % (100 * x / m) for x in ours)))
PY
echo "stored twice: $(sqlite3 "$WORK/bench.db" "select count(*) - count(distinct external_id) from messages where direction = 'in'")"
