#!/usr/bin/env bash
# test_cli.sh — the switchboard executable from the outside: commands, exit
# codes (0 ok, 1 runtime, 2 usage/config), secrets never printed, SIGTERM
# graceful stop, SIGHUP reload (valid and invalid). Stops only what it starts.
set -u
. "$(dirname "$0")/lib.sh"

SB=${SB_BINARY:?}
PLUGINS=${SB_TEST_PLUGIN_DIR:?}
work=$(mktemp -d /tmp/sbcli.XXXXXX)
daemon_pid=

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT


# expect NAME STATUS GREP CMD... : runs CMD, checks its exit status and that its
# combined output matches GREP (an extended regex; "" to skip).

port=$(free_port)

write_config() { # write_config FILE TAGS [EXTRA-CHANNEL-KEYS]
  cat >"$1" <<EOF
{"listen": "127.0.0.1:$port", "store": "sqlite:$work/db.sqlite",
 "plugins": {"dirs": ["$PLUGINS"], "allow": ["testplugin"]},
 "channels": [
   {"name": "demo", "plugin": "testplugin",
    "credentials": {"token": {"env": "CLI_TEST_TOKEN"}, "tags": $2}}$3
 ]}
EOF
}

export CLI_TEST_TOKEN=top-secret-token-value
cfg=$work/switchboard.json
write_config "$cfg" '["a"]' ''

# --- commands and exit codes ----------------------------------------------
expect "--version names the ABI" 0 'switchboard [0-9.]+ \(plugin ABI 1\.[0-9]+\)' "$SB" --version
expect "--help lists commands" 0 'plugins schema ID' "$SB" --help
expect "no command is a usage error" 2 'Usage' "$SB"
write_config "$work/reply.json" '["a"]' ', {"name": "second", "plugin": "testplugin", "credentials": {"token": "another-token"}, "reply_channel": "nope"}'
expect "check refuses a reply_channel that names no channel" 2 'channel "second": key "reply_channel": there is no channel "nope"' \
  "$SB" check -c "$work/reply.json"
sed -i 's/"reply_channel": "nope"/"reply_channel": "demo"/' "$work/reply.json"
expect "a reply_channel naming a channel of the config is fine" 0 '' "$SB" check -c "$work/reply.json"
expect "unknown command is a usage error" 2 'unknown command "frobnicate"' "$SB" frobnicate
for c in run check plugins; do
  expect "$c --help" 0 'Usage: switchboard '"$c" "$SB" "$c" --help
done
expect "run without -c" 2 'a config file is needed: -c FILE' "$SB" run
expect "run with an unknown option" 2 'unknown or needs a value' "$SB" run -c "$cfg" --bogus
expect "bad --log-level" 2 'must be error, warn, info or debug' "$SB" run -c "$cfg" --log-level loud
expect "check a valid config" 0 'valid \(1 plugins loaded, 1 channels\)' "$SB" check -c "$cfg"
expect "check a missing file" 2 'cannot read the config file' "$SB" check -c "$work/missing.json"
for bad in 127.0.0.1:99999 999.1.1.1:8080 127.0.0.1:http; do
  expect "check refuses the listen address $bad, as the server would" 2 "listen address \"$bad\" is not HOST:PORT" \
    "$SB" check -c "$cfg" --listen "$bad"
done
expect "a port is digits only (strtol would take +80)" 2 'listen address "127.0.0.1:\+80" is not HOST:PORT' \
  "$SB" check -c "$cfg" --listen "127.0.0.1:+80"

echo '{"listen": "127.0.0.1:1",
  "store" "x"}' >"$work/syntax.json"
expect "JSON syntax error names line and column" 2 'syntax.json:2:[0-9]+: invalid JSON' "$SB" check -c "$work/syntax.json"

write_config "$work/badenum.json" '["a"]' ''
sed -i 's/"tags": \["a"\]/"tags": ["a"], "mode": "warp"/' "$work/badenum.json"
expect "bad enum names channel and key" 2 'channel "demo": credential "mode" must be one of' "$SB" check -c "$work/badenum.json"

