#!/usr/bin/env bash
# bench/ingest/search.sh — what an agent's search costs, and costs the
# webhooks. One daemon (BIN, default the build tree channel.sh picks) is
# filled for FILL seconds of `wrk -t2 -c64`; then, with nothing else
# running, it prints how long the first search takes (for a word no message
# holds: the whole scan, or the search index's catch-up and lookup), the
# median of the next five, how long the writer took to index the rest once
# idle (when the binary has the index: meta search_indexed reaching the
# newest message), five searches after that, and five for a word a quarter
# of the messages hold; then the webhooks' req/s and p99 over DURATION
# seconds without and then with an agent searching back to back, with the
# searches' own latency.
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
search() { # one search for ${1:-a word no message holds}; prints its seconds
  curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/api/v1/conversations?q=${1:-zqxjv-nowhere}&limit=500"
}
ms() { python3 -c "print('%.0f ms' % ($1 * 1000))"; }
median5() { for _ in 1 2 3 4 5; do search "$@"; done | sort -n | sed -n 3p; }
watermark() { # the search index's watermark and the newest message id, or nothing without the index
  sqlite3 "$W/bench.db" "SELECT value, (SELECT max(id) FROM messages) FROM meta WHERE key = 'search_indexed'" 2>/dev/null || true
}
messages=$(sqlite3 "$W/bench.db" "SELECT count(*) FROM messages")
echo "# $(date -Is) $CHANNEL channel, $messages messages after ${FILL} s of load, $bin"
echo "index before the first search (watermark|newest id): $(watermark)"
echo "the first search alone: $(ms "$(search)")"
echo "the next five alone (median): $(ms "$(median5)")"
if [ -n "$(watermark)" ]; then
  t0=$(date +%s.%N)
  while :; do IFS='|' read -r w n <<<"$(watermark)"; [ "$w" = "$n" ] && break; sleep 0.2; done
  echo "the idle writer indexed the rest in: $(python3 -c "print('%.1f s' % ($(date +%s.%N) - $t0))") (database file now $(du -k "$W/bench.db" | cut -f1) kB)"
  echo "five alone once caught up (median): $(ms "$(median5)")"
fi
echo "five alone for 'shipping', in a quarter of the messages (median): $(ms "$(median5 shipping)")"
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
