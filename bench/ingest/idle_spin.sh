#!/usr/bin/env bash
# bench/ingest/idle_spin.sh — what the host's vCPU wakeups cost us: cpu.sh
# rounds alternate without and with one SCHED_IDLE busy loop per CPU. Such
# a loop runs only when nothing else would and any wakeup preempts it, so
# no vCPU halts while we wait (for a flush, a hand-over) and no wakeup has
# to wait for the host to run a halted vCPU again. Not something the
# daemon does; a probe of where the slow phases' time goes.
#
# usage: bench/ingest/idle_spin.sh [BIN]   (default: build-bench-fb/switchboard)
# env:   as cpu.sh; CHANNEL=messenger, DURATION=3 and ROUNDS=4 unless set
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CHANNEL=${CHANNEL:-messenger} DURATION=${DURATION:-3}
BIN=${1:-$ROOT/build-bench-fb/switchboard}
spinners=()
stop_spinners() { [ ${#spinners[@]} -eq 0 ] || { kill "${spinners[@]}" 2>/dev/null; wait "${spinners[@]}" 2>/dev/null || true; }; spinners=(); }
trap stop_spinners EXIT
for round in $(seq "${ROUNDS:-4}"); do
  for mode in plain spin; do
    if [ "$mode" = spin ]; then
      for _ in $(seq "$(nproc)"); do chrt -i 0 sh -c 'while :; do :; done' & spinners+=($!); done
    fi
    echo "$mode: $(ROUNDS=1 "$ROOT/bench/ingest/cpu.sh" "$BIN" | tail -1)"
    stop_spinners
  done
done
