#!/usr/bin/env bash
# bench/ingest/setting.sh — one binary under a machine or thread setting,
# for cpu.sh to alternate with the plain binary: writes a wrapper next to
# BIN (cpu.sh finds the plugins beside the binary it is given) that starts
# BIN with the setting and prints the wrapper's path. Nothing here ships;
# the settings are experiments (bench/ingest/README.md says what each did).
#
#   fifo-syncer      the sb-syncer thread in SCHED_FIFO 1 once it exists (root)
#   pin-syncer-N     the sb-syncer thread pinned to CPU N (taskset)
#   iosched-NAME     the WAL's disk (vda) with I/O scheduler NAME while this
#                    binary starts (none, mq-deadline, ...; root; the next
#                    wrapper to start sets its own, so alternate two of them
#                    and put mq-deadline back after)
#
# usage: CHANNEL=messenger bench/ingest/cpu.sh build-bench-fb/switchboard \
#          "$(bench/ingest/setting.sh fifo-syncer build-bench-fb/switchboard)"
set -euo pipefail
name=${1:?usage: bench/ingest/setting.sh SETTING BIN} bin=$(realpath "${2:?usage: bench/ingest/setting.sh SETTING BIN}")
out=$(dirname "$bin")/setting-$name
# A background helper waits for the thread (it exists once the store opens)
# and changes it; exec keeps the daemon's process id, which cpu.sh kills.
thread_hook() { # thread_hook THREAD COMMAND-WITH-{tid}
  cat <<EOF
me=\$\$
( for i in \$(seq 100); do sleep 0.05
    for t in /proc/\$me/task/*; do
      [ "\$(cat "\$t/comm" 2>/dev/null)" = "$1" ] && { ${2//\{tid\}/\$\{t##*/\}} >/dev/null; exit 0; }
    done
  done ) &
EOF
}
case $name in
  fifo-syncer) hook=$(thread_hook sb-syncer 'chrt -f -p 1 {tid}') ;;
  pin-syncer-[0-9]*) hook=$(thread_hook sb-syncer "taskset -p -c ${name#pin-syncer-} {tid}") ;;
  iosched-*) hook="echo ${name#iosched-} > /sys/block/vda/queue/scheduler" ;;
  *) echo "unknown setting $name" >&2; exit 2 ;;
esac
printf '#!/usr/bin/env bash\n%s\nexec %q "$@"\n' "$hook" "$bin" >"$out"
chmod +x "$out"
echo "$out"
