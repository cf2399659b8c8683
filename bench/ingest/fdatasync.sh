#!/usr/bin/env bash
# bench/ingest/fdatasync.sh — the disk's floor for one group commit on an
# otherwise idle machine: 16 KiB overwritten and fdatasync'd in a loop, by
# 1, 2 and 4 threads at once (does flushing in parallel buy anything?).
# The file lives beside the repository (same file system as a daemon
# started from it). usage: bench/ingest/fdatasync.sh   env: SECONDS_EACH=5
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/sb-fdatasync.XXXXXX)
trap 'rm -rf "$W"; rm -f "$ROOT/.fdatasync-bench.dat"' EXIT
gcc -O2 -pthread -o "$W/fdatasync" "$ROOT/bench/ingest/fdatasync.c"
echo "# $(date -Is) $(df --output=source,fstype "$ROOT" | tail -1)"
for n in 1 2 4; do "$W/fdatasync" "$ROOT/.fdatasync-bench.dat" "$n" "${SECONDS_EACH:-5}"; done
