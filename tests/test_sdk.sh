#!/usr/bin/env bash
# test_sdk.sh — the SDK as a plugin author gets it: `cmake --install` the
# build into a temporary prefix, scaffold a plugin with `plugins new`, build
# it out of tree with nothing but PKG_CONFIG_PATH (CMake, and plain cc with
# pkg-config), run its unit test against the installed stub test host, pass
# `plugins check`, load it in the daemon and carry a message both ways.
set -u
. "$(dirname "$0")/lib.sh"

SB=${SB_BINARY:?}
BUILD=${SB_BUILD_DIR:?}
work=$(mktemp -d /tmp/sbsdk.XXXXXX)

daemon_pid=
receiver_pid=

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid"; fi
  if [ -n "$receiver_pid" ] && kill -0 "$receiver_pid" 2>/dev/null; then kill "$receiver_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT


# A plugin author's environment: the SDK prefix and nothing of this tree.
unset CFLAGS LDFLAGS CPPFLAGS ASAN_OPTIONS UBSAN_OPTIONS
prefix=$work/sdk
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig

# --- install ----------------------------------------------------------------------
expect "cmake --install into a temporary prefix" 0 '' cmake --install "$BUILD" --prefix "$prefix"
for f in include/switchboard/plugin.h include/switchboard/testhost.h lib/libswitchboard-testhost.so \
  lib/libswitchboard-testhost.a lib/pkgconfig/switchboard-plugin.pc lib/pkgconfig/switchboard-testhost.pc \
  share/switchboard/template/plugin.c.in bin/switchboard; do
  if [ -e "$prefix/$f" ]; then ok "installed $f"; else not_ok "installed $f"; fi
done
expect "pkg-config finds the test host and its requirements" 0 "-I$prefix/lib/pkgconfig/../../include" \
  pkg-config --cflags --libs switchboard-testhost
expect "the test host library needs no libuv" 1 '' \
  bash -c "ldd '$prefix/lib/libswitchboard-testhost.so' | grep -q libuv"

# --- scaffold ------------------------------------------------------------------------
proj=$work/proj
expect "plugins new writes the project" 0 "wrote $proj/demo_echo.c" "$prefix/bin/switchboard" plugins new demo_echo "$proj"
for f in CMakeLists.txt demo_echo.c test_demo_echo.c README.md .gitignore; do
  if [ -s "$proj/$f" ]; then ok "scaffolded $f"; else not_ok "scaffolded $f"; fi
