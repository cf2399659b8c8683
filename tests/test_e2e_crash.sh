#!/usr/bin/env bash
# test_e2e_crash.sh — durability through the real daemon: under a load of
# signed webhooks with unique ids, SIGKILL the daemon; after a restart every
# message it acknowledged (200) is stored exactly once under the id it was
# acknowledged with, and redelivering everything creates no duplicate.
set -u
. "$(dirname "$0")/lib.sh"
SB=${SB_BINARY:?}
SRC=${SB_SOURCE_DIR:?}
PLUGINS=${SB_PLUGIN_BUILD_DIR:?}
work=$(mktemp -d /tmp/sbcrash.XXXXXX)
daemon=
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
sql() { sqlite3 "$work/db.sqlite" "$1"; }

export CRASH_SECRET=crash-test-secret-0123456789
port=$(free_port)
cat >"$work/sb.json" <<JSON
{"listen": "127.0.0.1:$port", "store": "sqlite:$work/db.sqlite",
 "plugins": {"dirs": ["$PLUGINS"], "allow": ["custom"]},
 "channels": [{"name": "load", "plugin": "custom",
   "credentials": {"webhook_url": "http://127.0.0.1:9/out", "signing_secret": {"env": "CRASH_SECRET"}}}]}
JSON
start() {
  "$SB" run -c "$work/sb.json" >>"$work/daemon.log" 2>&1 &
  daemon=$!
  wait_for 'curl -sf "http://127.0.0.1:$port/healthz" >/dev/null'
}
load() { # load COUNT
  python3 "$SRC/tests/load_custom.py" --url "http://127.0.0.1:$port/hooks/load/messages" --secret "$CRASH_SECRET" \
    --prefix crash --count "$1" --threads 8 --acks "$work/acks"
}

start || { cat "$work/daemon.log"; exit 1; }
load 20000 &
loader=$!
# Kill once a good share of the load is acknowledged, in the middle of it.
wait_for '[ -f "$work/acks" ] && [ "$(wc -l <"$work/acks")" -ge 300 ]'
kill -KILL "$daemon"
wait "$daemon" 2>/dev/null
daemon=
wait "$loader"
acked=$(wc -l <"$work/acks")
echo "# $acked messages acknowledged before SIGKILL"
check "the daemon acknowledged messages before it was killed" '[ "$acked" -ge 300 ]' "$acked"
check "the load was cut short by the kill" '[ "$acked" -lt 20000 ]' "$acked"

start || { cat "$work/daemon.log"; exit 1; }
sql "select external_id || ' ' || id from messages where channel = 'load'" | sort >"$work/stored"
sort "$work/acks" >"$work/acks.sorted"
missing=$(comm -23 "$work/acks.sorted" "$work/stored" | wc -l)
check "every acknowledged message is stored under the id it was acknowledged with" '[ "$missing" -eq 0 ]' \
  "$(comm -23 "$work/acks.sorted" "$work/stored" | head -5)"
dups=$(sql "select count(*) - count(distinct external_id) from messages where channel = 'load'")
check "no message is stored twice" '[ "$dups" -eq 0 ]' "$dups"

# The integration redelivers everything it sent (acknowledged or not).
sent=$(sql "select count(*) from messages where channel = 'load'")
highest=$(sed 's/^crash-\([0-9]*\) .*/\1/' "$work/acks" | sort -n | tail -1)
: >"$work/acks2"
python3 "$SRC/tests/load_custom.py" --url "http://127.0.0.1:$port/hooks/load/messages" --secret "$CRASH_SECRET" \
  --prefix crash --count "$((highest + 50))" --threads 8 --acks "$work/acks2"
again=$(comm -12 "$work/acks.sorted" <(sort "$work/acks2") | wc -l)
check "redelivered acknowledged messages get their original ids" '[ "$again" -eq "$acked" ]' "$again of $acked"
total=$(sql "select count(*) from messages where channel = 'load'")
distinct=$(sql "select count(distinct external_id) from messages where channel = 'load'")
check "redelivery stores nothing twice" '[ "$total" -eq "$distinct" ] && [ "$total" -ge "$sent" ]' "$total rows, $distinct ids"
kill -TERM "$daemon"
wait "$daemon"
rc=$?
daemon=
check "the restarted daemon stops cleanly" '[ $rc -eq 0 ]'

finish
