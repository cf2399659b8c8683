#!/usr/bin/env bash
# bench/ingest/search.sh — what an agent's search costs the webhooks. Store
# reads run in the writer's group transaction (docs/storage.md), so a search
# that scans every message delays the webhooks committed with it. One
# daemon (BIN, default the build tree channel.sh picks) is filled for FILL
# seconds of `wrk -t2 -c64`; then it prints how long one search for a word
# no message holds takes (the whole scan) with nothing else running, and
# the webhooks' req/s and p99 over DURATION seconds without and then with
# an agent searching back to back, with the searches' own latency.
#
# usage: bench/ingest/search.sh [BIN]   env: CHANNEL=custom|messenger FILL=20 DURATION=8
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHANNEL=${CHANNEL:-messenger} FILL=${FILL:-20} DURATION=${DURATION:-8}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
. "$ROOT/bench/ingest/channel.sh"
bin=$(realpath "${1:-$B/switchboard}")
start_daemon "$bin"
RUN_ID=f$RANDOM wrk -t2 -c64 -d"${FILL}s" -s "$script" "$url" >/dev/null
token=$("$bin" tokens create -c "$W/sb.json" --name bench --role agent 2>/dev/null)
search() { # one search; prints its seconds
  curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/api/v1/conversations?q=zqxjv-nowhere&limit=500"
}
messages=$(sqlite3 "$W/bench.db" "SELECT count(*) FROM messages")
echo "# $(date -Is) $CHANNEL channel, $messages messages after ${FILL} s of load, $bin"
alone=$(for _ in 1 2 3 4 5; do search; done | sort -n | sed -n 3p)
echo "one search alone (median of 5): $(python3 -c "print('%.0f ms' % ($alone * 1000))")"
load() { # load NAME: wrk for DURATION s; prints req/s and p99
  RUN_ID=$1$RANDOM wrk -t2 -c64 -d"${DURATION}s" --latency -s "$script" "$url" |
    awk '/Requests\/sec/ {rps=$2} / 99%/ {p99=$2} END {printf "%s req/s, p99 %s", rps, p99}'
}
echo "webhooks alone: $(load q)"
( while :; do search; done >"$W/during" ) &
S=$!
result=$(load s)
kill "$S"; wait "$S" 2>/dev/null || true; S=
echo "webhooks while an agent searches back to back: $result"
python3 - "$W/during" <<'PY'
import sys
t = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
if t:
    print("the searches meanwhile: %d, median %.0f ms, slowest %.0f ms" % (len(t), t[len(t) // 2] * 1000, t[-1] * 1000))
PY
