#!/usr/bin/env bash
# callgrind.sh — instructions per signed webhook on the daemon's loop thread
# and on the store's writer thread, independent of machine load: the Release
# daemon runs under valgrind --tool=callgrind --separate-threads=yes; 200
# warm-up webhooks, counters zeroed, then LIMIT webhooks (wrk -t1 -c16) and
# a dump. CHANNEL=custom (custom.lua, build-bench/ from run.sh) or
# CHANNEL=messenger (the harness's messenger.lua, build-bench-fb/ from
# messenger.sh, with the Graph API double answering profile lookups).
# Note: valgrind hides the CPU's SHA extensions, so HMAC counts are those
# of libcrypto's AVX2 path. KEEP=DIR keeps the callgrind files there.
# Usage: bench/ingest/callgrind.sh [LIMIT=1000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIMIT=${1:-1000} CHANNEL=${CHANNEL:-custom}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
# keeps the callgrind files when asked (channel.sh's cleanup calls it)
on_cleanup() { [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP" && cp "$W"/cg.out.* "$KEEP"/ 2>/dev/null; }; }
. "$ROOT/bench/ingest/channel.sh"
cat >"$W/fixed.lua" <<LUA
dofile("$script")
local limit, got = tonumber(os.getenv("LIMIT")), 0
function response() got = got + 1; if got >= limit then wrk.thread:stop() end end
LUA
start_daemon "$B/switchboard" valgrind --tool=callgrind --separate-threads=yes --fair-sched=yes \
  --callgrind-out-file="$W/cg.out"
RUN_ID=warm LIMIT=200 wrk -t1 -c16 -d10s -s "$W/fixed.lua" "$url" >/dev/null
callgrind_control -z "$D" >/dev/null
RUN_ID=measured LIMIT=$LIMIT wrk -t1 -c16 -d60s -s "$W/fixed.lua" "$url" >/dev/null
callgrind_control -d "$D" >/dev/null
sleep 1
kill -TERM "$D"; wait "$D" || true; D=
n=$(sqlite3 "$W/bench.db" "select count(*) from messages where external_id like '$prefix%'")
# Thread 1 is the loop; the writer is the thread that ran sq__writer.
for f in "$W"/cg.out.1-*; do
  ir=$(awk '/^summary:/ {print $2; exit}' "$f")
  [ "${ir:-0}" -gt 0 ] || continue
  who=thread; grep -q 'fn=.*sq__writer' "$f" && who=writer; grep -q 'fn=.*uv_run' "$f" && who=loop
  echo "$CHANNEL $who: $((ir / n)) instructions per webhook ($n webhooks)"
done
