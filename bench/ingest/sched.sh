#!/usr/bin/env bash
# bench/ingest/sched.sh — how the two cores are shared under load: one
# daemon (BIN, default the build tree channel.sh picks) under `wrk -t2
# -c64`, and after a 3 s warm-up one second of the kernel's scheduler
# events (`perf sched record`). Prints, per thread that ran: its run time,
# how often it was switched in, and its scheduling delay (woken but
# waiting for a core); then how long the cores sat idle, and how much of
# that idle time a thread was waiting in the other core's queue (time a
# better placement would have used).
#
# usage: bench/ingest/sched.sh [BIN]   env: CHANNEL=custom|messenger (default messenger)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHANNEL=${CHANNEL:-messenger}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
. "$ROOT/bench/ingest/channel.sh"
bin=$(realpath "${1:-$B/switchboard}")
start_daemon "$bin"
RUN_ID=s$RANDOM$RANDOM wrk -t2 -c64 -d6s -s "$script" "$url" >"$W/wrk.txt" &
S=$!
sleep 3
perf sched record -q -o "$W/sched.data" -- sleep 1 >/dev/null 2>&1
wait "$S"; S=
echo "# $(date -Is) $CHANNEL channel, wrk -t2 -c64, $bin: $(awk '/Requests\/sec/ {print $2}' "$W/wrk.txt") req/s"
perf sched timehist -i "$W/sched.data" 2>/dev/null | python3 -c '
import sys, bisect, collections
idle, waits = [], []
run, delay, ins = collections.Counter(), collections.Counter(), collections.Counter()
for line in sys.stdin.read().splitlines()[3:]:
    f = line.split()
    try:  # time [cpu] task... wait sch_delay run, the last three in ms
        t, cpu, ms_delay, ms_run = float(f[0]), int(f[1].strip("[]")), float(f[-2]), float(f[-1])
    except (ValueError, IndexError):
        continue
    task = " ".join(f[2:-3])
    start = t - ms_run / 1e3
    if task.startswith("<idle>"):
        idle.append((start, t, cpu))
        continue
    run[task] += ms_run; delay[task] += ms_delay; ins[task] += 1
    if ms_delay > 0: waits.append((start - ms_delay / 1e3, start, cpu, task))
waits.sort()
starts = [w[0] for w in waits]
wasted, by = 0.0, collections.Counter()
for s, e, cpu in idle:  # union of the other core queue waits inside this idle stretch
    segs = []
    for w in waits[bisect.bisect_left(starts, s - 0.01):]:
        if w[0] > e: break
        a, b = max(s, w[0]), min(e, w[1])
        if w[2] != cpu and b > a:
            segs.append((a, b)); by[w[3]] += b - a
    end = None
    for a, b in sorted(segs):
        if end is None or a > end: wasted += b - a; end = b
        elif b > end: wasted += b - end; end = b
span = max(e for _, e, _ in idle) - min(s for s, _, _ in idle) if idle else 0
print("%-34s %10s %8s %16s" % ("thread", "run ms", "runs", "sched delay ms"))
for task, ms in run.most_common(10):
    print("%-34s %10.1f %8d %16.1f" % (task[:34], ms, ins[task], delay[task]))
print("over %.2f s: the cores idle %.1f ms in all, %.1f ms of it while a thread waited in the other core queue (%s)" % (
    span, sum(e - s for s, e, _ in idle) * 1e3, wasted * 1e3,
    ", ".join("%s %.1f" % (k, v * 1e3) for k, v in by.most_common(4))))
'
