#!/usr/bin/env bash
# run.sh — builds sbcore in Release (no sanitizers) and runs the router
# benchmark pinned to one core, with 1 thousand and then 1 million existing
# threads, three measured runs each. Usage: bench/router/run.sh [messages] [contacts]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
messages=${1:-200000}
contacts=${2:-10000}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=OFF >/dev/null
cmake --build "$build" --target sbcore -j2 >/dev/null
cc -std=c11 -O2 -D_GNU_SOURCE -I"$root/core" "$here/bench_router.c" "$build/core/libsbcore.a" \
  $(pkg-config --cflags --libs libuv jansson sqlite3 libcurl) -lpthread -o "$build/bench_router"
dir=$(mktemp -d "${TMPDIR:-/tmp}/sbbench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
for existing in 1000 1000000; do
  rm -f "$dir"/bench.db*
  taskset -c 0 "$build/bench_router" -e "$existing" -n "$messages" -c "$contacts" -r 3 -d "$dir/bench.db"
done