done
if grep -Eq '\{\{(name|NAME)\}\}' "$proj"/*.c "$proj/CMakeLists.txt"; then not_ok "no placeholder is left"; else ok "no placeholder is left"; fi
expect "an existing non-empty directory is refused" 2 'exists and is not empty' "$SB" plugins new demo_echo "$proj"
expect "an invalid id is refused" 2 'not a valid plugin id' "$SB" plugins new Demo-Echo "$work/other"
expect "an id too long is refused" 2 'not a valid plugin id' "$SB" plugins new "a$(printf 'b%.0s' {1..32})" "$work/other"
expect "plugins new without a name" 2 'give a plugin id' "$SB" plugins new
expect "plugins new --help" 0 'Usage: switchboard plugins new NAME' "$SB" plugins new --help
mkdir "$work/empty"
expect "an existing empty directory is used" 0 'wrote' "$SB" plugins new second "$work/empty"
expect "the default directory is ./NAME" 0 'wrote third/third.c' bash -c "cd '$work' && '$SB' plugins new third"

# --- build out of tree with pkg-config only ---------------------------------------------
expect "cmake configures the project with pkg-config" 0 '' cmake -S "$proj" -B "$proj/build"
expect "the project builds without warnings" 0 '' bash -c "cmake --build '$proj/build' 2>&1 | tee /dev/stderr | (! grep -q warning)"
expect "its unit test passes" 0 'all tests passed' "$proj/build/test_demo_echo"
expect "ctest runs it" 0 '100% tests passed' bash -c "cd '$proj/build' && ctest --output-on-failure"
cflags=$(pkg-config --cflags switchboard-testhost)
expect "plain cc builds the plugin" 0 '' \
  cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $(pkg-config --cflags switchboard-plugin) "$proj/demo_echo.c" \
  -o "$work/demo_echo.so"
expect "plain cc builds the unit test" 0 '' \
  cc -std=c11 -Wall -Wextra -Werror $cflags "$proj/test_demo_echo.c" -o "$work/test_demo_echo" \
  $(pkg-config --libs switchboard-testhost) -Wl,-rpath,"$prefix/lib"
expect "the cc-built test passes against the cc-built plugin" 0 'all tests passed' \
  "$work/test_demo_echo" "$work/demo_echo.so"

# The example test in testhost.h's narrative, run against the scaffolded plugin
# (whose wire format it uses), so the manual's example keeps working.
sed -n '/A TEST, START TO END/,/THE FAKE LOOP/p' "$prefix/include/switchboard/testhost.h" | sed '1d;$d' \
  | sed 's/^ \*   \{0,1\}//; s/^ \*$//' >"$work/header_example.c"
expect "the example in testhost.h builds" 0 '' \
  cc -std=c11 -Wall -Wextra -Werror $cflags "$work/header_example.c" -o "$work/header_example" \
  $(pkg-config --libs switchboard-testhost) -Wl,-rpath,"$prefix/lib"
cp "$proj/build/demo_echo.so" "$work/echo.so"
expect "the example in testhost.h passes" 0 '' bash -c "cd '$work' && ./header_example"

# --- conformance and the daemon -------------------------------------------------------------
expect "the scaffolded plugin passes plugins check" 0 '^21 passed, 0 failed' \
  "$SB" plugins check "$proj/build/demo_echo.so"
# A receiver for the plugin's outbound POSTs: records each body, answers 200
# with an external id.
cat >"$work/receiver.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(sys.argv[2], "ab") as f: f.write(body + b"\n")
        self.send_response(200); self.send_header("X-Message-Id", "out-1")
        self.send_header("Content-Length", "0"); self.end_headers()
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1])); s.serve_forever()
PY
python3 "$work/receiver.py" "$work/receiver.port" "$work/replies.txt" &
receiver_pid=$!
wait_for '[ -s "$work/receiver.port" ]'
rport=$(cat "$work/receiver.port")
port=$(free_port)
cat >"$work/switchboard.json" <<JSON
{"listen": "127.0.0.1:$port", "store": "sqlite:$work/db.sqlite",
 "plugins": {"dirs": ["$proj/build"], "allow": ["demo_echo"]},
 "channels": [
   {"name": "echo", "plugin": "demo_echo",
    "credentials": {"outbound_url": "http://127.0.0.1:$rport/replies", "auth_token": {"env": "SDK_TEST_TOKEN"}},
    "auto_replies": {"instant_reply": "We got your message."}}
 ]}
JSON
export SDK_TEST_TOKEN=sdk-test-token-value
expect "the daemon's check loads it" 0 'valid \(1 plugins loaded, 1 channels\)' "$SB" check -c "$work/switchboard.json"
expect "plugins list shows it" 0 '^demo_echo +0\.1\.0' "$SB" plugins list -c "$work/switchboard.json"
expect "its schema marks the token secret" 0 '"writeOnly": true' "$SB" plugins schema demo_echo -c "$work/switchboard.json"
# Run the daemon with it and carry a message both ways.
"$SB" run -c "$work/switchboard.json" >"$work/run.log" 2>&1 &
daemon_pid=$!
wait_for 'grep -q "ready" "$work/run.log"'
if grep -q "channel=\"echo\" plugin=\"demo_echo\" msg=\"connected; replies go to http://127.0.0.1:$rport/replies\"" "$work/run.log"; then
  ok "the daemon runs the channel and it connects"
else
  not_ok "the daemon runs the channel and it connects" "$(cat "$work/run.log")"
fi
expect "a message in through the scaffolded plugin is stored and acknowledged" 0 '"message_id"' \
  curl -sf -X POST "http://127.0.0.1:$port/hooks/echo/messages" -H 'X-Message-Id: in-1' -H 'X-Sender-Id: visitor-7' \
  --data-binary 'Hello from outside'
check "it is in the store as an inbound message" \
  '[ "$(sqlite3 "$work/db.sqlite" "select text from messages where direction = '"'in'"'")" = "Hello from outside" ]'
wait_for '[ -s "$work/replies.txt" ]'
check "a reply goes out through the plugin's send" 'grep -q "We got your message." "$work/replies.txt"' "$(cat "$work/run.log")"
wait_for '[ "$(sqlite3 "$work/db.sqlite" "select status from messages where direction = '"'out'"'")" = sent ]'
check "the reply is marked sent with the service's id" \
  '[ "$(sqlite3 "$work/db.sqlite" "select status || '"'/'"' || external_id from messages where direction = '"'out'"'")" = "sent/out-1" ]'
kill "$receiver_pid"
wait "$receiver_pid" 2>/dev/null
receiver_pid=
if grep -q 'sdk-test-token-value' "$work/run.log"; then not_ok "the daemon never logs the secret"; else ok "the daemon never logs the secret"; fi
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
if [ "$rc" -eq 0 ]; then ok "the daemon stops cleanly"; else not_ok "the daemon stops cleanly" "exit $rc: $(cat "$work/run.log")"; fi
daemon_pid=

sed -i "s|\"outbound_url\": \"http://127.0.0.1:$rport/replies\"|\"outbound_url\": \"ftp://127.0.0.1/replies\"|" "$work/switchboard.json"
expect "its validate hook refuses a non-http URL" 2 'outbound_url' "$SB" check -c "$work/switchboard.json"

finish
