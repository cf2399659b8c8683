#!/usr/bin/env bash
# bench/ingest/anatomy.sh — where a request's time goes in the store, and
# what the load looks like in the database: one daemon (BIN, default the
# build tree channel.sh picks) under `wrk -t2 -c64` for DURATION after a
# 3 s warm-up. Prints, from /metrics before and after: flushes per second,
# requests per flush, the mean flush and how busy the syncer was, the mean
# wait from submission to durable, the disk's flush requests per flush of
# the WAL (/sys/block), context switches per request by thread (waits for
# work or I/O, and preemptions); then (STRACE=1, a second short
# run under strace, which slows it) system calls per request by thread and
# name; then (PERF=1, a third run under perf) where the loop thread's time
# (or PERF_THREAD's: sb-writer, sb-syncer, ...) goes: the kernel by system
# call and by the function a sample was in, user space by function; last, the conversations,
# contacts and messages in the database.
#
# usage: bench/ingest/anatomy.sh [BIN]   env: CHANNEL=custom|messenger DURATION=8 STRACE=0 PERF=0 PERF_THREAD=loop
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHANNEL=${CHANNEL:-messenger} DURATION=${DURATION:-8} STRACE=${STRACE:-0} PERF=${PERF:-0}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
. "$ROOT/bench/ingest/channel.sh"
bin=$(realpath "${1:-$B/switchboard}")
start_daemon "$bin"
RUN_ID=w$RANDOM wrk -t2 -c64 -d3s -s "$script" "$url" >/dev/null
metrics() { curl -s "http://127.0.0.1:$port/metrics" | grep -E '^switchboard_store_(commit_seconds|wal_sync_seconds)_(sum|count) '; }
# the daemon's threads: id, name, context switches so far (voluntary, involuntary)
threads() { for t in /proc/"$D"/task/*; do echo "${t##*/} $(cat "$t/comm") $(awk '/ctxt_switches/ {printf "%s ", $2}' "$t/status")"; done; }
# the block device under the database: its flush requests (/sys/block/*/stat field 16)
blk=/sys/class/block/$(basename "$(df --output=source "$W" | tail -1)")/stat
devflushes() { awk '{print (NF >= 16 ? $16 : "NA")}' "$blk" 2>/dev/null || echo NA; }
metrics >"$W/before"
threads >"$W/cs-before"
f0=$(devflushes)
t0=$(date +%s.%N)
RUN_ID=a$RANDOM$RANDOM wrk -t2 -c64 -d"${DURATION}s" -s "$script" "$url" >/dev/null
t1=$(date +%s.%N)
metrics >"$W/after"
threads >"$W/cs-after"
f1=$(devflushes)
echo "# $(date -Is) $CHANNEL channel, wrk -t2 -c64 -d${DURATION}s, $bin"
python3 - "$W/before" "$W/after" "$t0" "$t1" "$W/cs-before" "$W/cs-after" "$f0" "$f1" <<'PY'
import sys
def load(p): return {l.split()[0]: float(l.split()[1]) for l in open(p)}
b, a = load(sys.argv[1]), load(sys.argv[2])
d = {k: a[k] - b[k] for k in a}
secs = float(sys.argv[4]) - float(sys.argv[3])
reqs, flushes = d["switchboard_store_commit_seconds_count"], d["switchboard_store_wal_sync_seconds_count"]
print("%.0f requests/s; %.0f flushes/s, %.1f requests per flush; a flush %.0f µs on average, the syncer busy %.0f %%;"
      " submission to durable %.2f ms on average" % (
      reqs / secs, flushes / secs, reqs / flushes, d["switchboard_store_wal_sync_seconds_sum"] / flushes * 1e6,
      d["switchboard_store_wal_sync_seconds_sum"] / secs * 100, d["switchboard_store_commit_seconds_sum"] / reqs * 1e3))
if "NA" not in sys.argv[7:9]:
    print("the disk's flush requests per fdatasync of the WAL: %.2f (the whole machine's, the checkpoints' among them)"
          % ((int(sys.argv[8]) - int(sys.argv[7])) / flushes))
