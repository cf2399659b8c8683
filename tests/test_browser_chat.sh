#!/usr/bin/env bash
# test_browser_chat.sh — the website chat widget in a real browser: headless
# Debian Chromium driven by playwright-core (tests/browser/chat.test.js)
# against the real daemon, with the operator's page on another origin.
# Installs playwright-core with `npm ci` from the committed lock file into
# the build tree (never downloading a browser). Stops what it starts.
set -u
. "$(dirname "$0")/lib.sh"
SB=${SB_BINARY:?}
SRC=${SB_SOURCE_DIR:?}
BUILD=${SB_BUILD_DIR:?}
PLUGINS=${SB_PLUGIN_BUILD_DIR:?}

for tool in node npm /usr/bin/chromium; do
  command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/deps.sh test)"; finish; exit 1; }
done

# playwright-core from the lock file, once per lock file
nodedir=$BUILD/browser-node
if ! cmp -s "$SRC/tests/browser/package-lock.json" "$nodedir/package-lock.json" ||
  [ ! -d "$nodedir/node_modules/playwright-core" ]; then
  rm -rf "$nodedir"
  mkdir -p "$nodedir"
  cp "$SRC/tests/browser/package.json" "$SRC/tests/browser/package-lock.json" "$nodedir/"
  if ! (cd "$nodedir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
    not_ok "npm ci installs playwright-core" "$(cat "$nodedir/npm.log")"
    rm -rf "$nodedir/node_modules"
    finish
    exit 1
  fi
fi

work=$(mktemp -d /tmp/sbchat.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
port=$(free_port)
page_port=$(free_port)
page="http://127.0.0.1:$page_port"
export IDENTITY_SECRET=identity-secret-for-the-browser-test
cat >"$work/sb.json" <<JSON
{"listen": "127.0.0.1:$port", "store": "sqlite:$work/db.sqlite",
 "secret_key": "$(python3 -c 'print("5a" * 32)')",
 "plugins": {"dirs": ["$PLUGINS"], "allow": ["chat"]},
 "channels": [
  {"name": "web", "plugin": "chat", "inbox": "Support",
   "credentials": {"allowed_origins": ["$page"], "availability": "always",
                   "identity_secret": {"env": "IDENTITY_SECRET"}}},
  {"name": "strict", "plugin": "chat",
   "credentials": {"allowed_origins": ["https://shop.example.com"], "availability": "always"}},
  {"name": "away_hidden", "plugin": "chat",
   "credentials": {"allowed_origins": ["$page"], "availability": "users", "away_behavior": "hide"}},
  {"name": "away_notice", "plugin": "chat",
   "credentials": {"allowed_origins": ["$page"], "availability": "users", "away_behavior": "away_message",
                   "away_message": "Back at nine."}}
 ]}
JSON
token=$("$SB" tokens create -c "$work/sb.json" --name browser --role admin 2>/dev/null)
check "an admin token for the API" '[[ "$token" == sbt_* ]]' "$token"

# The WebSocket handshake from another origin is refused before any token is read.
ws_status() { # ws_status CHANNEL ORIGIN → the HTTP status of a WebSocket handshake
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H "Origin: $2" \
    "http://127.0.0.1:$port/hooks/$1/ws?token=x"
}

SB_BINARY=$SB SB_CONFIG=$work/sb.json SB_PORT=$port SB_TOKEN=$token PAGE_PORT=$page_port \
  NODE_PATH=$nodedir/node_modules timeout 150 node "$SRC/tests/browser/chat.test.js" >"$work/node.out" 2>&1
rc=$?
while IFS= read -r line; do
  case "$line" in
  "ok - "*) ok "${line#ok - }" ;;
  "not ok - "*) not_ok "${line#not ok - }" ;;
  "# "*) echo "$line" ;;
  esac
done <"$work/node.out"
check "the browser test ran to the end" '[ $rc -eq 0 ] || [ $failed -gt 0 ]' "exit $rc: $(tail -20 "$work/node.out")"
[ $rc -ne 0 ] && [ -f "$work/daemon.log" ] && tail -30 "$work/daemon.log"

# Once more without the browser: a socket from a refused origin gets 403.
"$SB" run -c "$work/sb.json" >>"$work/daemon.log" 2>&1 &
daemon=$!
wait_for 'curl -sf "http://127.0.0.1:$port/healthz" >/dev/null'
check "a WebSocket handshake from a disallowed origin → 403" '[ "$(ws_status web https://evil.example.net)" = 403 ]' \
  "$(ws_status web https://evil.example.net)"
check "... and with no Origin at all → 403" '[ "$(ws_status web "")" = 403 ]'
kill "$daemon" && wait "$daemon" 2>/dev/null
finish