write_config "$work/unknown.json" '["a"]' ''
sed -i 's/"tags": \["a"\]/"tags": ["a"], "tokn": 1/' "$work/unknown.json"
expect "unknown credential key" 2 'channel "demo": unknown credential "tokn"' "$SB" check -c "$work/unknown.json"

write_config "$work/badpipeline.json" '["a"]' ''
sed -i 's/"tags": \["a"\]}/"tags": ["a"]}, "ticket": {"pipeline": "Biling"}/' "$work/badpipeline.json"
expect "a ticket default naming no pipeline is a config error" 2 'channel "demo": key "ticket.pipeline": "Biling" is not a pipeline' \
  "$SB" check -c "$work/badpipeline.json"

write_config "$work/badtls.json" '["a"]' ''
sed -i "s#^{\"listen\"#{\"http\": {\"tls_cert\": \"$work/missing-cert.pem\", \"tls_key\": \"$work/missing-key.pem\"}, \"listen\"#" "$work/badtls.json"
expect "check opens the TLS certificate as start-up would" 2 "missing-cert.pem" "$SB" check -c "$work/badtls.json"

out=$(CLI_TEST_TOKEN=short "$SB" check -c "$work/badenum.json" 2>&1)
sed -i 's/"mode": "warp"/"retries": "top-secret-token-value"/' "$work/badenum.json"
out2=$("$SB" check -c "$work/badenum.json" 2>&1)
if grep -q 'top-secret-token-value' <<<"$out$out2"; then not_ok "secret never printed" "$out2"; else ok "secret never printed"; fi

env -u CLI_TEST_TOKEN "$SB" check -c "$cfg" >/dev/null 2>&1
[ $? -eq 2 ] && ok "unset env credential is a config error" || not_ok "unset env credential is a config error"

sed 's/"allow": \["testplugin"\]/"allow": []/' "$cfg" >"$work/notallowed.json"
expect "channel of a plugin not allowed" 2 'plugin "testplugin" is not in plugins.allow' "$SB" check -c "$work/notallowed.json"

expect "plugins list from dirs shows refusals" 0 'refused: .*no_create.so\) lacks the required hook create' \
  "$SB" plugins list --dir "$PLUGINS"
expect "a --dir that cannot be read is a usage error, named" 2 '--dir /nonexistent/plugins cannot be read: No such file' \
  "$SB" plugins list --dir "$PLUGINS" --dir /nonexistent/plugins
expect "plugins list --json" 0 '"id": "testplugin"' "$SB" plugins list --dir "$PLUGINS" --json
expect "plugins list with a config loads only allowed" 0 'testplugin' "$SB" plugins list -c "$cfg"
if "$SB" plugins list -c "$cfg" 2>&1 | grep -q refused; then not_ok "allowed-only list opens nothing else"; else ok "allowed-only list opens nothing else"; fi
expect "plugins schema marks secrets writeOnly" 0 '"writeOnly": true' "$SB" plugins schema testplugin --dir "$PLUGINS"
expect "plugins schema of an unknown id" 2 'plugin "nope" is not loaded' "$SB" plugins schema nope --dir "$PLUGINS"
expect "plugins without subcommand" 2 'Usage' "$SB" plugins

# --- the running daemon ----------------------------------------------------
wait_log() { # wait_log PATTERN: up to 10 s for the daemon log to match
  for _ in $(seq 1 100); do
    grep -Eq -- "$1" "$work/daemon.log" && return 0
    sleep 0.1
  done
  return 1
}

"$SB" run -c "$cfg" --log-level debug >"$work/daemon.log" 2>&1 &
daemon_pid=$!
if wait_log 'ready: 1 plugins, 1 channels'; then ok "daemon starts"; else not_ok "daemon starts" "$(cat "$work/daemon.log")"; fi
grep -q 'channel="demo" plugin="testplugin" msg="connected"' "$work/daemon.log" && ok "log lines name channel and plugin" || not_ok "log lines name channel and plugin"

