#!/usr/bin/env bash
# callgrind.sh — instructions per routed message, independent of machine load:
# bench_router under valgrind --tool=callgrind twice (N messages, then none),
# (total(N) - total(0)) / N, all threads (loop, writer, checkpointer).
# Usage: bench/router/callgrind.sh [messages=40000] [contacts=2000] [existing=1000]
# (contacts = 5 % of messages: the README's mix). Needs build-bench/bench_router
# (bench/router/run.sh builds it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-40000}
c=${2:-2000}
e=${3:-1000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/sbcg.XXXXXX")
trap 'rm -rf "$dir"' EXIT
total() {
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.$1" "$root/build-bench/bench_router" \
    -e "$e" -n "$1" -c "$c" -d "$dir/db.$1" >/dev/null 2>&1
  awk '/^summary:/ {print $2; exit}' "$dir/cg.$1"
}
a=$(total 0)
b=$(total "$n")
echo "messages=$n contacts=$c existing=$e instructions_per_message=$(( (b - a) / n ))"
