#!/usr/bin/env bash
# test_conformance.sh — `switchboard plugins check` from the outside: the test
# plugin and the manual's example conform (exit 0); every file the loader
# refuses is reported with the loader's reason (exit 2); plugins that load but
# misbehave — misnamed, crashing, hanging, leaking — get the right FAIL line
# (exit 1); bad usage exits 2.
set -u
. "$(dirname "$0")/lib.sh"

SB=${SB_BINARY:?}
PLUGINS=${SB_TEST_PLUGIN_DIR:?}

# --- conforming plugins ------------------------------------------------------
expect "the test plugin conforms" 0 '^21 passed, 0 failed: .* conforms to plugin ABI 1\.[0-9]+$' \
  "$SB" plugins check "$PLUGINS/testplugin.so"
out=$("$SB" plugins check "$PLUGINS/testplugin.so" 2>&1)
for check in load descriptor entry-version file-name metadata schema capabilities credentials-valid \
  credentials-invalid lifecycle receive-malformed receive-oversized send-ok send-http-500 send-http-429 \
  send-timeout send-refused send-rich send-cancel leaks; do
  if grep -q "^PASS $check: " <<<"$out"; then ok "check $check is reported"; else not_ok "check $check is reported" "$out"; fi
done
expect "the example in plugin.h conforms" 0 '21 passed, 0 failed' "$SB" plugins check "$PLUGINS/example/echo.so"
expect "--set gives a credential" 0 'PASS credentials-valid' \
  "$SB" plugins check --set token=abcdefgh --only credentials-valid "$PLUGINS/testplugin.so"

# --- files the daemon refuses: exit 2 with the loader's own sentence -------------
refused() { # refused FILE PATTERN
  expect "$1 is refused: $2" 2 "FAIL (load|descriptor): .*$2" "$SB" plugins check "$PLUGINS/$1"
}
refused bad_magic.so 'wrong magic 0x12345678'
refused major_two.so 'built for plugin ABI 2\.0'
refused newer_minor.so 'needs plugin ABI 1\.[0-9]+ but this host speaks'
refused oversized.so 'declares a descriptor of [0-9]+ bytes'
refused no_create.so 'lacks the required hook create'
refused no_entry.so 'exports no sb_plugin_entry'
refused entry_fails.so 'refused to start .*needs a licence file'
refused bad_type.so 'unknown type 42'
refused dup_key.so 'appears twice'
refused bad_id.so 'invalid id "Bad-Id"'
expect "a refused file says the rest did not run" 2 'not run: the daemon would refuse to load' \
  "$SB" plugins check "$PLUGINS/bad_magic.so"

# --- plugins that load but misbehave: exit 1 --------------------------------------
M=$PLUGINS/misbehaving
# misnamed.so: a file the daemon would refuse by its name (exit 2), whose
# other checks still run
expect "a misnamed file fails file-name, and the daemon would refuse it" 2 '^FAIL file-name: the daemon loads only someone_else\.so' \
  "$SB" plugins check "$PLUGINS/misnamed.so"
expect "and says so in the summary" 2 'failed: the daemon would refuse to load .*misnamed\.so under its file name' \
  "$SB" plugins check "$PLUGINS/misnamed.so"
expect "a send that never completes fails" 2 '^FAIL send-ok: .*never completed' \
  "$SB" plugins check "$PLUGINS/misnamed.so"
expect "an entry that ignores the host version fails" 2 '^FAIL entry-version: ' \
  "$SB" plugins check "$PLUGINS/misnamed.so"
expect "a crash in receive is a report line" 1 '^FAIL receive-malformed: crashed' \
  "$SB" plugins check "$M/crash_receive.so"
expect "the checker outlives the crash" 1 '^PASS lifecycle: ' \
  "$SB" plugins check "$M/crash_receive.so"
expect "a hang in send times out" 1 '^FAIL send-ok: did not finish within 2 s' \
  "$SB" plugins check --only send-ok --timeout 2 "$M/hang_send.so"
expect "a leak in create is found" 1 '^FAIL leaks: .*(leak|growing)' \
  "$SB" plugins check --only leaks "$M/leak_create.so"
expect "--verbose shows the crash's stderr" 1 '    \| ' \
  "$SB" plugins check --verbose --only receive-malformed "$M/crash_receive.so"

# valgrind mode: only in builds without sanitizers (the two do not mix).
if command -v valgrind >/dev/null && ! ldd "$SB" | grep -q libasan; then
  expect "--valgrind finds a leak" 1 '^FAIL lifecycle: .*definitely lost' \
    "$SB" plugins check --valgrind --only lifecycle "$M/leak_create.so"
  expect "--valgrind passes a clean plugin" 0 '^PASS lifecycle' \
    "$SB" plugins check --valgrind --only lifecycle "$PLUGINS/testplugin.so"
else
  ok "# SKIP --valgrind (no valgrind, or a sanitizer build)"
fi

# --- usage ------------------------------------------------------------------------------
expect "check --help" 0 'Usage: switchboard plugins check' "$SB" plugins check --help
expect "check without a file" 2 'give the plugin file to check' "$SB" plugins check
expect "check a missing file" 2 'is not a readable file' "$SB" plugins check "$PLUGINS/nope.so"
expect "check with an unknown option" 2 'option --bogus is unknown' "$SB" plugins check --bogus "$PLUGINS/testplugin.so"
expect "check with an unknown --only" 2 'no check named "nothing"' \
  "$SB" plugins check --only nothing "$PLUGINS/testplugin.so"
expect "a file that is not a plugin" 2 'FAIL load: cannot be loaded' "$SB" plugins check "$0"

finish