expect "/healthz reports each channel's state" 0 '"status":"ok".*"name":"demo","plugin":"testplugin","state":"connected"' \
  curl -sf "http://127.0.0.1:$port/healthz"
expect "a webhook reaches the plugin's receive" 0 '^fired$' curl -sf "http://127.0.0.1:$port/hooks/demo/timer?ms=20"
expect "an unknown channel is 404" 0 '^404$' curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/hooks/nope/messages"
expect "a second daemon on a taken port exits 1" 1 'could not listen on 127.0.0.1:'"$port" \
  "$SB" run -c "$cfg" --store "sqlite:$work/second.db"
expect "a second daemon on the same database exits 1 before touching it" 1 'is in use by another switchboard daemon' \
  "$SB" run -c "$cfg"

kill -HUP "$daemon_pid"
wait_log 'reloaded: 1 channels kept, 0 closed, 0 started' && ok "SIGHUP with an unchanged config keeps the channel" || not_ok "SIGHUP unchanged" "$(cat "$work/daemon.log")"

write_config "$cfg" '["a","b"]' ', {"name": "second", "plugin": "testplugin", "credentials": {"token": "another-token"}}'
kill -HUP "$daemon_pid"
wait_log 'reloaded: 0 channels kept, 1 closed, 2 started' && ok "SIGHUP recreates the changed channel and adds the new one" || not_ok "SIGHUP changed" "$(cat "$work/daemon.log")"
wait_log 'level=debug .*msg="channel closed"' && ok "a reload keeps --log-level over the file's" || not_ok "reload keeps --log-level" "$(cat "$work/daemon.log")"
grep -q 'take effect after a restart' "$work/daemon.log" && not_ok "reloads that change no start-up setting warn of none" || ok "reloads that change no start-up setting warn of none"
sed -i 's/^{"listen"/{"http": {"body_limit": 4096}, "outbox": {"max_attempts": 3}, "listen"/' "$cfg"
kill -HUP "$daemon_pid"
wait_log 'changes to http, outbox take effect after a restart' && ok "a reload names the start-up settings it does not apply" || not_ok "reload warns of http/outbox" "$(cat "$work/daemon.log")"
cp "$cfg" "$work/kept.json"
sed -i 's/^{"http"/{"secret_key": "'"$(printf '5a%.0s' $(seq 32))"'", "http"/' "$cfg"
kill -HUP "$daemon_pid"
wait_log 'reload refused, still running the previous config: secret_key changed' &&
  ok "a reload that changes secret_key is refused (what the API stored is sealed under the running key)" ||
  not_ok "reload refuses a new secret_key" "$(tail -3 "$work/daemon.log")"
cp "$work/kept.json" "$cfg"
sed -i 's/"allow": \["testplugin"\]/"allow": ["testplugin", "wsecho"]/' "$cfg"
sed -i 's/^ \]}$/ , {"name": "echo", "plugin": "wsecho", "credentials": {}}\n ]}/' "$cfg"
kill -HUP "$daemon_pid"
wait_log 'wsecho.{1,2}, which is not loaded: plugins load at start' &&
  ok "a reload needing a plugin the changed plugins section allows is refused, saying plugins load at start" ||
  not_ok "reload refuses a plugin not loaded" "$(tail -3 "$work/daemon.log"; cat "$cfg")"
cp "$work/kept.json" "$cfg"
sed -i 's/"allow": \["testplugin"\]/"allow": ["testplugin", "wsecho"]/' "$cfg"
kill -HUP "$daemon_pid"
wait_log 'changes to plugins take effect after a restart' && ok "a reload names a changed plugins section as for a restart" ||
  not_ok "reload warns of plugins" "$(tail -3 "$work/daemon.log")"
