# bench/ingest/probe_build.sh — sourced by stages.sh and experiment.sh: builds
# the working tree with one of bench/ingest/*.patch applied (a probe or an
# experiment that stays out of the product) in Release into
# build-bench-NAME/, and the Graph API double for the Messenger channel if
# missing. Needs ROOT and CHANNEL. Sets PROBE_BIN to the built daemon.
#
# usage (sourced): probe_build NAME PATCH
probe_build() {
  local patch=$2 dir=$ROOT/build-bench-$1
  mkdir -p "$dir/src"
  # The working tree as it is (tar keeps modification times, so a second
  # run rebuilds only what changed), then the patch.
  tar -C "$ROOT" --exclude='./build' --exclude='./build-*' --exclude='./.git' --exclude='./data' -cf - . |
    tar -C "$dir/src" -xf -
  patch -s -p1 -d "$dir/src" <"$patch" ||
    { echo "$(basename "$patch") no longer applies to the working tree; refresh it" >&2; return 1; }
  cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$dir/build" -j "$(nproc)" --target switchboard "plugin_$CHANNEL" >/dev/null
  if [ "$CHANNEL" = messenger ] && [ ! -x "$ROOT/build-bench-fb/tests/graph_double_server" ]; then
    cmake -S "$ROOT" -B "$ROOT/build-bench-fb" -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=ON >/dev/null
    cmake --build "$ROOT/build-bench-fb" -j "$(nproc)" --target graph_double_server >/dev/null
  fi
  PROBE_BIN=$dir/build/switchboard
}
