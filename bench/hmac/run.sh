#!/usr/bin/env bash
# bench/hmac/run.sh — µs per HMAC-SHA256 of a webhook body, the host's
# hmac_sha256 beside libsodium and libcrypto's EVP_MAC (bench_hmac.c).
# Builds sbcore in Release into build-bench/ (as bench/router/run.sh does).
# usage: bench/hmac/run.sh [MACS=1000000] [BODY_BYTES=330]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/scripts/deps.sh" build
cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build-bench" -j "$(nproc)" --target sbcore >/dev/null
cc -O2 -Wall -Wextra -I"$ROOT/core" "$ROOT/bench/hmac/bench_hmac.c" "$ROOT/build-bench/core/libsbcore.a" \
  -lcrypto -lsodium -o "$ROOT/build-bench/bench_hmac"
"$ROOT/build-bench/bench_hmac" "$@"