cp "$work/kept.json" "$cfg"
sed -i 's/"allow": \["testplugin"\]/"allow": ["wsecho"]/' "$cfg"
kill -HUP "$daemon_pid"
wait_log 'reload refused, still running the previous config: the next start could not run .*testplugin.{1,2} is not in plugins.allow' &&
  ok "a reload whose plugins section would not start its channels is refused (check refuses it too)" ||
  not_ok "reload refuses plugins.allow without a channel's plugin" "$(tail -3 "$work/daemon.log")"
cp "$work/kept.json" "$cfg"
sed -i 's/{"body_limit": 4096}/{"body_limit": 4096, "tls_cert": "nope.pem", "tls_key": "nope.key"}/' "$cfg"
kill -HUP "$daemon_pid"
wait_log 'reload refused, still running the previous config: .*nope' &&
  ok "a reload naming a TLS pair that cannot be read is refused, though TLS waits for a restart" ||
  not_ok "reload refuses an unreadable TLS pair" "$(tail -3 "$work/daemon.log"; cat "$cfg")"

echo '{"channels": [ {"name": "x"' >"$cfg"
kill -HUP "$daemon_pid"
wait_log 'reload refused, still running the previous config' && ok "SIGHUP with an invalid config keeps the old one" || not_ok "SIGHUP invalid" "$(cat "$work/daemon.log")"
kill -0 "$daemon_pid" 2>/dev/null && ok "daemon survives a bad reload" || not_ok "daemon survives a bad reload"

kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
[ $rc -eq 0 ] && ok "SIGTERM stops with status 0" || not_ok "SIGTERM stops with status 0" "status $rc"
grep -q 'stopping (SIGTERM)' "$work/daemon.log" && grep -q 'msg="stopped"' "$work/daemon.log" &&
  grep -q 'disconnect after' "$work/daemon.log" && ok "graceful stop disconnects channels" || not_ok "graceful stop" "$(cat "$work/daemon.log")"
if grep -q 'top-secret-token-value\|another-token' "$work/daemon.log"; then not_ok "daemon log holds no secret"; else ok "daemon log holds no secret"; fi

write_config "$cfg" '["a"]' ''
"$SB" run -c "$cfg" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
wait_log 'ready' || true
kill -INT "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
[ $rc -eq 0 ] && ok "SIGINT stops with status 0" || not_ok "SIGINT stops with status 0" "status $rc"

# A renewed TLS certificate at the same paths is served after SIGHUP, no restart.
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 \
    -subj /CN=first >/dev/null 2>&1
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key2.pem" -out "$work/cert2.pem" -days 1 \
    -subj /CN=renewed >/dev/null 2>&1
  write_config "$cfg" '["a"]' ''
  sed -i "s#^{\"listen\"#{\"http\": {\"tls_cert\": \"$work/cert.pem\", \"tls_key\": \"$work/key.pem\"}, \"listen\"#" "$cfg"
  "$SB" run -c "$cfg" >"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  wait_log 'ready' || true
  subject() { openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null | openssl x509 -noout -subject 2>/dev/null; }
  first=$(subject)
  cp "$work/cert2.pem" "$work/cert.pem"
  cp "$work/key2.pem" "$work/key.pem"
  kill -HUP "$daemon_pid"
  wait_log 'reloaded:' || true
  renewed=$(subject)
  [[ $first == *first* && $renewed == *renewed* ]] && ok "SIGHUP serves a renewed TLS certificate" ||
    not_ok "SIGHUP serves a renewed TLS certificate" "before: $first after: $renewed $(tail -3 "$work/daemon.log")"
  grep -q 'take effect after a restart' "$work/daemon.log" && not_ok "a renewed certificate needs no restart" ||
    ok "a renewed certificate needs no restart"
  kill -TERM "$daemon_pid"
  wait "$daemon_pid"
  daemon_pid=
fi

expect "run with an invalid config exits 2" 2 'unknown credential' "$SB" run -c "$work/unknown.json"

finish
