#!/usr/bin/env bash
# bench/ingest/cpu.sh — what one signed webhook costs the daemon, thread by
# thread, beside the req/s it reached. Throughput on this shared VM moves
# ±30 % from minute to minute; CPU time per request moves far less, so
# changes are compared by it. Binaries alternate, each run on a fresh
# database: the daemon (its threads named: loop "switchboard", "sb-writer",
# "sb-syncer", "sb-checkpoint") under `wrk -t2 -cCONNS` for DURATION after a
# warm-up of WARMUP seconds (a longer one fills the database first, as the
# harness's earlier runs do), CPU read from /proc/PID/task/*/stat before
# and after.
#
# usage: bench/ingest/cpu.sh [BIN...]   (default: build-bench/switchboard, built by run.sh)
# env:   CHANNEL=custom|messenger  DURATION=10  ROUNDS=1  USERS=100  CONNS=64  WARMUP=3
#        (messenger: the harness's messenger.lua, the Graph double from build-bench-fb/)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHANNEL=${CHANNEL:-custom} DURATION=${DURATION:-10} ROUNDS=${ROUNDS:-1} CONNS=${CONNS:-64} WARMUP=${WARMUP:-3}
export USERS=${USERS:-100}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
[ $# -gt 0 ] || set -- "$ROOT/build-bench/switchboard"
bins=(); for b in "$@"; do bins+=("$(realpath "$b")"); done
. "$ROOT/bench/ingest/channel.sh"

# Per thread name: utime + stime in clock ticks, one "name ticks" line each;
# then the process's bytes written and write calls (/proc/PID/io: wchar,
# syscw), as "io:wchar N" and "io:syscw N".
ticks() { for t in /proc/"$1"/task/*; do
  echo "$(cat "$t/comm") $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "$t/stat")"; done | sort
  awk '$1 == "wchar:" || $1 == "syscw:" {sub(":", "", $1); print "io:" $1, $2}' /proc/"$1"/io
  awk '/^cpu / {print "cpu:busy", $2 + $3 + $4 + $7 + $8; print "cpu:all", $2 + $3 + $4 + $5 + $6 + $7 + $8
                print "cpu:idle", $5 + $6; print "cpu:steal", $9}' /proc/stat; }

echo "# $(date -Is) $CHANNEL channel, wrk -t2 -c$CONNS -d${DURATION}s; µs of CPU per request by thread, the machine's busy share (as the harness counts it: steal left out), and of all its time idle (with iowait) and stolen by the host"
for round in $(seq "$ROUNDS"); do
  for bin in "${bins[@]}"; do
    rm -f "$W"/bench.db*
    start_daemon "$bin"
    RUN_ID=w$round$RANDOM wrk -t2 -c64 -d"${WARMUP}s" -s "$script" "$url" >/dev/null
    ticks "$D" >"$W/before"
    out=$(RUN_ID=r$round$RANDOM$RANDOM wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$url")
    ticks "$D" >"$W/after"
    kill "$D"; wait "$D" || true; D=
    python3 - "$W/before" "$W/after" "$(sed -n 's/^WRKJSON //p' <<<"$out")" "$bin" <<'PY'
import json, os, sys, collections
def load(p):
    c = collections.Counter()
    for line in open(p):
        name, t = line.rsplit(None, 1); c[name] += int(t)
    return c
b, a, j = load(sys.argv[1]), load(sys.argv[2]), json.loads(sys.argv[3])
hz = os.sysconf("SC_CLK_TCK")
bad = j["err_status"] + j["err_connect"] + j["err_read"] + j["err_write"] + j["err_timeout"]
io = {k[3:]: (a.pop(k) - b.pop(k)) / j["requests"] for k in list(a) if k.startswith("io:")}
cpu = {k[4:]: a.pop(k) - b.pop(k) for k in list(a) if k.startswith("cpu:")}
per = {k: (a[k] - b[k]) / hz * 1e6 / j["requests"] for k in a}
parts = " ".join("%s %.1f" % (k.replace("switchboard", "loop"), v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05)
print("%-28s %6d req/s  p99 %6.2f ms  errors %d  total %.1f µs/req: %s  |  written %.0f B, %.2f writes /req  |  busy %.0f %%, idle %.0f %%, steal %.0f %%" % (
    sys.argv[4][-28:], j["rps"], j["lat_p99_ms"], bad, sum(per.values()), parts, io["wchar"], io["syscw"],
    100.0 * cpu["busy"] / max(1, cpu["all"]), 100.0 * cpu["idle"] / max(1, cpu["all"] + cpu["steal"]),
    100.0 * cpu["steal"] / max(1, cpu["all"] + cpu["steal"])))
PY
  done
done
