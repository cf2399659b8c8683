#!/usr/bin/env bash
# bench/ingest/experiment.sh — an experiment against the product, binaries
# alternating under cpu.sh: the working tree with bench/ingest/NAME.patch
# applied, built into build-bench-NAME/, beside the product's own Release
# build. The patches never ship:
#
#   nofsync       what the wait for durability costs in req/s, at most: no
#                 syncer and SQLite at synchronous=OFF (nothing acknowledged
#                 is durable)
#   second_flush  a second syncer with its own descriptor of the WAL; a
#                 commit may start a second flush beside one that has run
#                 for SB_SECOND_FLUSH_US (default 300) µs
#   spin          while requests are out in the store, the loop polls for
#                 events instead of waiting (yielding its core to any other
#                 runnable thread) until SB_SPIN_US (default 200) µs pass
#                 without progress
#   sync_wake     the syncer wakes the loop through a pipe (a sync wakeup:
#                 the scheduler may put the loop on the syncer's core)
#                 instead of libuv's eventfd
#   wal_gather    a VFS that gathers a commit's WAL writes into one write,
#                 made when the commit frame is complete
#   loop_nice     the loop thread at nice SB_LOOP_NICE (default -5; root)
#   relay         two store threads taking turns instead of a writer and a
#                 syncer: the one that commits a group flushes it itself
#                 while the other takes the connection over, so no thread
#                 is woken between a commit and its flush
#   nockpt        no checkpoint cycles (the WAL only grows; bounds raised
#                 to 4 and 8 GiB): what the checkpoints cost the flushes
#   early_write   the writer starts the WAL's write-back right after each
#                 COMMIT (sync_file_range), before the syncer wakes to flush
#
# usage: bench/ingest/experiment.sh NAME
# env:   CHANNEL=custom|messenger (default messenger), DURATION=5, ROUNDS=4,
#        WARMUP=3 (cpu.sh's)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NAME=${1:?usage: bench/ingest/experiment.sh NAME (a bench/ingest/NAME.patch)}
export CHANNEL=${CHANNEL:-messenger} DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-4}
. "$ROOT/bench/ingest/probe_build.sh"
probe_build "$NAME" "$ROOT/bench/ingest/$NAME.patch"
# The product's own build, as messenger.sh or run.sh makes it.
if [ "$CHANNEL" = messenger ]; then product=$ROOT/build-bench-fb tests=ON; else product=$ROOT/build-bench tests=OFF; fi
cmake -S "$ROOT" -B "$product" -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=$tests >/dev/null
cmake --build "$product" -j "$(nproc)" --target switchboard "plugin_$CHANNEL" >/dev/null
exec "$ROOT/bench/ingest/cpu.sh" "$product/switchboard" "$PROBE_BIN"