def switches(p): return {l.split()[1]: [int(x) for x in l.split()[2:4]] for l in open(p)}
sb, sa = switches(sys.argv[5]), switches(sys.argv[6])
print("context switches per request (waits / preemptions): " + ", ".join(
    "%s %.2f / %.2f" % (k.replace("switchboard", "loop"), (sa[k][0] - sb[k][0]) / reqs, (sa[k][1] - sb[k][1]) / reqs)
    for k in sorted(sa) if k in sb))
PY
if [ "$STRACE" = 1 ]; then
  strace -f -qq -o "$W/strace.txt" -p "$D" &
  S=$!
  sleep 0.5
  threads >"$W/threads.txt"
  n=$(RUN_ID=s$RANDOM$RANDOM wrk -t2 -c64 -d5s -s "$script" "$url" | awk '/requests in/ {print $1}')
  kill -INT "$S"; wait "$S" || true; S=
  echo "system calls per request under strace ($n requests), by thread:"
  awk -v n="$n" 'NR == FNR {name[$1] = $2; next}
    { call = $2; sub(/\(.*/, "", call); if (call ~ /^[a-z_0-9]+$/) c[name[$1] " " call]++ }
    END { for (k in c) if (c[k] / n >= 0.01) printf "  %-30s %.2f\n", k, c[k] / n }' "$W/threads.txt" "$W/strace.txt" | sort
fi
if [ "$PERF" = 1 ]; then
  thread=${PERF_THREAD:-loop} tid=$D # the loop thread's id is the process id
  if [ "$thread" != loop ]; then
    tid=$(for t in /proc/"$D"/task/*; do [ "$(cat "$t/comm")" != "$thread" ] || basename "$t"; done | head -1)
    [ -n "$tid" ] || { echo "no thread named $thread" >&2; exit 1; }
  fi
  perf record -q -e cpu-clock -F 4000 -g -t "$tid" -o "$W/perf.data" -- sleep 4 >/dev/null 2>&1 &
  P=$!
  RUN_ID=p$RANDOM$RANDOM wrk -t2 -c64 -d5s -s "$script" "$url" >/dev/null
  wait "$P" || true
  echo "the $thread thread's time under perf (cpu-clock samples), by where it was:"
  perf script -i "$W/perf.data" -F ip,sym,dso 2>/dev/null | python3 -c '
import sys, collections, re
where, user, leaf, total = collections.Counter(), collections.Counter(), collections.Counter(), 0
for sample in sys.stdin.read().split("\n\n"):
    frames = [l.split() + ["?"] for l in sample.strip().splitlines()]
    if not frames: continue
    total += 1
    names = [f[1] for f in frames]
    if frames[0][0].startswith("ffffffff"): leaf[names[0]] += 1
    if "do_syscall_64" in names:  # the frame it called names the system call
        where["kernel, " + names[names.index("do_syscall_64") - 1]] += 1
    elif frames[0][0].startswith("ffffffff"):
        where["kernel, interrupts and scheduling"] += 1
    else:
        where["user space"] += 1
        user[names[0] if names[0] != "[unknown]" else frames[0][-2]] += 1  # else its library
for k, v in where.most_common(8): print("  %-36s %4.1f %%" % (k, 100.0 * v / total))
print("the kernel by the function a sample was in (share of all the thread time):")
for k, v in leaf.most_common(6): print("  %-36s %4.1f %%" % (k[:36], 100.0 * v / total))
print("user space by function (share of all the thread time):")
for k, v in user.most_common(16): print("  %-36s %4.1f %%" % (k[:36], 100.0 * v / total))
alloc = sum(v for k, v in user.items() if re.match(r"(__libc_|_int_|__GI___libc_)?(malloc|calloc|realloc|free|cfree)\b|malloc_consolidate|unlink_chunk|tcache_", k))
print("  %-36s %4.1f %%" % ("(glibc malloc and free, in all)", 100.0 * alloc / total))
'
fi
kill "$D"; wait "$D" || true; D=
sqlite3 "$W/bench.db" "SELECT printf('in the database: %d conversations, %d contacts, %d messages',
  (SELECT count(*) FROM threads), (SELECT count(*) FROM contacts), (SELECT count(*) FROM messages));"
