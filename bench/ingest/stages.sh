#!/usr/bin/env bash
# bench/ingest/stages.sh — where a webhook's wait for durability goes, stage
# by stage: the working tree, with stages.patch applied (timestamps on each
# store request as it is submitted by the loop, handed to the writer at the
# end of the loop's turn, taken by the writer, run, committed, flushed by
# the syncer and delivered back on the loop), is built in Release into
# build-bench-stages/ and run under `wrk -t2 -cCONNS` for DURATION seconds
# after a 3 s warm-up; on exit the daemon prints the average time between
# each two stages. The patch stays out of the product: a clock read per
# request and eight per batch are not worth shipping for a benchmark.
#
# usage: bench/ingest/stages.sh   env: CHANNEL=custom|messenger (default messenger), DURATION=5, CONNS=64
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHANNEL=${CHANNEL:-messenger} DURATION=${DURATION:-5} CONNS=${CONNS:-64}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
. "$ROOT/bench/ingest/probe_build.sh"
probe_build stages "$ROOT/bench/ingest/stages.patch"
. "$ROOT/bench/ingest/channel.sh"
start_daemon "$PROBE_BIN"
RUN_ID=w$RANDOM wrk -t2 -c"$CONNS" -d3s -s "$script" "$url" >/dev/null
rps=$(RUN_ID=s$RANDOM$RANDOM wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$script" "$url" | awk '/Requests\/sec/ {print $2}')
kill -TERM "$D"; wait "$D" || true; D=
echo "# $(date -Is) $CHANNEL channel, wrk -t2 -c$CONNS -d${DURATION}s: $rps req/s"
sed -n 's/^STAGES //p' "$W/daemon.log"
