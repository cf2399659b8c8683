#!/usr/bin/env bash
# test_api.sh — the REST API and event stream of the real daemon, over HTTP
# with curl: tokens and roles, every endpoint's success path and bad input,
# reply → outbox → plugin send → sent, channels over the API (sealed
# credentials, restart, wrong key), SSE with Last-Event-ID. Every response is
# checked against docs/api/openapi.json by tests/api_check.py, and every
# documented operation must answer. Stops only what it starts.
set -u

SB=${SB_BINARY:?}
PLUGINS=${SB_TEST_PLUGIN_DIR:?}
CHAT_PLUGINS=${SB_PLUGIN_BUILD_DIR:?} # the bundled plugins: the chat channel's embed snippet
SRC=${SB_SOURCE_DIR:?}
SPEC=$SRC/docs/api/openapi.json
# A python3 found through a version manager's shim (pyenv) costs a few
# tenths of a second a call, and this script makes some 800: the shim's
# cost alone came near its 300 s. The interpreter is resolved once.
PY=$(python3 -c 'import sys; print(sys.executable)')
python3() { "$PY" "$@"; }
CHECK="python3 $SRC/tests/api_check.py"
work=$(mktemp -d /tmp/sbapi.XXXXXX)
daemon_pid=
sse_pid=
rcv_pid=
passed=0
failed=0

cleanup() {
  for p in $sse_pid $daemon_pid $rcv_pid; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p"; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "# $2"; }
check() { # check NAME CONDITION-STATUS [DETAIL]
  if [ "$2" -eq 0 ]; then ok "$1"; else not_ok "$1" "${3:-}"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
base=http://127.0.0.1:$port
KEY=$(python3 -c 'print("5a"*32)')
API_SECRET=api-channel-secret-value-42
CFG_SECRET=config-channel-secret-value-7

write_config() { # write_config FILE SECRET_KEY_JSON|none STORE PORT
  local key=
  [ "$2" != none ] && key="\"secret_key\": $2,"
  cat >"$1" <<EOF
{"listen": "127.0.0.1:$4", "store": "sqlite:$3", $key
 "http": {"sse_keepalive": "300ms", "body_limit": 65536, "sse_max_pending": 8192}, "attachments": {"max_bytes": 40000},
 "plugins": {"dirs": ["$PLUGINS", "$CHAT_PLUGINS"], "allow": ["testplugin", "chat"]},
 "pipelines": [{"name": "Billing", "statuses": [{"name": "New"},
   {"name": "Solved", "closed": true, "required_properties": ["resolution"]}]}],
 "users": [{"name": "dana", "email": "dana@example.com", "avatar_url": "https://cdn.example.com/dana.png"}],
 "channels": [
   {"name": "demo", "plugin": "testplugin", "inbox": "Support",
    "credentials": {"token": "$CFG_SECRET"}, "ticket": {"pipeline": "Billing"}}
 ]}
EOF
}
cfg=$work/switchboard.json
write_config "$cfg" "\"$KEY\"" "$work/db.sqlite" "$port"

# --- tokens create ----------------------------------------------------------
ADMIN=$("$SB" tokens create -c "$cfg" --name root --role admin 2>"$work/tok.err")
rc=$?
[ $rc -eq 0 ] && [[ $ADMIN =~ ^sbt_[0-9a-f]{64}$ ]]
check "tokens create prints one token" $? "status $rc: $ADMIN $(cat "$work/tok.err")"
AGENT=$("$SB" tokens create -c "$cfg" --name ana --role agent 2>/dev/null)
"$SB" tokens create -c "$cfg" --name ana --role agent >/dev/null 2>"$work/tok.err"
[ $? -eq 2 ] && grep -q 'a token named "ana" already exists' "$work/tok.err"
check "tokens create refuses a taken name" $?
"$SB" tokens create -c "$cfg" --name x --role boss >/dev/null 2>&1
check "tokens create refuses an unknown role" $([ $? -eq 2 ]; echo $?)
"$SB" tokens create -c "$cfg" --role admin >/dev/null 2>&1
check "tokens create needs --name" $([ $? -eq 2 ]; echo $?)
"$SB" tokens create --name x --role admin >/dev/null 2>&1
check "tokens create needs -c" $([ $? -eq 2 ]; echo $?)
"$SB" tokens --help | grep -q 'Usage: switchboard tokens create -c FILE --name N --role admin|agent \[--user NAME\]'
check "tokens --help" $?
"$SB" tokens create -c "$cfg" --name dana-cli --role agent --user nobody >/dev/null 2>"$work/tok.err"
[ $? -eq 2 ] && grep -q 'user "nobody" does not exist' "$work/tok.err"
check "tokens create --user refuses an unknown user (status 2)" $? "$(cat "$work/tok.err")"
"$SB" tokens create -c "$cfg" --name dana-cli --role agent --user dana >/dev/null 2>"$work/tok.err"
[ $? -eq 2 ] && grep -q 'user "dana" does not exist.*stored when the daemon starts' "$work/tok.err"
check "tokens create --user of a config user not yet stored says when it will be" $? "$(cat "$work/tok.err")"
"$SB" tokens create -c "$cfg" --name x --role agent --user '' >/dev/null 2>&1
check "tokens create --user needs a name" $([ $? -eq 2 ]; echo $?)
"$SB" --help | grep -q 'tokens create'
check "--help lists tokens create" $?
"$SB" tokens revoke >/dev/null 2>&1
check "an unknown tokens subcommand is a usage error" $([ $? -eq 2 ]; echo $?)
python3 - "$work/db.sqlite" "$ADMIN" <<'EOF'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT hash FROM tokens").fetchall()
sys.exit(0 if rows and all(sys.argv[2] not in r[0] for r in rows) else 1)
EOF
check "tokens are stored hashed, not in clear" $?

# --- the daemon -------------------------------------------------------------
wait_log() { # wait_log PATTERN [FILE]
  for _ in $(seq 1 100); do
    grep -Eq -- "$1" "${2:-$work/daemon.log}" && return 0
    sleep 0.1
  done
  return 1
}
log=$work/daemon.log
start_daemon() { # start_daemon [LOG]
  log=${1:-$work/daemon.log}
  "$SB" run -c "$cfg" >>"$log" 2>&1 &
  daemon_pid=$!
}
stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid"
  local rc=$?
  daemon_pid=
  check "the daemon stops cleanly (status 0)" $([ $rc -eq 0 ]; echo $?) "status $rc: $(tail -5 "$log")"
}
start_daemon
wait_log 'ready: 2 plugins, 1 channels'
check "daemon starts" $? "$(cat "$work/daemon.log")"
DANA=$("$SB" tokens create -c "$cfg" --name dana-cli --role agent --user dana 2>"$work/tok.err")
rc=$?
[ $rc -eq 0 ] && [[ $DANA =~ ^sbt_[0-9a-f]{64}$ ]] && grep -q 'created agent token "dana-cli" of user "dana"' "$work/tok.err"
check "tokens create --user makes a token of a config user once the daemon stored it" $? "status $rc: $(cat "$work/tok.err")"
"$SB" run -c "$cfg" >"$work/second.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q 'is in use by another switchboard daemon' "$work/second.log" && kill -0 "$daemon_pid"
check "a second daemon on the same database is refused, and the first runs on" $? "status $rc: $(tail -3 "$work/second.log")"

# call METHOD PATH TOKEN [BODY]: sets code and body (file $work/body); checks
# the answer against the OpenAPI document.
call() {
  local m=$1 path=$2 tok=$3 data=${4-}
  local args=(-s -o "$work/body" -w '%{http_code}' -X "$m")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  code=$(curl "${args[@]}" "$base$path")
  body=$(tr -d '\000' <"$work/body") # downloads may hold NUL bytes
  local why
  if ! why=$($CHECK "$SPEC" "$m" "$path" "$code" "$work/body" "$work/hits" 2>&1); then
    not_ok "$m $path answers as documented" "$why"
  fi
}
# expect NAME CODE [PYTHON-CONDITION on d = the JSON body]
expect() {
  local name=$1 want=$2 cond=${3-}
  if [ "$code" != "$want" ]; then
    not_ok "$name" "status $code, wanted $want: $body"
  elif [ -n "$cond" ] && ! python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($cond) else 1)" "$work/body" 2>/dev/null; then
    not_ok "$name" "body fails ($cond): $body"
  else
    ok "$name"
  fi
}
jv() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$work/body"; }
wait_reply() { # wait_reply CONV ID STATUS: up to 5 s for message ID to have STATUS (sets $status; the body is the conversation)
  status=
  for _ in $(seq 1 50); do
    call GET "/api/v1/conversations/$1" "$AGENT"
    status=$(jv "[m['status'] for m in d['messages'] if m['id'] == $2][0]")
    [ "$status" = "$3" ] && return
    sleep 0.1
  done
}
wait_error() { # wait_error CONV ID: up to 3 s for message ID to carry an error (the body is the conversation)
  for _ in $(seq 1 30); do
    call GET "/api/v1/conversations/$1" "$AGENT"
    [ "$(jv "[m['error'] for m in d['messages'] if m['id'] == $2][0]")" != None ] && return
    sleep 0.1
  done
}
wait_state() { # wait_state CHANNEL STATE: up to 3 s for GET /api/v1/channels/CHANNEL to show it (the body is its last answer)
  for _ in $(seq 1 30); do
    call GET "/api/v1/channels/$1" "$AGENT"
    [ "$(jv 'd["state"]')" = "$2" ] && return
    sleep 0.1
  done
}
inbound() { # inbound CHANNEL EXTERNAL-ID SENDER TEXT
  curl -s -H "X-Id: $2" -H "X-Sender: $3" --data-binary "$4" "$base/hooks/$1/messages" >/dev/null
}

# --- auth -------------------------------------------------------------------
call GET /api/v1/conversations ""
expect "no token is 401" 401 'd["error"]["code"] == "unauthorized"'
call GET /api/v1/conversations "sbt_$(printf '0%.0s' $(seq 64))"
expect "a bad token is 401" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic $ADMIN" "$base/api/v1/plugins")
check "a non-Bearer scheme is 401" $([ "$code" = 401 ]; echo $?)
call POST /api/v1/users "$AGENT" '{"name": "eve"}'
expect "an agent token on an admin endpoint is 403" 403 'd["error"]["code"] == "forbidden"'
call GET /api/v1/plugins "$AGENT"
expect "an agent token reads" 200

# --- tokens over the API ------------------------------------------------------
call POST /api/v1/tokens "$ADMIN" '{"name": "script", "role": "agent"}'
expect "POST a token shows its secret once" 201 'd["token"].startswith("sbt_") and d["role"] == "agent"'
T3=$(jv 'd["token"]')
T3ID=$(jv 'd["id"]')
call POST /api/v1/tokens "$ADMIN" '{"name": "script", "role": "agent"}'
expect "a taken token name is 409" 409
call POST /api/v1/tokens "$ADMIN" '{"name": "x", "role": "root"}'
expect "a bad role is 400" 400 'd["error"]["field"] == "role"'
call GET /api/v1/tokens "$AGENT"
expect "an agent cannot list tokens" 403
call GET /api/v1/tokens "$ADMIN"
expect "tokens list without secrets or hashes, with their user" 200 'len(d["items"]) == 4 and all(set(t) == {"id", "name", "role", "created_at", "user"} for t in d["items"]) and [t["user"] for t in d["items"]] == [None, None, "dana", None]'
call GET /api/v1/plugins "$T3"
expect "the new token works" 200
curl -s -N -m 10 -H "Authorization: Bearer $T3" "$base/api/v1/events" >"$work/sse-revoked" &
sse_pid=$!
sleep 0.5
call DELETE "/api/v1/tokens/$T3ID" "$ADMIN"
expect "DELETE revokes a token" 200 'd["name"] == "script"'
call GET /api/v1/plugins "$T3"
expect "a revoked token is 401 at once" 401
for _ in $(seq 1 30); do kill -0 "$sse_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sse_pid" 2>/dev/null
check "an event stream of a revoked token ends" $([ $? -ne 0 ]; echo $?) "$(head -c 200 "$work/sse-revoked")"
kill "$sse_pid" 2>/dev/null
wait "$sse_pid" 2>/dev/null
call DELETE "/api/v1/tokens/$T3ID" "$ADMIN"
expect "revoking it again is 404" 404

# --- plugins ----------------------------------------------------------------
call GET /api/v1/plugins "$ADMIN"
expect "plugins carry capabilities and a credential schema with writeOnly secrets" 200 \
  'sorted(p["id"] for p in d["items"]) == ["chat", "testplugin"] and [p for p in d["items"] if p["id"] == "testplugin"][0]["credential_schema"]["properties"]["token"]["writeOnly"] is True and all("file" not in p for p in d["items"])'

# --- conversations and replies -----------------------------------------------
inbound demo m1 kim "Hello, my invoice is wrong"
inbound demo m2 lee "Where is my parcel?"
call GET /api/v1/conversations "$AGENT"
expect "conversations list both threads, newest first" 200 'len(d["items"]) == 2 and d["items"][0]["id"] > d["items"][1]["id"] and d["next_cursor"] is None'
conv=$(jv 'd["items"][1]["id"]')
call GET "/api/v1/conversations?q=invoice" "$AGENT"
expect "q finds the conversation by message text" 200 "[c['id'] for c in d['items']] == [$conv]"
call GET "/api/v1/conversations?channel=demo&status=open&assignee=none&inbox=Support" "$AGENT"
expect "filters by channel, status, assignee and inbox" 200 'len(d["items"]) == 2'
call GET "/api/v1/conversations?channel=nope" "$AGENT"
expect "a channel filter with no match is an empty page" 200 'd["items"] == []'
call GET "/api/v1/conversations?limit=1" "$AGENT"
expect "limit=1 gives a next_cursor" 200 'len(d["items"]) == 1 and d["next_cursor"] is not None'
cursor=$(jv 'd["next_cursor"]')
call GET "/api/v1/conversations?limit=1&cursor=$cursor" "$AGENT"
expect "the cursor gives the next page, the last one: no next_cursor though it is full" 200 \
  "d['items'][0]['id'] == $conv and d['next_cursor'] is None"
call GET "/api/v1/conversations?q=%FFzzzz" "$AGENT"
expect "a search that is not UTF-8 is 400, not every conversation" 400 'd["error"]["field"] == "q"'
call GET "/api/v1/conversations?q=a%00b" "$AGENT"
expect "a search with a NUL byte is 400, not a shorter search" 400 'd["error"]["field"] == "q"'
call GET "/api/v1/contacts?q=zz%FFzz" "$AGENT"
expect "... the contacts' search too" 400 'd["error"]["field"] == "q"'
call GET "/api/v1/conversations?status=pending" "$AGENT"
expect "a bad status filter is 400" 400 'd["error"]["field"] == "status"'
call GET "/api/v1/conversations?limit=0" "$AGENT"
expect "a bad limit is 400" 400 'd["error"]["field"] == "limit"'
call GET "/api/v1/conversations?limit=$(printf '1%.0s' $(seq 40))" "$AGENT"
expect "a limit too long to read is 400" 400 'd["error"]["field"] == "limit"'
call GET "/api/v1/conversations?limit=%2B7" "$AGENT"
expect "a signed limit is 400" 400 'd["error"]["field"] == "limit"'
for bad in abc -5 12abc; do
  call GET "/api/v1/conversations?cursor=$bad" "$AGENT"
  expect "a cursor that is not one ($bad) is 400" 400 'd["error"]["field"] == "cursor"'
done
call GET "/api/v1/conversations?assignee=" "$AGENT"
expect "an empty filter is 400, not no filter" 400 'd["error"]["field"] == "assignee"'
call GET "/api/v1/conversations?assignee=Dana" "$AGENT"
expect "an assignee who is no user is 400, not an empty page" 400 'd["error"]["field"] == "assignee" and "is not a user" in d["error"]["message"]'
call GET "/api/v1/conversations?assignee=dana" "$AGENT"
expect "a user with nothing assigned is an empty page" 200 'd["items"] == []'
call GET "/api/v1/conversations?q=" "$AGENT"
expect "an empty search is no search" 200 'len(d["items"]) >= 2'
for wild in %25 _ %5C; do
  call GET "/api/v1/conversations?q=$wild" "$AGENT"
  expect "a search for $wild takes it literally" 200 'd["items"] == []'
done
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "one conversation with its messages" 200 'd["messages"][0]["direction"] == "in" and d["messages"][0]["status"] == "received" and d["messages"][0]["text"].startswith("Hello")'
ticket=$(jv 'd["ticket"]["id"]')
inmsg=$(jv 'd["messages"][0]["id"]')
call GET /api/v1/conversations/99999 "$AGENT"
expect "an unknown conversation is 404" 404 'd["error"]["code"] == "not_found"'
call GET /api/v1/conversations/abc "$AGENT"
expect "a non-numeric id is 404" 404
call GET "/api/v1/conversations/%2B$conv" "$AGENT"
expect "an id with a sign is 404 (ids are written one way)" 404
call GET "/api/v1/conversations/0$conv" "$AGENT"
expect "an id with a leading zero is 404" 404
call GET "/api/v1/conversations/99999999999999999999" "$AGENT"
expect "an id past 64 bits is 404 naming it, not the largest id" 404 '"99999999999999999999" in d["error"]["message"]'

for bad in 0 -1; do
  call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"to nothing\", \"reply_to\": $bad}"
  expect "reply_to $bad is 400, not the latest inbound message" 400 'd["error"]["field"] == "reply_to"'
done
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"We are on it\", \"reply_to\": $inmsg}"
expect "a reply is queued with 202" 202 'd["status"] == "queued" and isinstance(d["id"], int)'
reply=$(jv 'd["id"]')
wait_reply "$conv" "$reply" sent
check "the reply goes through the outbox to the plugin's send and becomes sent" $([ "$status" = sent ]; echo $?) "status $status"
expect "the sent reply carries the plugin's external id and reply link" 200 \
  "[m for m in d['messages'] if m['id'] == $reply][0]['external_id'] == 'ext-$reply' and [m for m in d['messages'] if m['id'] == $reply][0]['reply_to'] == $inmsg"
call POST "/api/v1/conversations/$conv/messages/$reply/retry" "$AGENT"
expect "a reply that was sent cannot be sent again" 409 'd["error"]["code"] == "conflict"'
call POST "/api/v1/conversations/$conv/messages/$inmsg/retry" "$AGENT"
expect "an inbound message cannot be sent" 409 'd["error"]["code"] == "conflict"'
call POST "/api/v1/conversations/99999/messages/$reply/retry" "$AGENT"
expect "a retry in an unknown conversation is 404" 404
# The test plugin refuses a "flaky" reply, then sends it with its idempotency key as the external id.
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "flaky"}'
flaky=$(jv 'd["id"]')
wait_reply "$conv" "$flaky" failed
expect "a reply the service refused is failed with its reason" 200 \
  "[m for m in d['messages'] if m['id'] == $flaky][0]['error'] == 'the service refused it this time'"
call GET "/api/v1/conversations?failed=true" "$AGENT"
expect "failed=true lists the conversations with a failed reply" 200 "[c['id'] for c in d['items']] == [$conv]"
call GET "/api/v1/conversations?failed=maybe" "$AGENT"
expect "failed takes true or false" 400 'd["error"]["field"] == "failed"'
call POST "/api/v1/conversations/$conv/messages/$flaky/retry" "$AGENT" '{"again": true}'
expect "a retry with an unknown field is 400" 400 'd["error"]["field"] == "again"'
call POST "/api/v1/conversations/$conv/messages/$flaky/retry" "$AGENT"
expect "a failed reply is queued again" 202 "d == {'id': $flaky, 'status': 'queued'}"
wait_reply "$conv" "$flaky" sent
call GET "/api/v1/conversations?failed=true" "$AGENT"
expect "once sent again it is no longer among the failed" 200 'd["items"] == []'
call GET "/api/v1/conversations/$conv" "$AGENT"
check "the failed reply is sent again, with its idempotency key" \
  $([ "$status" = sent ] && [ "$(jv "[m for m in d['messages'] if m['id'] == $flaky][0]['external_id']")" = "switchboard-msg-$flaky" ]; echo $?) \
  "status $status: $body"
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "x", "html": "<b>x</b>", "attachments": [{"url": "https://example.com/a.png", "mime_type": "image/png", "filename": "a.png", "size": 12}, {"url": "https://example.com/b.txt", "mime_type": null, "filename": null, "size": null}]}'
expect "a reply with html and attachments (optional fields null as the schema allows) is queued" 202
sized=$(jv 'd["id"]')
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "an attachment's size is listed as given, null when not" 200 \
  "[a['size'] for a in [m for m in d['messages'] if m['id'] == $sized][0]['attachments']] == [12, None]"
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"attachments": [{"url": "https://example.com/c.txt", "size": "12"}]}'
expect "an attachment field of the wrong type is 400" 400 'd["error"]["field"] == "attachments"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "typo", "attachments": [{"url": "https://example.com/y.pdf", "file_name": "y.pdf"}]}'
expect "an unknown attachment field is 400 naming it" 400 \
  'd["error"]["code"] == "unknown_field" and d["error"]["field"] == "attachments.file_name"'

call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": '
expect "malformed JSON is 400" 400 'd["error"]["code"] == "invalid_json"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '[1]'
expect "a non-object body is 400" 400
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": 5}'
expect "a wrong type is 400 naming the field" 400 'd["error"]["field"] == "text"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"attachments": [{"mime_type": "x"}]}'
expect "an attachment without url is 400" 400 'd["error"]["field"] == "attachments"'
for u in "" "file:///etc/passwd" "/api/v1/attachments/0" "/api/v1/attachments/abc" "https:///nohost"; do
  call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"x\", \"attachments\": [{\"url\": \"https://example.com/a.png\"}, {\"url\": \"$u\"}]}"
  expect "an attachment url that is neither stored content nor an http(s) link is 400: '$u'" 400 'd["error"]["field"] == "attachments[1].url"'
done
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "x", "attachments": [{"url": "https://example.com/a.png", "size": -1}]}'
expect "a negative attachment size is 400" 400 'd["error"]["field"] == "attachments[0].size"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"txt": "typo"}'
expect "an unknown field is 400 naming it" 400 'd["error"]["field"] == "txt"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{}'
expect "a reply without text is 400 naming text" 400 'd["error"]["field"] == "text"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "", "html": null}'
expect "... so is one with empty text" 400 'd["error"]["field"] == "text"'
call POST /api/v1/conversations/99999/messages "$AGENT" '{"text": "hi"}'
expect "a reply to an unknown conversation is 404" 404
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"template": {"language": "en"}}'
expect "a template without a name is refused naming the field" 400 'd["error"]["field"] == "template.name"'
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"template": {"name": "order_update", "language": "en", "parameters": ["Kim"]}}'
expect "a template reply is queued" 202 'd["status"] == "queued"'
tmpl_id=$(jv 'd["id"]')
stored_tmpl=$(sqlite3 "$work/db.sqlite" "SELECT template FROM messages WHERE id = $tmpl_id")
check "the template is stored with the reply, for the channel's plugin" \
  $([ "$stored_tmpl" = '{"name":"order_update","language":"en","parameters":["Kim"]}' ]; echo $?) "$stored_tmpl"
wait_reply "$conv" "$tmpl_id" failed
expect "a template through a channel without templates fails with why, not sent empty" 200 \
  "[m for m in d['messages'] if m['id'] == $tmpl_id][0]['error'] == 'channel \"demo\" (plugin testplugin) sends no templates'"
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "done", "ticket_status": "Solved"}'
expect "a reply setting a status that needs properties is 422 naming them" 422 '"resolution" in d["error"]["message"]'
big=$(python3 -c 'print("{\"text\": \"" + "x" * 70000 + "\"}")')
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "$big"
expect "an oversized body is 413" 413

# --- attachment content ------------------------------------------------------------
# The test plugin hands the host the request body as an attachment's bytes.
printf 'PDF\000\001\002 binary \377\376 end' >"$work/att.bin"
attname='Quarterly "Q3" report ä;.pdf'
curl -s -H "X-Id: m-att" -H "X-Sender: kim" -H "X-Attach: $attname" -H "X-Attach-Type: application/pdf" \
  --data-binary @"$work/att.bin" "$base/hooks/demo/messages" >/dev/null
call GET "/api/v1/conversations/$conv" "$AGENT"
held='[a for m in d["messages"] for a in m["attachments"] if "id" in a]'
expect "stored attachment content gets an id and a url to download it" 200 \
  "len($held) == 1 and $held[0]['url'] == '/api/v1/attachments/%d' % $held[0]['id'] and $held[0]['size'] == $(stat -c %s "$work/att.bin")"
expect "an attachment that is only a link keeps its own url" 200 \
  '[a["url"] for m in d["messages"] for a in m["attachments"] if "id" not in a] == ["https://example.com/a.png", "https://example.com/b.txt"]'
attid=$(jv "$held[0]['id']")
call GET "/api/v1/attachments/$attid" "$AGENT"
cmp -s "$work/body" "$work/att.bin"
check "GET /api/v1/attachments/{id} answers the bytes as they came" $? "status $code"
curl -s -D "$work/att.headers" -o /dev/null -H "Authorization: Bearer $ADMIN" "$base/api/v1/attachments/$attid"
hdr() { tr -d '\r' <"$work/att.headers" | grep -i "^$1:" | cut -d' ' -f2-; }
check "it carries the stored Content-Type" $([ "$(hdr content-type)" = application/pdf ]; echo $?) "$(cat "$work/att.headers")"
check "and Content-Length" $([ "$(hdr content-length)" = "$(stat -c %s "$work/att.bin")" ]; echo $?) "$(cat "$work/att.headers")"
want_disp="attachment; filename=\"Quarterly _Q3_ report _;.pdf\"; filename*=UTF-8''Quarterly%20%22Q3%22%20report%20%C3%A4%3B.pdf"
check "Content-Disposition quotes the filename safely and gives it exactly in filename*" \
  $([ "$(hdr content-disposition)" = "$want_disp" ]; echo $?) "$(hdr content-disposition)"
check "the download is never sniffed" $([ "$(hdr x-content-type-options)" = nosniff ]; echo $?)
# An agent sends the stored file on: the plugin gets its bytes, type and name with the link.
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"attachment\", \"attachments\": [{\"url\": \"/api/v1/attachments/$attid\"}]}"
expect "a reply can attach a stored file by its link" 202
sent_on=$(jv 'd["id"]')
wait_reply "$conv" "$sent_on" sent
check "the plugin gets the stored bytes, type and name of a linked attachment" \
  $([ "$(jv "[m for m in d['messages'] if m['id'] == $sent_on][0]['external_id']")" = "got $(stat -c %s "$work/att.bin") bytes of application/pdf as $attname" ]; echo $?) \
  "status $status: $(jv "[m for m in d['messages'] if m['id'] == $sent_on][0]")"
# --- uploads: a file an agent sends with a reply ---
upload() { # upload TOKEN QUERY [CURL ARGS...]: POST /api/v1/attachments, checked like call
  local tok=$1 q=$2
  shift 2
  code=$(curl -s -o "$work/body" -w '%{http_code}' ${tok:+-H "Authorization: Bearer $tok"} "$@" "$base/api/v1/attachments$q")
  body=$(cat "$work/body")
  local why
  if ! why=$($CHECK "$SPEC" POST /api/v1/attachments "$code" "$work/body" "$work/hits" 2>&1); then
    not_ok "POST /api/v1/attachments answers as documented" "$why"
  fi
}
printf '\211PNG\r\n\032\n\000 upload\r\n--boundary-- \377' >"$work/up.png"
upname='Scan ä 1.png'
upload "$AGENT" "?filename=Scan%20%C3%A4%201.png" -H 'Content-Type: image/png' --data-binary @"$work/up.png"
expect "an upload is stored and named by its link" 201 \
  "d['url'] == '/api/v1/attachments/%d' % d['id'] and d['mime_type'] == 'image/png' and d['filename'] == '$upname' and d['size'] == $(stat -c %s "$work/up.png")"
upid=$(jv 'd["id"]')
call GET "/api/v1/attachments/$upid" "$AGENT"
cmp -s "$work/body" "$work/up.png"
check "an upload downloads as it was sent" $? "status $code"
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"attachment\", \"attachments\": [{\"url\": \"/api/v1/attachments/$upid\"}]}"
expect "a reply sends an upload by its link" 202
up_reply=$(jv 'd["id"]')
wait_reply "$conv" "$up_reply" sent
check "the plugin gets the upload's bytes, type and name" \
  $([ "$(jv "[m for m in d['messages'] if m['id'] == $up_reply][0]['external_id']")" = "got $(stat -c %s "$work/up.png") bytes of image/png as $upname" ]; echo $?) \
  "status $status: $(jv "[m for m in d['messages'] if m['id'] == $up_reply][0]")"
expect "the conversation lists the upload with its id and the type, name and size the channel was given" 200 \
  "[(a['id'], a['mime_type'], a['filename'], a['size']) for a in [m for m in d['messages'] if m['id'] == $up_reply][0]['attachments']] == [($upid, 'image/png', '$upname', $(stat -c %s "$work/up.png"))]"
owner=$(sqlite3 "$work/db.sqlite" "SELECT message_id || ',' || position FROM attachments WHERE id = $upid")
check "the reply's message owns the upload (it goes with the message's history)" \
  $([ "$owner" = "$up_reply,0" ]; echo $?) "$owner"
# A plugin hands its customer a signed link to a stored file (ABI 1.4).
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"link\", \"attachments\": [{\"url\": \"/api/v1/attachments/$upid\"}]}"
link_reply=$(jv 'd["id"]')
wait_reply "$conv" "$link_reply" sent
link=$(jv "[m for m in d['messages'] if m['id'] == $link_reply][0]['external_id']")
check "attachment_link gives the plugin a /files/ link" $([[ "$link" == "/files/$upid?expires="*"&sig="* ]]; echo $?) "$link"
code=$(curl -s -o "$work/body" -w '%{http_code}' "$base$link")
check "the link downloads the file without a token" $([ "$code" = 200 ] && cmp -s "$work/body" "$work/up.png"; echo $?) "status $code"
bad_sig=${link%?}0
[ "${link: -1}" = 0 ] && bad_sig=${link%?}1
code=$(curl -s -o "$work/body" -w '%{http_code}' "$base$bad_sig")
check "a link with a changed signature is 403" $([ "$code" = 403 ]; echo $?) "status $code"
code=$(curl -s -o "$work/body" -w '%{http_code}' "$base/files/$attid?${link#*\?}")
check "a link is for its own file only" $([ "$code" = 403 ]; echo $?) "status $code"
# Expiry to the second is test_hmac's (a fixed clock); here a 1-second link, later.
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"shortlink\", \"attachments\": [{\"url\": \"/api/v1/attachments/$upid\"}]}"
short_reply=$(jv 'd["id"]')
wait_reply "$conv" "$short_reply" sent
short=$(jv "[m for m in d['messages'] if m['id'] == $short_reply][0]['external_id']")
sleep 2
code=$(curl -s -o "$work/body" -w '%{http_code}' "$base$short")
check "a link ends when it expires" $([[ "$short" == "/files/$upid?"* ]] && [ "$code" = 403 ] && grep -q '"forbidden"' "$work/body"; echo $?) "$short: status $code: $(cat "$work/body")"
call POST "/api/v1/conversations/$conv/messages" "$AGENT" '{"text": "lost", "attachments": [{"url": "https://example.com/a.png"}, {"url": "/api/v1/attachments/99999"}]}'
expect "a reply naming a stored file that does not exist is 422 naming attachments" 422 \
  'd["error"]["field"] == "attachments" and "attachments[1]" in d["error"]["message"]'
upload "$AGENT" "" -H 'Content-Type:' --data-binary 'no type given'
expect "an upload without Content-Type is application/octet-stream, without a name" 201 \
  'd["mime_type"] == "application/octet-stream" and d["filename"] is None and d["size"] == 13'
stale=$(jv 'd["id"]')
upload "$AGENT" "?filename=a.txt" -F "file=@$work/up.png"
expect "a multipart form is refused, not stored envelope and all" 415 'd["error"]["field"] == "Content-Type"'
upload "$AGENT" "?filename=a.txt" -H 'Content-Type: text/plain' --data-binary ''
expect "an empty upload is 400" 400
upload "$AGENT" "?filename=a%01b.txt" -H 'Content-Type: text/plain' --data-binary 'x'
expect "a filename with a control character is 400" 400 'd["error"]["field"] == "filename"'
upload "$AGENT" "?filename=%FF.txt" -H 'Content-Type: text/plain' --data-binary 'x'
expect "a filename that is not UTF-8 is 400" 400 'd["error"]["field"] == "filename"'
upload "$AGENT" "" -H 'Content-Type: not a type' --data-binary 'x'
expect "a Content-Type that is no media type is 400" 400 'd["error"]["field"] == "Content-Type"'
head -c 50000 /dev/zero >"$work/big.bin"
upload "$AGENT" "" -H 'Content-Type: application/zip' --data-binary @"$work/big.bin"
expect "a file over attachments.max_bytes is 413" 413 '"attachments.max_bytes" in d["error"]["message"]'
upload "" "" --data-binary 'x'
expect "an upload needs a token" 401
# An upload no reply named for a day goes at the next upload.
sqlite3 -cmd '.timeout 5000' "$work/db.sqlite" "UPDATE attachments SET created_at = created_at - 86400001 WHERE id = $stale"
upload "$AGENT" "" --data-binary 'fresh'
expect "a fresh upload is stored" 201
fresh=$(jv 'd["id"]')
call GET "/api/v1/attachments/$stale" "$AGENT"
expect "an upload no reply named within a day is deleted" 404
check "and its id is not given again" $([ "$fresh" -gt "$stale" ]; echo $?) "$stale then $fresh"
call POST "/api/v1/conversations/$conv/messages" "$AGENT" "{\"text\": \"late\", \"attachments\": [{\"url\": \"/api/v1/attachments/$stale\"}]}"
expect "a reply naming a deleted upload is 422" 422 'd["error"]["field"] == "attachments"'
call GET "/api/v1/attachments/$upid" "$AGENT"
expect "an upload a reply named is kept" 200
call GET /api/v1/attachments/99999 "$AGENT"
expect "an unknown attachment is 404" 404 'd["error"]["code"] == "not_found"'
call GET /api/v1/attachments/abc "$AGENT"
expect "a non-numeric attachment id is 404" 404
call GET "/api/v1/attachments/$attid" ""
expect "an attachment needs a token" 401

# --- tickets and pipelines -----------------------------------------------------
call GET "/api/v1/tickets/$ticket" "$AGENT"
expect "a ticket" 200 'd["pipeline"] == "Billing" and d["status"] == "New"'
before=$(jv 'd["updated_at"]')
sleep 0.01
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"priority": "high"}'
expect "PATCH priority, which updates updated_at" 200 "d['priority'] == 'high' and d['updated_at'] > $before"
ev=$(sqlite3 "$work/db.sqlite" "SELECT data FROM events WHERE type = 'ticket.updated' ORDER BY id DESC LIMIT 1")
python3 -c 'import json,sys; e=json.loads(sys.argv[1]); sys.exit(0 if e["ticket_id"] == int(sys.argv[2]) and e["priority"] == "high" and e["status"] == e["previous_status"] == "New" else 1)' "$ev" "$ticket"
check "a priority change alone is a ticket.updated, its status unchanged" $? "$ev"
# A PATCH that changes nothing (the priority, status and properties it has) is answered, but is no change:
# updated_at stays, and no ticket.updated is published.
events() { sqlite3 "$work/db.sqlite" "SELECT count(*) FROM events WHERE type IN ('ticket.updated', 'ticket.assigned')"; }
n_events=$(events)
same_at=$(jv 'd["updated_at"]')
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"priority": "high", "status": "New", "properties": {}}'
expect "a PATCH with what the ticket has already is 200, not an update" 200 "d['updated_at'] == $same_at"
check "and publishes no event" "$([ "$(events)" = "$n_events" ]; echo $?)" "$(events) vs $n_events"
before=$(jv 'd["updated_at"]')
sleep 0.01
call PATCH "/api/v1/tickets/$ticket" "$AGENT" "{\"owner\": $(jv 'json.dumps(d["owner"])')}"
expect "PATCH owner updates updated_at" 200 "d['updated_at'] > $before"
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"status": "Solved"}'
expect "a status needing missing properties is 422 naming them" 422 '"resolution" in d["error"]["message"]'
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"status": "Solved", "properties": {"resolution": "refunded"}}'
expect "with the property the status is set" 200 'd["status"] == "Solved" and d["closed"] is True and d["properties"]["resolution"] == "refunded"'
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"priority": 3}'
expect "a wrong type on a ticket is 400 naming the field" 400 'd["error"]["field"] == "priority"'
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"owner": "nobody"}'
expect "an owner who is not a user is 422 naming owner" 422 'd["error"]["field"] == "owner"'
call PATCH "/api/v1/tickets/$ticket" "$AGENT" '{"status": "Limbo"}'
expect "a status its pipeline has not is 422 naming status" 422 'd["error"]["field"] == "status"'
call PATCH /api/v1/tickets/99999 "$AGENT" '{"priority": "low"}'
expect "an unknown ticket is 404" 404
call PATCH /api/v1/tickets/99999 "$AGENT" '{"owner": "nobody"}'
expect "an unknown ticket is 404 before its owner is looked at" 404
call GET /api/v1/tickets/99999 "$AGENT"
expect "GET an unknown ticket is 404" 404
call GET /api/v1/pipelines "$AGENT"
expect "pipelines with ordered statuses" 200 \
  '[s["name"] for p in d["items"] if p["name"] == "Billing" for s in p["statuses"]] == ["New", "Solved"]'

# --- reports --------------------------------------------------------------------
# kim's conversation ($conv) was answered and its ticket is now Solved (closed); lee's is open, unanswered.
call GET /api/v1/reports "$AGENT"
expect "a report of the last 7 days counts conversations, messages and waits" 200 \
  'd["to"] - d["from"] == 7 * 86400000 and d["conversations"] == {"opened": 2, "closed": 1, "open": 1} and d["messages"]["inbound"] >= 3 and d["messages"]["outbound"] >= 1 and d["first_response"]["answered"] == 1 and d["first_response"]["unanswered"] == 1 and d["first_response"]["median_seconds"] is not None and d["resolution"]["count"] == 1 and d["group_by"] is None and "groups" not in d'
call GET "/api/v1/reports?group_by=channel&inbox=Support" "$ADMIN"
expect "group_by=channel gives the figures per channel" 200 \
  '[g["key"] for g in d["groups"]] == ["demo"] and d["groups"][0]["conversations"] == d["conversations"] and d["inbox"] == "Support"'
call GET "/api/v1/reports?group_by=agent" "$AGENT"
expect "group_by=agent: nobody was assigned, and the replies were of a token of no user" 200 '[g["key"] for g in d["groups"]] == [None]'
call GET "/api/v1/reports?channel=nope" "$AGENT"
expect "a channel with nothing gives zeros and null times" 200 \
  'd["conversations"]["opened"] == 0 and d["first_response"]["median_seconds"] is None and d["resolution"]["p90_seconds"] is None'
call GET "/api/v1/reports?channel=nope&group_by=channel" "$AGENT"
expect "grouped with nothing to group: no groups" 200 'd["groups"] == []'
call GET "/api/v1/reports?from=0&to=1000" "$AGENT"
expect "from and to are milliseconds since the epoch" 200 'd["from"] == 0 and d["to"] == 1000 and d["conversations"]["opened"] == 0'
call GET /api/v1/reports ""
expect "a report needs a token" 401
for bad in "from=yesterday:from" "to=-5:to" "from=1.5:from" "to=:to" "from=2000&to=1000:to" "from=1000&to=1000:to" \
  "from=0&to=$((367 * 86400000)):from" "group_by=team:group_by"; do
  call GET "/api/v1/reports?${bad%:*}" "$AGENT"
  expect "a report with ${bad%:*} is 422 naming ${bad##*:}" 422 "d['error']['field'] == '${bad##*:}'"
done
call GET "/api/v1/reports?from=0&to=$((366 * 86400000))" "$AGENT"
expect "a range of 366 days is allowed" 200
call GET "/api/v1/reports?inbox=" "$AGENT"
expect "an empty filter is 400, not no filter" 400 'd["error"]["field"] == "inbox"'

# --- users and teams --------------------------------------------------------------
call POST /api/v1/users "$ADMIN" '{"name": "bob", "email": "bob@example.com", "skills": ["fr"], "capacity": 3}'
expect "POST a user is 201" 201 'd["name"] == "bob" and d["capacity"] == 3 and d["seat"] is True'
call POST /api/v1/users "$ADMIN" '{"name": "bob"}'
expect "POST a taken name is 409" 409
call POST /api/v1/users "$ADMIN" '{"name": "carl", "capacity": "many"}'
expect "a wrong type on a user is 400 naming the field" 400 'd["error"]["field"] == "capacity"'
call POST /api/v1/users "$ADMIN" '{"name": "carl", "skills": [1]}'
expect "skills must be strings" 400 'd["error"]["field"] == "skills"'
call POST /api/v1/users "$ADMIN" '{"email": "x@example.com"}'
expect "a user needs a name" 400 'd["error"]["field"] == "name"'
call POST /api/v1/users "$ADMIN" '{"name": "none"}'
expect "no user is called none (?assignee=none is the unassigned)" 400 'd["error"]["field"] == "name" and "assignee=none" in d["error"]["message"]'
call PATCH /api/v1/users/bob "$ADMIN" '{"available": false}'
expect "PATCH a user" 200 'd["available"] is False and d["email"] == "bob@example.com"'
call PATCH /api/v1/users/ghost "$ADMIN" '{"available": false}'
expect "PATCH an unknown user is 404" 404
call PATCH /api/v1/users/bob "$AGENT" '{"available": true}'
expect "an agent cannot edit users" 403
call GET /api/v1/users "$AGENT"
expect "users list, config users with their avatar" 200 '[u["name"] for u in d["items"]] == ["dana", "bob"] and d["items"][0]["avatar_url"] == "https://cdn.example.com/dana.png" and d["items"][1]["avatar_url"] is None'
call POST /api/v1/teams "$ADMIN" '{"name": "billing", "users": ["bob"]}'
expect "POST a team is 201" 201 'd["users"] == ["bob"]'
ev=$(sqlite3 "$work/db.sqlite" "SELECT data FROM events WHERE type = 'user.updated' ORDER BY id DESC LIMIT 1")
python3 -c 'import json,sys; u=json.loads(sys.argv[1]); sys.exit(0 if u["name"] == "bob" and u["teams"] == ["billing"] else 1)' "$ev"
check "a team's new member gets user.updated with the team" $? "$ev"
call POST /api/v1/teams "$ADMIN" '{"name": "ghosts", "users": ["nobody"]}'
expect "a team member who is not a user is 422 naming users" 422 'd["error"]["field"] == "users"'
call POST /api/v1/users "$ADMIN" '{"name": "erin", "teams": ["billing", "nowhere"]}'
expect "a user's team that does not exist is 422 naming it, and nothing is saved" 422 '"nowhere" in d["error"]["message"] and d["error"]["field"] == "teams"'
call GET /api/v1/teams "$AGENT"
expect "... no team was made for it" 200 'not any(t["name"] == "nowhere" for t in d["items"])'
call PATCH /api/v1/users/bob "$ADMIN" '{"teams": ["nowhere"]}'
expect "... nor in a PATCH, which keeps the user's teams" 422 '"nowhere" in d["error"]["message"]'
call GET /api/v1/users "$AGENT"
expect "... and no user erin was made" 200 'not any(u["name"] == "erin" for u in d["items"]) and [u["teams"] for u in d["items"] if u["name"] == "bob"] == [["billing"]]'
call PATCH /api/v1/teams/billing "$ADMIN" '{"users": []}'
expect "PATCH a team" 200 'd["users"] == []'
ev=$(sqlite3 "$work/db.sqlite" "SELECT data FROM events WHERE type = 'user.updated' ORDER BY id DESC LIMIT 1")
python3 -c 'import json,sys; u=json.loads(sys.argv[1]); sys.exit(0 if u["name"] == "bob" and u["teams"] == [] else 1)' "$ev"
check "... and the member it loses one without it" $? "$ev"
call PATCH /api/v1/teams/nope "$ADMIN" '{"users": []}'
expect "PATCH an unknown team is 404" 404
call GET /api/v1/teams "$AGENT"
expect "teams list" 200 'any(t["name"] == "billing" for t in d["items"])'
call POST /api/v1/users "$ADMIN" '{"name": "temp-user"}'
call POST /api/v1/teams "$ADMIN" '{"name": "temp-team", "users": ["temp-user"]}'
call DELETE /api/v1/teams/temp-team "$AGENT"
expect "an agent cannot delete teams" 403
call DELETE /api/v1/teams/temp-team "$ADMIN"
expect "DELETE a team" 200 'd["name"] == "temp-team"'
call DELETE /api/v1/teams/temp-team "$ADMIN"
expect "DELETE an unknown team is 404" 404
call DELETE /api/v1/users/temp-user "$ADMIN"
expect "DELETE a user" 200 'd["name"] == "temp-user" and d["requeued"] == 0 and d["tokens_revoked"] == 0'
call DELETE /api/v1/users/temp-user "$ADMIN"
expect "DELETE an unknown user is 404" 404
# A PATCH racing a DELETE never brings the name back, and of two POSTs of
# one name only one is 201: the store checks the name in the write itself.
revived=0 created=
for i in 1 2 3 4 5 6; do
  for kind in users teams; do
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $ADMIN" --data-binary "{\"name\": \"race-$i\"}" "$base/api/v1/$kind"
    patch='{"available": false}'
    [ "$kind" = teams ] && patch='{"users": []}'
    curl -s -o /dev/null -X PATCH -H "Authorization: Bearer $ADMIN" --data-binary "$patch" "$base/api/v1/$kind/race-$i" &
    p1=$!
    curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ADMIN" "$base/api/v1/$kind/race-$i" &
    p2=$!
    wait $p1 $p2
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H "Authorization: Bearer $ADMIN" --data-binary "$patch" "$base/api/v1/$kind/race-$i")" = 404 ] ||
      revived=$((revived + 1))
    pids=
    for _ in 1 2; do
      curl -s -o /dev/null -w '%{http_code}\n' -X POST -H "Authorization: Bearer $ADMIN" --data-binary "{\"name\": \"twin-$i\"}" "$base/api/v1/$kind" >>"$work/twins-$kind-$i" &
      pids="$pids $!"
    done
    wait $pids
    created="$created $(sort "$work/twins-$kind-$i" | tr '\n' ' ')"
    curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ADMIN" "$base/api/v1/$kind/twin-$i"
  done
done
check "a PATCH racing a DELETE of a user or team never brings it back" $([ "$revived" = 0 ]; echo $?) "$revived revived"
check "two POSTs of one name: one 201, one 409" \
  $([ "$(echo $created | tr ' ' '\n' | grep -c '^201$')" = 12 ] && [ "$(echo $created | tr ' ' '\n' | grep -c '^409$')" = 12 ]; echo $?) "$created"
call PATCH /api/v1/users/bob "$ADMIN" '{"email": null}'
expect "PATCH email null removes a user's email" 200 'd["email"] is None and d["capacity"] == 3'
call PATCH /api/v1/users/bob "$ADMIN" '{"email": "bob@example.com"}'
expect "... and PATCH sets it again" 200 'd["email"] == "bob@example.com"'

# --- avatars -----------------------------------------------------------------------
for bad in '"ftp://cdn.example.com/e.png"' '"cdn.example.com/e.png"' '"https://cdn.example.com/a b.png"' '"https://"' '"javascript:alert(1)"'; do
  call POST /api/v1/users "$ADMIN" "{\"name\": \"erin\", \"avatar_url\": $bad}"
  expect "avatar_url $bad is refused naming the field" 400 'd["error"]["field"] == "avatar_url" and "absolute http or https URL" in d["error"]["message"]'
done
call POST /api/v1/users "$ADMIN" '{"name": "erin", "avatar_url": 5}'
expect "an avatar_url of the wrong type is 400" 400 'd["error"]["code"] == "invalid_type" and d["error"]["field"] == "avatar_url"'
call POST /api/v1/users "$ADMIN" '{"name": "erin", "email": "erin@example.com", "avatar_url": "https://cdn.example.com/erin.png"}'
expect "POST a user with an avatar" 201 'd["avatar_url"] == "https://cdn.example.com/erin.png"'
call PATCH /api/v1/users/erin "$ADMIN" '{"avatar_url": "http://cdn.example.com/erin-2.png"}'
expect "PATCH changes the avatar" 200 'd["avatar_url"] == "http://cdn.example.com/erin-2.png"'
call PATCH /api/v1/users/erin "$ADMIN" '{"avatar_url": "mailto:erin@example.com"}'
expect "PATCH validates the avatar" 400 'd["error"]["field"] == "avatar_url"'
call PATCH /api/v1/users/erin "$ADMIN" '{"capacity": 4}'
expect "PATCH without avatar_url keeps it" 200 'd["avatar_url"] == "http://cdn.example.com/erin-2.png"'

# --- tokens of a user: replies carry their author ------------------------------------
call POST /api/v1/tokens "$ADMIN" '{"name": "erin-laptop", "role": "agent", "user": "ghost"}'
expect "a token of an unknown user is 422 naming the field" 422 'd["error"]["field"] == "user" and "\"ghost\" does not exist" in d["error"]["message"]'
call POST /api/v1/tokens "$ADMIN" '{"name": "erin-laptop", "role": "agent", "user": 7}'
expect "a user of the wrong type is 400" 400 'd["error"]["field"] == "user"'
call POST /api/v1/tokens "$ADMIN" '{"name": "erin-laptop", "role": "agent", "user": ""}'
expect "an empty user is 400" 400 'd["error"]["field"] == "user"'
call POST /api/v1/tokens "$ADMIN" '{"name": "erin-laptop", "role": "agent", "user": "erin"}'
expect "POST a token of a user" 201 'd["user"] == "erin" and d["token"].startswith("sbt_")'
ERIN=$(jv 'd["token"]')
call POST /api/v1/tokens "$ADMIN" '{"name": "nobodys", "role": "agent", "user": null}'
expect "a token of nobody (user null)" 201 'd["user"] is None'
call GET /api/v1/tokens "$ADMIN"
expect "tokens list shows whose they are" 200 '{t["name"]: t["user"] for t in d["items"]}["erin-laptop"] == "erin"'
call POST "/api/v1/conversations/$conv/messages" "$ERIN" '{"text": "Erin here"}'
expect "a reply through a user's token is queued" 202
erin_reply=$(jv 'd["id"]')
wait_reply "$conv" "$erin_reply" sent
expect "the reply made with a user's token carries the user as author" 200 "[m for m in d['messages'] if m['id'] == $erin_reply][0]['user'] == 'erin'"
expect "replies made with a token of nobody have no author" 200 "[m for m in d['messages'] if m['id'] == $reply][0]['user'] is None"
call POST "/api/v1/conversations/$conv/messages" "$DANA" '{"text": "Dana here"}'
dana_reply=$(jv 'd["id"]')
wait_reply "$conv" "$dana_reply" sent
expect "a reply through a CLI-made token of a config user carries that user" 200 "[m for m in d['messages'] if m['id'] == $dana_reply][0]['user'] == 'dana'"
python3 - "$work/db.sqlite" "$erin_reply" <<'EOF2'
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute(
    "SELECT u.name FROM messages m JOIN users u ON u.id = m.user_id WHERE m.id = ?", (int(sys.argv[2]),)).fetchone()
sys.exit(0 if row == ("erin",) else 1)
EOF2
check "the author is stored as the message's user_id" $?
# --- internal notes: agents only, never the customer ---
outbox_before=$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM outbox")
call POST "/api/v1/conversations/$conv/notes" "$DANA" '{"text": "VIP: refund approved by finance"}'
expect "an internal note is added with its author" 201 \
  "d['thread_id'] == $conv and d['user'] == 'dana' and d['text'] == 'VIP: refund approved by finance'"
note=$(jv 'd["id"]')
call POST "/api/v1/conversations/$conv/notes" "$AGENT" '{"text": "second look"}'
expect "a note through a token of nobody has no author" 201 'd["user"] is None'
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "the conversation lists its notes, oldest first, apart from its messages" 200 \
  "[n['text'] for n in d['notes']] == ['VIP: refund approved by finance', 'second look'] and d['notes'][0]['id'] == $note and all(m['text'] != 'second look' for m in d['messages'])"
call GET "/api/v1/conversations?q=FINANCE" "$AGENT"
expect "the search finds a conversation by its notes" 200 "$conv in [c['id'] for c in d['items']]"
check "a note never reaches the outbox" $([ "$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM outbox")" = "$outbox_before" ]; echo $?)
check "a note is a note.created event" \
  $([ "$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM events WHERE type = 'note.created'")" = 2 ]; echo $?)
call POST "/api/v1/conversations/$conv/notes" "$AGENT" '{"text": ""}'
expect "an empty note is 400" 400 'd["error"]["field"] == "text"'
call POST "/api/v1/conversations/$conv/notes" "$AGENT" '{}'
expect "a note without text is 400" 400 'd["error"]["field"] == "text"'
call POST "/api/v1/conversations/$conv/notes" "$AGENT" '{"text": 5}'
expect "a note whose text is no string is 400" 400 'd["error"]["field"] == "text"'
call POST "/api/v1/conversations/$conv/notes" "$AGENT" '{"text": "x", "private": true}'
expect "an unknown key is 400" 400 'd["error"]["field"] == "private"'
call POST /api/v1/conversations/99999/notes "$AGENT" '{"text": "x"}'
expect "a note on an unknown conversation is 404" 404
call POST "/api/v1/conversations/$conv/notes" "" '{"text": "x"}'
expect "a note needs a token" 401
# --- canned responses: saved replies, filled in with the contact's and agent's names ---
call POST /api/v1/canned "$AGENT" '{"name": "refunds", "text": "x"}'
expect "agents cannot write canned responses" 403
call POST /api/v1/canned "$ADMIN" '{"name": "refunds", "text": "Hi {{contact.first_name}}, refunds take 5 days. {{agent.name}} ({{ticket.id}})"}'
expect "an admin saves a canned response" 201 'd["name"] == "refunds" and d["updated_by"] is None and "{{agent.name}}" in d["text"]'
call POST /api/v1/canned "$ADMIN" '{"name": "refunds", "text": "again"}'
expect "a taken name is 409" 409
call POST /api/v1/canned "$ADMIN" '{"name": "bad name", "text": "x"}'
expect "a name with a space is 400" 400 'd["error"]["field"] == "name"'
call POST /api/v1/canned "$ADMIN" '{"name": "empty", "text": ""}'
expect "empty text is 400" 400 'd["error"]["field"] == "text"'
call POST /api/v1/canned "$ADMIN" '{"name": "x", "text": "y", "shared": true}'
expect "an unknown key is 400" 400 'd["error"]["field"] == "shared"'
call GET "/api/v1/canned?q=REFUNDS" "$AGENT"
expect "agents list canned responses, searched by name or text" 200 '[c["name"] for c in d["items"]] == ["refunds"] and d["next_cursor"] is None'
call GET "/api/v1/canned?q=nothing-like-it" "$AGENT"
expect "a search finding none is an empty page" 200 'd["items"] == []'
call GET "/api/v1/conversations/$conv" "$AGENT"
first=$(jv 'd["contact"]["name"].split(" ")[0]')
call POST "/api/v1/conversations/$conv/messages" "$DANA" '{"canned": "refunds"}'
expect "a reply sends a canned response by name" 202
canned_reply=$(jv 'd["id"]')
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "filled in with the contact's first name and the author's name, other placeholders as written" 200 \
  "[m['text'] for m in d['messages'] if m['id'] == $canned_reply] == ['Hi $first, refunds take 5 days. dana ({{ticket.id}})']"
call POST "/api/v1/conversations/$conv/messages" "$DANA" '{"canned": "refunds", "text": "and more"}'
expect "text and a canned response together are 400" 400 'd["error"]["field"] == "canned"'
call POST "/api/v1/conversations/$conv/messages" "$DANA" '{"canned": "nosuch"}'
expect "an unknown canned response is 422 naming it" 422 'd["error"]["field"] == "canned"'
call PATCH /api/v1/canned/refunds "$ADMIN" '{"text": "Refunds take 3 days now."}'
expect "PATCH replaces its text" 200 'd["text"] == "Refunds take 3 days now."'
call PATCH /api/v1/canned/nosuch "$ADMIN" '{"text": "x"}'
expect "PATCH an unknown one is 404" 404
call DELETE /api/v1/canned/refunds "$ADMIN"
expect "DELETE removes it" 200 'd["deleted"] == "refunds"'
call DELETE /api/v1/canned/refunds "$ADMIN"
expect "DELETE again is 404" 404

# --- labels: admins keep the set, agents label conversations ---
call POST /api/v1/labels "$AGENT" '{"name": "Billing"}'
expect "agents cannot create labels" 403
call POST /api/v1/labels "$ADMIN" '{"name": "Billing", "color": "#1f77b4", "description": "Invoices and refunds"}'
expect "an admin creates a label" 201 \
  'd["name"] == "Billing" and d["color"] == "#1f77b4" and d["description"] == "Invoices and refunds" and d["conversations"] == 0'
call POST /api/v1/labels "$ADMIN" '{"name": "billing"}'
expect "a label of the same name in another case is 409" 409 'd["error"]["code"] == "conflict"'
call POST /api/v1/labels "$ADMIN" '{"name": "VIP customer", "color": null}'
expect "a label without colour or description" 201 'd["color"] is None and d["description"] is None'
call POST /api/v1/labels "$ADMIN" '{"name": "urgent", "color": "#FF0000"}'
expect "a colour in capitals" 201 'd["color"] == "#FF0000"'
for bad in '""' '"a,b"' '"tab\there"' '"nl\u0085x"' '" padded"' "\"$(printf 'x%.0s' $(seq 65))\""; do
  call POST /api/v1/labels "$ADMIN" "{\"name\": $bad}"
  expect "a label name ${bad:0:12} is 422 naming the field" 422 'd["error"]["field"] == "name"'
done
for bad in '"red"' '"#12345"' '"#1234567"' '"#12345g"'; do
  call POST /api/v1/labels "$ADMIN" "{\"name\": \"x\", \"color\": $bad}"
  expect "a colour $bad is 422 naming the field" 422 'd["error"]["field"] == "color"'
done
call POST /api/v1/labels "$ADMIN" "{\"name\": \"x\", \"description\": \"$(printf 'd%.0s' $(seq 501))\"}"
expect "a description over 500 bytes is 422" 422 'd["error"]["field"] == "description"'
call POST /api/v1/labels "$ADMIN" '{"name": 5}'
expect "a label name of the wrong type is 400" 400 'd["error"]["field"] == "name"'
call POST /api/v1/labels "$ADMIN" '{"color": "#000000"}'
expect "a label needs a name" 400 'd["error"]["field"] == "name"'
call POST /api/v1/labels "$ADMIN" '{"name": "x", "colour": "#000000"}'
expect "an unknown label field is 400" 400 'd["error"]["field"] == "colour"'
call POST /api/v1/labels "$ADMIN" '{"name": '
expect "a malformed label is 400" 400 'd["error"]["code"] == "invalid_json"'
call POST /api/v1/labels "" '{"name": "x"}'
expect "labels need a token" 401
call GET /api/v1/labels "$AGENT"
expect "agents list labels by name (any case)" 200 \
  '[l["name"] for l in d["items"]] == ["Billing", "urgent", "VIP customer"] and d["next_cursor"] is None'
call PATCH "/api/v1/labels/vip%20CUSTOMER" "$ADMIN" '{"color": "#00aa00", "description": "Pays for support"}'
expect "PATCH finds a label by its name in any case" 200 \
  'd["name"] == "VIP customer" and d["color"] == "#00aa00" and d["description"] == "Pays for support"'
call PATCH /api/v1/labels/urgent "$AGENT" '{"color": null}'
expect "agents cannot change labels" 403
call PATCH /api/v1/labels/nope "$ADMIN" '{"color": null}'
expect "PATCH an unknown label is 404" 404
call PATCH /api/v1/labels/urgent "$ADMIN" '{"name": "BILLING"}'
expect "renaming a label to another's name is 409" 409
call PATCH /api/v1/labels/urgent "$ADMIN" '{"color": "blue"}'
expect "PATCH validates the colour" 422 'd["error"]["field"] == "color"'
call PATCH /api/v1/labels/urgent "$ADMIN" '{"name": null}'
expect "a label's name cannot be null" 400 'd["error"]["field"] == "name"'
call PATCH "/api/v1/conversations/$conv" "$AGENT" '{"labels": ["vip customer", "billing"]}'
expect "PATCH labels sets a conversation's labels, named as they were written, by name" 200 \
  "d['id'] == $conv and d['labels'] == ['Billing', 'VIP customer']"
call POST "/api/v1/conversations/$conv/labels" "$DANA" '{"add": ["urgent"], "remove": ["billing"]}'
expect "POST labels adds and removes only the labels named" 200 'd["labels"] == ["urgent", "VIP customer"]'
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "the conversation carries its labels" 200 'd["labels"] == ["urgent", "VIP customer"]'
call GET "/api/v1/conversations?label=URGENT" "$AGENT"
expect "?label= lists the conversations carrying it" 200 \
  "[c['id'] for c in d['items']] == [$conv] and d['items'][0]['labels'] == ['urgent', 'VIP customer']"
call GET "/api/v1/conversations?label=urgent&status=closed&channel=demo" "$AGENT"
expect "?label= combines with the other filters" 200 "[c['id'] for c in d['items']] == [$conv]"
call GET "/api/v1/conversations?label=urgent&status=open" "$AGENT"
expect "?label= and a filter its conversations fail list none" 200 'd["items"] == []'
call GET "/api/v1/conversations?label=billing" "$AGENT"
expect "a label on no conversation lists none" 200 'd["items"] == []'
call GET "/api/v1/conversations?label=nothing-like-it" "$AGENT"
expect "an unknown ?label= is an empty page, not an error" 200 'd["items"] == []'
call GET "/api/v1/conversations?label=" "$AGENT"
expect "an empty ?label= is 400" 400 'd["error"]["field"] == "label"'
call PATCH "/api/v1/conversations/$conv" "$AGENT" '{"labels": ["urgent", "nope"]}'
expect "PATCH with a label that does not exist is 422 naming it" 422 \
  'd["error"]["field"] == "labels" and "\"nope\"" in d["error"]["message"]'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{"add": ["gone"]}'
expect "POST with a label that does not exist is 422 naming it" 422 \
  'd["error"]["field"] == "labels" and "\"gone\"" in d["error"]["message"]'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{"add": ["Billing"], "remove": ["BILLING"]}'
expect "a label both added and removed is 422" 422 'd["error"]["field"] == "labels"'
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "a refused label change changes nothing" 200 'd["labels"] == ["urgent", "VIP customer"]'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{}'
expect "POST labels needs add or remove" 400 'd["error"]["field"] == "add"'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{"add": "urgent"}'
expect "add must be an array" 400 'd["error"]["field"] == "add"'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{"remove": [1]}'
expect "label names must be strings" 400 'd["error"]["field"] == "remove"'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{"add": ["urgent"], "tags": []}'
expect "an unknown field of a label change is 400" 400 'd["error"]["field"] == "tags"'
call POST "/api/v1/conversations/$conv/labels" "$AGENT" '{"add": ['
expect "a malformed label change is 400" 400 'd["error"]["code"] == "invalid_json"'
call POST /api/v1/conversations/99999/labels "$AGENT" '{"add": ["urgent"]}'
expect "labelling an unknown conversation is 404" 404
call POST "/api/v1/conversations/$conv/labels" "" '{"add": ["urgent"]}'
expect "labelling needs a token" 401
call PATCH "/api/v1/conversations/$conv" "$AGENT" '{"labels": "urgent"}'
expect "PATCH labels must be an array" 400 'd["error"]["field"] == "labels"'
call PATCH "/api/v1/conversations/$conv" "$AGENT" '{"labels": [true]}'
expect "PATCH labels must be names" 400 'd["error"]["field"] == "labels"'
changes=$(sqlite3 "$work/db.sqlite" "SELECT group_concat(channel || ' ' || inbox || ' ' || data, ' | ') FROM events WHERE type = 'thread.labels'")
check "each change of a conversation's labels is a thread.labels event of its channel and inbox" \
  $([ "$changes" = "demo Support {\"thread_id\":$conv,\"labels\":[\"Billing\",\"VIP customer\"]} | demo Support {\"thread_id\":$conv,\"labels\":[\"urgent\",\"VIP customer\"]}" ]; echo $?) "$changes"
call GET /api/v1/labels "$AGENT"
expect "each label counts the conversations carrying it" 200 \
  '[(l["name"], l["conversations"]) for l in d["items"]] == [("Billing", 0), ("urgent", 1), ("VIP customer", 1)]'
call PATCH /api/v1/labels/urgent "$ADMIN" '{"name": "Priority"}'
expect "an admin renames a label" 200 'd["name"] == "Priority" and d["color"] == "#FF0000" and d["conversations"] == 1'
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "a renamed label stays on its conversations" 200 'd["labels"] == ["Priority", "VIP customer"]'
call DELETE "/api/v1/labels/vip%20customer" "$AGENT"
expect "agents cannot delete labels" 403
call DELETE "/api/v1/labels/vip%20customer" "$ADMIN"
expect "DELETE a label says how many conversations lost it" 200 'd == {"deleted": "VIP customer", "conversations": 1}'
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "a deleted label is off every conversation" 200 'd["labels"] == ["Priority"]'
call DELETE "/api/v1/labels/vip%20customer" "$ADMIN"
expect "DELETE an unknown label is 404" 404

# --- erasing a contact: everything of theirs goes ---
printf 'private scan' >"$work/erase.bin"
curl -s -H "X-Id: erase-1" -H "X-Sender: eraseme" -H "X-Attach: id.png" -H "X-Attach-Type: image/png" \
  --data-binary @"$work/erase.bin" "$base/hooks/demo/messages" >/dev/null
inbound demo erase-2 eraseme "my passport number is 12345678"
call GET "/api/v1/conversations?q=passport" "$AGENT"
econv=$(jv 'd["items"][0]["id"]')
econtact=$(jv 'd["items"][0]["contact"]["id"]')
eticket=$(jv 'd["items"][0]["ticket"]["id"]')
call GET "/api/v1/conversations/$econv" "$AGENT"
eatt=$(jv '[a["id"] for m in d["messages"] for a in m["attachments"] if "id" in a][0]')
call POST "/api/v1/conversations/$econv/notes" "$AGENT" '{"text": "asked for erasure"}'
call POST "/api/v1/conversations/$econv/labels" "$AGENT" '{"add": ["Billing"]}'
call POST "/api/v1/conversations/$econv/messages" "$AGENT" '{"text": "retry"}'
call GET "/api/v1/contacts/$econtact/export" "$AGENT"
expect "agents cannot export a contact's data" 403
call GET "/api/v1/contacts/$econtact/export" "$ADMIN"
expect "an admin exports all of a contact's data: the contact, each conversation with labels, messages, notes and attachment links" 200 \
  "d['contact']['id'] == $econtact and [c['id'] for c in d['conversations']] == [$econv] and any('passport' in (m['text'] or '') for m in d['conversations'][0]['messages']) and [n['text'] for n in d['conversations'][0]['notes']] == ['asked for erasure'] and any(a.get('url') == '/api/v1/attachments/$eatt' for m in d['conversations'][0]['messages'] for a in m['attachments']) and d['conversations'][0]['labels'] == ['Billing'] and d['exported_at'] > 0"
call GET /api/v1/contacts/99999/export "$ADMIN"
expect "exporting an unknown contact is 404" 404
call DELETE "/api/v1/contacts/$econtact" "$AGENT"
expect "agents cannot erase contacts" 403
call DELETE "/api/v1/contacts/$econtact" "$ADMIN"
expect "an admin erases a contact with their conversations" 200 "d['deleted'] == $econtact and d['conversations'] == 1"
call GET "/api/v1/conversations/$econv" "$AGENT"
expect "the conversation is gone" 404
call GET "/api/v1/tickets/$eticket" "$AGENT"
expect "its ticket is gone" 404
call GET "/api/v1/attachments/$eatt" "$AGENT"
expect "its attachments are gone" 404
call GET "/api/v1/conversations?q=passport" "$AGENT"
expect "the search finds nothing of theirs" 200 'd["items"] == []'
call GET "/api/v1/contacts?q=eraseme" "$AGENT"
expect "the contact is gone" 200 'd["items"] == []'
left=$(sqlite3 "$work/db.sqlite" "SELECT (SELECT count(*) FROM messages WHERE thread_id = $econv) || ' ' || (SELECT count(*) FROM notes WHERE thread_id = $econv) || ' ' || (SELECT count(*) FROM identities WHERE contact_id = $econtact) || ' ' || (SELECT count(*) FROM outbox o LEFT JOIN messages m ON m.id = o.message_id WHERE m.id IS NULL)")
check "no message, note, identity or queued reply of theirs is left" $([ "$left" = "0 0 0 0" ]; echo $?) "$left"
check "their conversation's labels go, the label stays" \
  $([ "$(sqlite3 "$work/db.sqlite" "SELECT (SELECT count(*) FROM thread_labels WHERE thread_id = $econv) || ' ' || (SELECT count(*) FROM labels WHERE name = 'Billing')")" = "0 1" ]; echo $?)
sqlite3 -cmd '.timeout 5000' "$work/db.sqlite" "INSERT INTO search_index(search_index) VALUES('integrity-check')" 2>"$work/fts.err"
check "the search index is whole after the erasure" $? "$(cat "$work/fts.err")"
check "a contact.deleted event says so" \
  $([ "$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM events WHERE type = 'contact.deleted'")" = 1 ]; echo $?)
leftev=$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM events WHERE data LIKE '%asked for erasure%' OR data LIKE '%eraseme%' OR json_extract(data, '$.thread_id') = $econv OR json_extract(data, '$.ticket_id') = $eticket")
check "no event that told of them is left to replay (the note's text, the ticket's name)" $([ "$leftev" = 0 ]; echo $?) "$leftev"
call DELETE "/api/v1/contacts/$econtact" "$ADMIN"
expect "erasing them again is 404" 404

call DELETE /api/v1/users/erin "$ADMIN"
expect "deleting a user revokes their tokens" 200 'd["tokens_revoked"] == 1'
call GET /api/v1/plugins "$ERIN"
expect "a deleted user's token is 401 at once" 401
call GET "/api/v1/conversations/$conv" "$AGENT"
expect "a deleted user's replies stay, with their author's name" 200 "[m for m in d['messages'] if m['id'] == $erin_reply][0]['user'] == 'erin'"

# --- contacts -----------------------------------------------------------------------
call GET /api/v1/contacts "$AGENT"
expect "contacts with identities" 200 'len(d["items"]) == 2 and d["items"][0]["identities"][0]["channel"] == "demo"'
c1=$(jv 'd["items"][0]["id"]')
c2=$(jv 'd["items"][1]["id"]')
call PATCH "/api/v1/contacts/$c1" "$AGENT" '{"name": "Kim Lund", "email": "kim@example.com"}'
expect "PATCH a contact" 200 'd["name"] == "Kim Lund" and d["email"] == "kim@example.com"'
call PATCH "/api/v1/contacts/$c1" "$AGENT" '{"email": 7}'
expect "a wrong type on a contact is 400" 400 'd["error"]["field"] == "email"'
call PATCH "/api/v1/contacts/$c1" "$AGENT" '{"avatar_url": "javascript:alert(1)"}'
expect "a contact's avatar_url is an http(s) URL, as a user's" 400 'd["error"]["field"] == "avatar_url"'
call PATCH /api/v1/contacts/99999 "$AGENT" '{"name": "x"}'
expect "PATCH an unknown contact is 404" 404
call PATCH /api/v1/contacts/99999 "$AGENT" '{"owner": "nobody"}'
expect "PATCH an unknown contact is 404 before its owner is looked at" 404
call PATCH "/api/v1/contacts/$c1" "$AGENT" '{"owner": "nobody"}'
expect "a contact owner who is not a user is 422 naming owner" 422 'd["error"]["field"] == "owner"'
call PATCH "/api/v1/contacts/$c1" "$AGENT" '{"phone": "+4712345678"}'
call PATCH "/api/v1/contacts/$c1" "$AGENT" '{"phone": null}'
expect "null clears a contact's field, a key left out keeps its own" 200 'd["phone"] is None and d["email"] == "kim@example.com" and d["name"] == "Kim Lund"'
call GET "/api/v1/conversations?q=kim@example" "$AGENT"
expect "conversations are found by the contact's email" 200 "[c['id'] for c in d['items']] == [$conv]"
call GET "/api/v1/conversations?q=Kim%20Lund" "$AGENT"
expect "conversations are found by the contact's name" 200 "[c['id'] for c in d['items']] == [$conv]"
call GET "/api/v1/contacts?q=Kim" "$AGENT"
expect "contacts search" 200 "[c['id'] for c in d['items']] == [$c1]"
call POST "/api/v1/contacts/$c1/merge" "$AGENT" "{\"contact_id\": \"$c2\"}"
expect "merge needs an integer contact_id" 400 'd["error"]["field"] == "contact_id"'
call POST "/api/v1/contacts/$c1/merge" "$AGENT" "{\"contact_id\": $c1}"
expect "merging a contact into itself is 422" 422
call POST "/api/v1/contacts/$c1/merge" "$AGENT" '{"contact_id": 99999}'
expect "merging an unknown contact is 404" 404
call POST "/api/v1/contacts/$c1/merge" "$AGENT" "{\"contact_id\": $c2}"
expect "merge two contacts" 200 "d['id'] == $c1 and len(d['identities']) == 2"
call GET "/api/v1/contacts/$c1" "$AGENT"
expect "GET one contact, with its identities" 200 "d['id'] == $c1 and d['name'] == 'Kim Lund' and len(d['identities']) == 2"
call GET /api/v1/contacts/99999 "$AGENT"
expect "an unknown contact is 404" 404
call GET "/api/v1/conversations?contact=$c1" "$AGENT"
expect "the conversations of one contact, the merged one's included" 200 \
  "len(d['items']) >= 2 and all(c['contact']['id'] == $c1 for c in d['items'])"
call GET "/api/v1/conversations?contact=kim" "$AGENT"
expect "a contact filter that is no id is 400" 400 'd["error"]["field"] == "contact"'

# --- channels ------------------------------------------------------------------------
call GET /api/v1/channels "$AGENT"
expect "channels list the config channel without credentials" 200 \
  'd["items"][0]["name"] == "demo" and d["items"][0]["source"] == "config" and d["items"][0]["state"] == "connected" and d["items"][0]["embed"] is None and "credentials" not in d["items"][0]'
grep -q "$CFG_SECRET" "$work/body"
check "a config secret is never returned" $([ $? -ne 0 ]; echo $?)
call GET /api/v1/channels/demo "$AGENT"
expect "one channel" 200 'd["plugin"] == "testplugin" and d["inbox"] == "Support"'
call GET /api/v1/channels/nope "$AGENT"
expect "an unknown channel is 404" 404
call POST /api/v1/channels "$AGENT" '{"name": "x", "plugin": "testplugin"}'
expect "an agent cannot connect channels" 403
call POST /api/v1/channels "$ADMIN" "{\"name\": \"web\", \"plugin\": \"testplugin\", \"inbox\": \"Sales\", \"credentials\": {\"token\": \"$API_SECRET\", \"retries\": 5}}"
expect "POST connects a channel with 201" 201 'd["name"] == "web" and d["source"] == "api" and d["status"] == "on" and "credentials" not in d'
grep -q "$API_SECRET" "$work/body"
check "the new channel's secret is not echoed" $([ $? -ne 0 ]; echo $?)
wait_state web connected
expect "the API channel runs" 200 'd["state"] == "connected"'
code=$(curl -s -o "$work/body" -w '%{http_code}' "$base/hooks/web/config?key=retries")
check "the API channel's plugin sees its credentials" $([ "$code" = 200 ] && grep -q 5 "$work/body"; echo $?) "$code $(cat "$work/body")"
python3 - "$work/db.sqlite" "$API_SECRET" <<'EOF'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT spec || coalesce(sealed, '') FROM api_channels").fetchall()
sys.exit(0 if rows and all(sys.argv[2] not in r[0] and "sealed" not in r[0] for r in rows) else 1)
EOF
check "credentials are stored sealed, never in clear" $?
snippet='"<script src=\"https://help.example.com/desk/hooks/site/widget.js\" async></script>"'
call POST /api/v1/channels "$ADMIN" '{"name": "site", "plugin": "chat", "credentials": {"public_url": "https://help.example.com/desk/"}}'
expect "a chat channel connected over the API embeds its widget from its public_url" 201 "d['embed'] == $snippet"
call PATCH /api/v1/channels/site "$ADMIN" '{"status": "off"}'
wait_state site stopped
expect "a stopped API chat channel's embed comes from its sealed credentials" 200 "d['state'] == 'stopped' and d['embed'] == $snippet"
call DELETE "/api/v1/channels/site?history=delete" "$ADMIN"
expect "DELETE the chat channel" 200
call POST /api/v1/channels "$ADMIN" '{"name": "web", "plugin": "testplugin", "credentials": {"token": "abcdef"}}'
expect "a taken channel name is 409" 409 'd["error"]["field"] == "name"'
call POST /api/v1/channels "$ADMIN" '{"name": "demo", "plugin": "testplugin", "credentials": {"token": "abcdef"}}'
expect "a config channel's name is taken too" 409
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"tokn": "abcdef"}}'
expect "credentials failing the schema are 422 naming the key" 422 'd["error"]["field"] == "credentials" and "tokn" in d["error"]["message"]'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {}}'
expect "a missing required credential is 422" 422 '"token" in d["error"]["message"]'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"token": {"env": "HOME"}}}'
expect "env and file references are refused over the API" 400 'd["error"]["field"] == "credentials"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "chat", "credentials": {"hours": [{"file": "/etc/hostname"}]}}'
expect "so are references among a list's values" 400 'd["error"]["field"] == "credentials" and "hours" in d["error"]["message"]'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"token": "abcdef", "tags": [{"env": "HOME"}]}}'
expect "whatever the plugin" 400 'd["error"]["field"] == "credentials"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"token": "abcdef"}, "ticket": {"pipeline": "Nope"}}'
expect "a ticket pipeline that does not exist is 422 naming ticket" 422 'd["error"]["code"] == "invalid_channel" and d["error"]["field"] == "ticket"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "nosuch", "credentials": {}}'
expect "an unknown plugin is 422" 422 'd["error"]["field"] == "plugin"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad name", "plugin": "testplugin"}'
expect "a bad channel name is 400" 400 'd["error"]["field"] == "name"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": "x"}'
expect "credentials of the wrong type are 400" 400 'd["error"]["field"] == "credentials"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"token": "abcdef"}, "thread_policy": "sometimes"}'
expect "invalid rules are 422, naming the key" 422 'd["error"]["field"] == "thread_policy"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"token": "abcdef"}, "routing": {"mode": "users_and_teams", "users": "ana"}}'
expect "a rule of the wrong type is 422 naming the key" 422 'd["error"]["field"] == "routing.users"'
call POST /api/v1/channels "$ADMIN" '{"name": "bad", "plugin": "testplugin", "credentials": {"token": "abcdef"}, "reply_channel": "nope"}'
expect "a reply_channel that names no channel is 422 naming it" 422 'd["error"]["field"] == "reply_channel"'
call POST /api/v1/channels "$ADMIN" '{"name": "via", "plugin": "testplugin", "credentials": {"token": "abcdef"}, "reply_channel": "web"}'
expect "a reply_channel naming an API channel is taken" 201 'd["rules"]["reply_channel"] == "web"'
call DELETE /api/v1/channels/web "$ADMIN"
expect "a channel another replies through is not deleted (409 naming it)" 409 '"via" in d["error"]["message"]'
call DELETE /api/v1/channels/via "$ADMIN"
expect "DELETE the channel replying through it" 200
# A DELETE racing a PATCH of one channel: they never interleave (the second, while the first is under way,
# is 409), so a channel deleted is never left running.
consistent=0
for i in 1 2 3 4 5; do
  call POST /api/v1/channels "$ADMIN" "{\"name\": \"race$i\", \"plugin\": \"testplugin\", \"credentials\": {\"token\": \"abcdef\"}}"
  curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $ADMIN" "$base/api/v1/channels/race$i" >"$work/race.del" &
  del_pid=$!
  curl -s -o /dev/null -w '%{http_code}' -X PATCH -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    --data-binary '{"inbox": "Zed"}' "$base/api/v1/channels/race$i" >"$work/race.patch"
  wait "$del_pid"
  sleep 0.3
  got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN" "$base/api/v1/channels/race$i")
  running=$(curl -s "$base/healthz" | python3 -c "import json,sys; print(sum(1 for c in json.load(sys.stdin)['channels'] if c['name'] == 'race$i'))")
  # deleted (404) and not running, or there (200, because the PATCH came second and recreated... never) and running
  if [ "$(cat "$work/race.del")" = 200 ] && [ "$got" = 404 ] && [ "$running" = 0 ]; then consistent=$((consistent + 1))
  elif [ "$(cat "$work/race.del")" = 409 ] && [ "$got" = 200 ] && [ "$running" = 1 ]; then consistent=$((consistent + 1))
    call DELETE "/api/v1/channels/race$i" "$ADMIN"
  else echo "# race $i: delete $(cat "$work/race.del"), patch $(cat "$work/race.patch"), get $got, running $running"; fi
done
check "a DELETE and a PATCH of one channel at once never leave a deleted channel running" "$([ $consistent = 5 ]; echo $?)" "$consistent of 5"
call PATCH /api/v1/channels/demo "$ADMIN" '{"status": "off"}'
expect "a config channel cannot be edited over the API" 409 'd["error"]["code"] == "config_channel"'

inbound web w1 zed "Hi from the web"
call GET "/api/v1/conversations?channel=web" "$AGENT"
expect "inbound on the API channel lands in its inbox" 200 'len(d["items"]) == 1 and d["items"][0]["inbox"] == "Sales"'
webconv=$(jv 'd["items"][0]["id"]')
call PATCH /api/v1/channels/web "$ADMIN" '{"status": "off"}'
expect "PATCH status off" 200 'd["status"] == "off"'
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Id: w2' --data-binary x "$base/hooks/web/messages")
check "a channel turned off takes no webhooks" $([ "$code" = 404 ]; echo $?) "status $code"
call POST "/api/v1/conversations/$webconv/messages" "$AGENT" '{"text": "while you were off"}'
expect "a reply through a channel turned off is queued" 202
held=$(jv 'd["id"]')
wait_error "$webconv" "$held"
expect "it waits, queued, saying why" 200 \
  "[(m['status'], m['error']) for m in d['messages'] if m['id'] == $held][0] == ('queued', 'channel \"web\" is not running')"
call PATCH /api/v1/channels/web "$ADMIN" '{"status": "on"}'
expect "PATCH status back on" 200 'd["status"] == "on"'
wait_reply "$webconv" "$held" sent
check "the reply held while it was off goes as the channel runs again, not a minute later" \
  $([ "$status" = sent ]; echo $?) "status $status"
call PATCH /api/v1/channels/web "$ADMIN" '{"inbox": "Billing desk", "history": "move"}'
expect "PATCH inbox with history moved" 200 'd["inbox"] == "Billing desk"'
call GET "/api/v1/conversations/$webconv" "$AGENT"
expect "the old conversation moved to the new inbox" 200 'd["inbox"] == "Billing desk"'
call PATCH /api/v1/channels/web "$ADMIN" '{"inbox": "Support", "history": "keep"}'
expect "PATCH inbox keeping history" 200 'd["inbox"] == "Support"'
call GET "/api/v1/conversations/$webconv" "$AGENT"
expect "kept history stays in the old inbox" 200 'd["inbox"] == "Billing desk"'
# A conversation without a ticket (a channel that creates none) is closed, reopened and assigned itself.
call POST /api/v1/channels "$ADMIN" '{"name": "talk", "plugin": "testplugin", "creates_tickets": false, "credentials": {"token": "talk-token"}}'
expect "a channel that creates no tickets" 201
wait_state talk connected
inbound talk t1 zed "no ticket here"
call GET "/api/v1/conversations?channel=talk&inbox=Support" "$AGENT"
expect "a channel that names no inbox feeds Support, its conversations too" 200 \
  'len(d["items"]) == 1 and d["items"][0]["inbox"] == "Support"'
talkconv=$(jv 'd["items"][0]["id"]')
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"assignee": "dana"}'
expect "PATCH assignee gives a ticketless conversation to a user" 200 "d['id'] == $talkconv and d['assignee'] == 'dana' and d['ticket'] is None"
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"status": "closed", "assignee": null}'
expect "PATCH status closes it, and assignee null leaves it to nobody" 200 \
  'd["status"] == "closed" and d["assignee"] is None and d["closed_at"] >= d["created_at"]'
call GET "/api/v1/conversations?channel=talk&status=closed" "$AGENT"
expect "the closed conversation lists as closed" 200 "[c['id'] for c in d['items']] == [$talkconv]"
inbound talk t2 zed "back again"
sleep 0.3
call GET "/api/v1/conversations/$talkconv" "$AGENT"
expect "the contact writing again reopens the closed conversation (closed_thread reopen)" 200 \
  'd["status"] == "open" and d["closed_at"] is None and [m["text"] for m in d["messages"]] == ["no ticket here", "back again"]'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"status": "closed"}'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"status": "open"}'
expect "PATCH status open reopens it" 200 'd["status"] == "open"'
updates=$(sqlite3 "$work/db.sqlite" "SELECT group_concat(data, ' ') FROM events WHERE type = 'thread.updated'")
check "each change is a thread.updated event" \
  $([ "$updates" = "{\"user_id\":1,\"thread_id\":$talkconv} {\"status\":\"closed\",\"thread_id\":$talkconv} {\"user_id\":null,\"thread_id\":$talkconv} {\"status\":\"closed\",\"thread_id\":$talkconv} {\"status\":\"open\",\"thread_id\":$talkconv}" ]; echo $?) "$updates"
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"assignee": "nobody"}'
expect "an assignee who is no user is 422 naming it" 422 'd["error"]["field"] == "assignee"'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"status": "archived"}'
expect "a status other than open or closed is 400" 400 'd["error"]["field"] == "status"'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"stage": "x"}'
expect "an unknown key is 400" 400 'd["error"]["field"] == "stage"'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"assignee": 5}'
expect "an assignee of the wrong type is 400" 400 'd["error"]["field"] == "assignee"'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{bad'
expect "malformed JSON is 400" 400
call PATCH /api/v1/conversations/99999 "$AGENT" '{"status": "closed"}'
expect "PATCH an unknown conversation is 404" 404
# One with a ticket follows it: its assignee is the ticket's owner, its status the pipeline's.
call PATCH "/api/v1/conversations/$conv" "$AGENT" '{"status": "closed"}'
expect "closing a conversation that has a ticket is 409: the ticket's status decides" 409 'd["error"]["field"] == "status"'
call PATCH "/api/v1/conversations/$conv" "$AGENT" '{"assignee": "dana"}'
expect "assigning a conversation with a ticket assigns it" 200 'd["assignee"] == "dana" and d["ticket"]["owner"] == "dana"'
call GET "/api/v1/tickets/$ticket" "$AGENT"
expect "the ticket's owner is the conversation's assignee" 200 'd["owner"] == "dana"'
call PATCH "/api/v1/conversations/$talkconv" "$AGENT" '{"labels": ["billing"]}'
expect "a ticketless conversation is labelled too" 200 'd["labels"] == ["Billing"]'
call DELETE "/api/v1/channels/talk?history=delete" "$ADMIN"
expect "DELETE the ticketless channel" 200
check "deleting a channel's history takes its conversations' labels" \
  $([ "$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM thread_labels WHERE thread_id = $talkconv")" = 0 ]; echo $?)

call PATCH /api/v1/channels/web "$ADMIN" '{"history": "sideways"}'
expect "a bad history value is 400" 400 'd["error"]["field"] == "history"'
call PATCH /api/v1/channels/web "$ADMIN" '{"credentials": {"token": 5}}'
expect "PATCH credentials are validated" 422 'd["error"]["field"] == "credentials"'
call PATCH /api/v1/channels/web "$ADMIN" '{"plugin": "other"}'
expect "a channel's plugin cannot change" 400 'd["error"]["field"] == "plugin"'
call PATCH /api/v1/channels/nope "$ADMIN" '{"status": "off"}'
expect "PATCH an unknown channel is 404" 404
for _ in $(seq 1 30); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Id: w3' --data-binary "back again" "$base/hooks/web/messages")
  [ "$code" = 200 ] && break
  sleep 0.1
done
check "the channel turned on again takes webhooks" $([ "$code" = 200 ]; echo $?) "status $code"

# Edits faster than a channel opens: the last one wins, a deleted one never runs.
pids=
for _ in 1 2 3 4 5 6; do
  curl -s -o /dev/null -X PATCH -H "Authorization: Bearer $ADMIN" --data-binary '{"status": "on"}' "$base/api/v1/channels/web" &
  pids="$pids $!"
done
wait $pids
curl -s -o /dev/null -H "Authorization: Bearer $ADMIN" --data-binary '{"name": "blink", "plugin": "testplugin", "credentials": {"token": "blink-token"}}' "$base/api/v1/channels" &
pids=$!
sleep 0.05
curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ADMIN" "$base/api/v1/channels/blink"
wait $pids
sleep 0.5
curl -s "$base/healthz" >"$work/health"
python3 -c 'import json,sys; c=[x["name"] for x in json.load(open(sys.argv[1]))["channels"]]; sys.exit(0 if c.count("web") == 1 and "blink" not in c else 1)' "$work/health"
check "rapid edits leave one instance per channel and none of a deleted one" $? "$(cat "$work/health")"

call POST /api/v1/channels "$ADMIN" '{"name": "balky", "plugin": "testplugin", "credentials": {"token": "refuse-create"}}'
expect "a channel whose plugin will refuse to create it is stored" 201
wait_state balky config_error
expect "... and shows config_error with the plugin's reason, not stopped or connecting" 200 \
  'd["state"] == "config_error" and "does not know this account" in d["state_reason"]'
curl -s "$base/healthz" >"$work/health"
python3 -c 'import json,sys; c=[x for x in json.load(open(sys.argv[1]))["channels"] if x["name"] == "balky"]; sys.exit(0 if len(c) == 1 and c[0]["state"] == "config_error" and "does not know" in c[0]["reason"] else 1)' "$work/health"
check "/healthz lists it as config_error with the reason" $? "$(cat "$work/health")"
curl -s "$base/metrics" | grep -q 'switchboard_channel_state{channel="balky",plugin="testplugin",state="config_error"} 1'
check "/metrics gives its state" $?
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Id: b1' --data-binary x "$base/hooks/balky/messages")
check "its webhooks are 503, to be delivered again once it is fixed" $([ "$code" = 503 ]; echo $?) "status $code"
call DELETE "/api/v1/channels/balky?history=delete" "$ADMIN"
curl -s "$base/healthz" >"$work/health"
python3 -c 'import json,sys; sys.exit(0 if not any(x["name"] == "balky" for x in json.load(open(sys.argv[1]))["channels"]) else 1)' "$work/health"
check "deleted, it is gone from /healthz" $? "$(cat "$work/health")"
call POST /api/v1/channels "$ADMIN" '{"name": "gone", "plugin": "testplugin", "inbox": "", "credentials": {"token": "gone-token"}}'
expect "an empty inbox is refused, as in the config" 400 'd["error"]["field"] == "inbox"'
call POST /api/v1/channels "$ADMIN" '{"name": "gone", "plugin": "testplugin", "credentials": {"token": "gone-token"}}'
expect "connect a channel to delete keeping its history; it answers as on its way, not stopped" 201 \
  'd["state"] in ("connecting", "connected")'
wait_state gone connected
inbound gone g1 gil "soon orphaned"
call GET "/api/v1/conversations?channel=gone" "$AGENT"
expect "the channel to delete has its conversation" 200 'len(d["items"]) == 1'
goneconv=$(jv 'd["items"][0]["id"]')
call PATCH /api/v1/channels/gone "$ADMIN" '{"status": "off"}'
expect "turn it off before deleting it" 200 'd["status"] == "off"'
call POST "/api/v1/conversations/$goneconv/messages" "$AGENT" '{"text": "held, then orphaned"}'
expect "a reply through it while off is queued" 202
orphan=$(jv 'd["id"]')
wait_error "$goneconv" "$orphan"
expect "it is held, saying why" 200 \
  "[(m['status'], m['error']) for m in d['messages'] if m['id'] == $orphan][0] == ('queued', 'channel \"gone\" is not running')"
call DELETE "/api/v1/channels/gone?history=keep" "$ADMIN"
expect "DELETE with history=keep" 200
wait_reply "$goneconv" "$orphan" failed
expect "a reply held for a channel that is then deleted fails, naming why, rather than wait for ever" 200 \
  "[(m['status'], m['error']) for m in d['messages'] if m['id'] == $orphan][0] == ('failed', 'channel \"gone\" was deleted')"
check "its outbox row is failed, so outbox_depth does not count it as pending" \
  $([ "$(sqlite3 "$work/db.sqlite" "SELECT state FROM outbox WHERE message_id = $orphan")" = failed ]; echo $?)
call POST "/api/v1/conversations/$goneconv/messages" "$AGENT" '{"text": "anyone there?"}'
expect "a reply through a deleted channel is 422, not queued for ever" 422 '"\"gone\" does not exist" in d["error"]["message"]'
call POST /api/v1/channels "$ADMIN" '{"name": "temp", "plugin": "testplugin", "credentials": {"token": "temp-token-1"}}'
expect "connect a second API channel" 201
sleep 0.3
inbound temp t1 tom "short-lived"
call DELETE "/api/v1/channels/temp?history=sideways" "$ADMIN"
expect "DELETE with a bad history is 400" 400
call DELETE /api/v1/channels/demo "$ADMIN"
expect "a config channel cannot be deleted over the API" 409
call DELETE "/api/v1/channels/temp?history=delete" "$ADMIN"
expect "DELETE with history=delete" 200 'd["deleted"] is True and d["history"] == "delete"'
call GET "/api/v1/conversations?channel=temp" "$AGENT"
expect "its conversations are gone" 200 'd["items"] == []'
call DELETE /api/v1/channels/temp "$ADMIN"
expect "DELETE it again is 404" 404
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Id: t2' --data-binary x "$base/hooks/temp/messages")
check "a deleted channel takes no webhooks" $([ "$code" = 404 ]; echo $?) "status $code"

# --- audit log ---------------------------------------------------------------------------
call GET /api/v1/audit "$AGENT"
expect "an agent cannot read the audit log" 403
call GET "/api/v1/audit?limit=500" "$ADMIN"
expect "the audit log lists changes newest first" 200 \
  'all(a["id"] > b["id"] for a, b in zip(d["items"], d["items"][1:]))'
cp "$work/body" "$work/audit.json"
audit() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$work/audit.json"; }
audit 'any(e["method"] == "CLI" and e["path"] == "switchboard tokens create" and e["detail"] == {"name": "root", "role": "admin", "user": None} and e["token"] is None for e in d["items"])'
check "a token made with the CLI is in the audit log" $?
audit 'any(e["method"] == "POST" and e["path"] == "/api/v1/channels" and e["status"] == 201 and e["token"] == "root" and e["role"] == "admin" and sorted(e["detail"]["credentials"]) == ["retries", "token"] and e["detail"]["name"] == "web" for e in d["items"])'
check "connecting a channel is logged with the admin's token and credential names only" $?
audit "any(e['method'] == 'PATCH' and e['path'] == '/api/v1/tickets/$ticket' and e['role'] == 'agent' and e['token'] == 'ana' and e['detail'] == {'status': 'Solved', 'properties': {'resolution': 'refunded'}} for e in d['items'])"
check "an agent's ticket change is logged with what it set" $?
audit "not any(e['status'] >= 300 for e in d['items']) and not any(e['path'].endswith('/messages') for e in d['items'])"
check "refused requests and replies are not logged (a conversation keeps its replies)" $?
audit "any(e['path'].endswith('/retry') and e['status'] == 202 for e in d['items'])"
check "sending a failed reply again is logged" $?
grep -q "$API_SECRET" "$work/audit.json" || sqlite3 "$work/db.sqlite" "SELECT detail FROM audit" | grep -q "$API_SECRET"
check "no credential value reaches the audit log" $([ $? -ne 0 ]; echo $?)
call GET "/api/v1/audit?limit=1" "$ADMIN"
expect "the audit log pages" 200 'len(d["items"]) == 1 and d["next_cursor"] is not None'
call GET "/api/v1/audit?limit=1&cursor=$(jv 'd["next_cursor"]')" "$ADMIN"
expect "the next page goes on where the first stopped" 200 'len(d["items"]) == 1'
call GET "/api/v1/audit?cursor=x" "$ADMIN"
expect "a bad audit cursor is 400" 400 'd["error"]["field"] == "cursor"'

# --- events (SSE) ----------------------------------------------------------------------
curl -s -N -H "Authorization: Bearer $AGENT" "$base/api/v1/events?channel=demo" >"$work/sse1" &
sse_pid=$!
sleep 0.5
inbound demo m9 kim "Live one"
wait_log 'event: message.in' "$work/sse1"
check "SSE delivers a new message.in event" $? "$(cat "$work/sse1")"
wait_log '^: keep-alive' "$work/sse1"
check "SSE sends keep-alive comments" $?
grep -q '"channel":"web"' "$work/sse1"
check "SSE filters by channel" $([ $? -ne 0 ]; echo $?)
kill "$sse_pid"; wait "$sse_pid" 2>/dev/null; sse_pid=
live_id=$(grep -B2 'Live one' "$work/sse1" | sed -n 's/^id: //p' | head -1)
first=$(grep -m1 '^id: ' "$work/sse1" | sed 's/^id: //')
resume=$((first - 1))
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: $resume" "$base/api/v1/events?channel=demo" >"$work/sse2"
python3 - "$work/sse2" "$resume" "$live_id" <<'EOF'
import sys
ids = [int(l[4:]) for l in open(sys.argv[1]) if l.startswith("id: ")]
after, live = int(sys.argv[2]), int(sys.argv[3])
sys.exit(0 if ids and ids == sorted(set(ids)) and ids[0] > after and live in ids else 1)
EOF
check "Last-Event-ID resumes with the stored events after it, in order, none twice" $? "$(head -c 600 "$work/sse2")"
# HEAD answers the head alone: nothing streams, and the next request on the
# connection is answered.
python3 - "$port" "$AGENT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall((f"HEAD /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {sys.argv[2]}\r\n\r\n"
           "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").encode())
s.settimeout(3)
data = b""
try:
    while data.count(b"HTTP/1.1 200") < 2 or b'"status"' not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
sys.exit(0 if data.count(b"HTTP/1.1 200") == 2 and b"switchboard events" not in data else 1)
EOF
check "HEAD /api/v1/events answers the head alone, and the connection goes on" $?
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: $resume " "$base/api/v1/events?channel=demo" >"$work/sse2b"
grep -q '^id: ' "$work/sse2b"
check "Last-Event-ID with a trailing space is taken" $? "$(head -c 200 "$work/sse2b")"
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: 99999999" "$base/api/v1/events" >"$work/sse-future" &
future_pid=$!
sleep 0.5
inbound demo m-future kim "after a future id"
wait $future_pid
grep -q '^id: ' "$work/sse-future"
check "a Last-Event-ID past the newest event goes live, not silent" $? "$(head -c 300 "$work/sse-future")"
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: 0" "$base/api/v1/events?channel=demo" >"$work/sse-demo"
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: 0" "$base/api/v1/events?channel=web" >"$work/sse-web"
grep -q '^event: thread.labels' "$work/sse-demo" && ! grep -q '^event: thread.labels' "$work/sse-web"
check "thread.labels events are filtered by channel like the others" $?
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" "$base/api/v1/events?inbox=Sales" >"$work/sse3"
grep -q '^id: ' "$work/sse3"
check "without Last-Event-ID only live events come" $([ $? -ne 0 ]; echo $?)
long_inbox=$(printf 'L%.0s' $(seq 300))
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: 0" "$base/api/v1/events?inbox=$long_inbox" >"$work/sse4"
grep -q '^id: ' "$work/sse4"
check "an ?inbox= filter longer than 255 bytes still filters (replay holds no other inbox's events)" $([ $? -ne 0 ]; echo $?) "$(head -c 300 "$work/sse4")"
code=$(curl -s -o "$work/sse5" -w '%{http_code}' -m 2 -H "Authorization: Bearer $AGENT" "$base/api/v1/events?inbox=")
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; sys.exit(0 if e["code"] == "invalid" and e["field"] == "inbox" else 1)' "$work/sse5" 2>/dev/null
shape=$?
check "an empty ?inbox= is 400 naming the parameter" $([ "$code" = 400 ] && [ "$shape" -eq 0 ]; echo $?) "status $code: $(head -c 300 "$work/sse5")"
curl -s -N -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: 0" "$base/api/v1/events?types=ticket.*,note.created&channel=demo" >"$work/sse6"
python3 - "$work/sse6" <<'EOF'
import sys
types = [l[7:].strip() for l in open(sys.argv[1]) if l.startswith("event: ")]
sys.exit(0 if types and "ticket.created" in types and all(t.startswith("ticket.") or t == "note.created" for t in types) else 1)
EOF
check "?types= keeps only the event types and families named, in the replay too" $? "$(grep '^event: ' "$work/sse6" | sort | uniq -c | head)"
code=$(curl -s -o "$work/sse7" -w '%{http_code}' -m 2 -H "Authorization: Bearer $AGENT" "$base/api/v1/events?types=tickets.*")
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; sys.exit(0 if e["field"] == "types" else 1)' "$work/sse7" 2>/dev/null
shape=$?
check "an unknown ?types= pattern is 400 naming types" $([ "$code" = 400 ] && [ "$shape" -eq 0 ]; echo $?) "status $code"
for list in 'ticket.*,,note.created' 'ticket.*,' ',ticket.*'; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "Authorization: Bearer $AGENT" "$base/api/v1/events?types=$list")
  check "?types=$list (an empty item) is 400" $([ "$code" = 400 ]; echo $?) "status $code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "Authorization: Bearer $AGENT" -H "Last-Event-ID: x" "$base/api/v1/events")
check "a bad Last-Event-ID is 400" $([ "$code" = 400 ]; echo $?)
code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$base/api/v1/events")
check "SSE needs a token" $([ "$code" = 401 ]; echo $?)
echo "GET /api/v1/events 200" >>"$work/hits"

# A client that stops reading is dropped once its backlog passes 1 MiB; the
# daemon goes on serving. user.updated events carry the whole user, so big
# skill lists make big events quickly.
python3 - "$port" "$ADMIN" "$work/daemon.log" <<'EOF'
import http.client, json, socket, sys, time
port, token, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
slow = socket.socket()
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
slow.connect(("127.0.0.1", port))
slow.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
time.sleep(0.3)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
skills = ["s%04d-%s" % (i, "x" * 24) for i in range(1800)]
for i in range(4000):
    if i % 10 == 0 and "dropping a slow event stream client" in open(log).read():
        break
    c.request("PATCH", "/api/v1/users/bob", json.dumps({"skills": skills[i % 2:]}),
              {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(1)
EOF
check "a slow event stream client does not stall the daemon" $?
wait_log 'dropping a slow event stream client'
check "a slow event stream client is dropped" $?

# A client replaying from far back that reads slowly is paced, and the live
# events that come meanwhile, more than it holds (1000), are read from the
# store instead: every event arrives once, in order, and the stream goes live.
python3 - "$port" "$ADMIN" "$work/db.sqlite" <<'EOF'
import http.client, json, socket, sqlite3, sys, time
port, token, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]
slow = socket.socket()
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
slow.connect(("127.0.0.1", port))
stream = http.client.HTTPConnection("127.0.0.1", port)
stream.sock = slow
stream.request("GET", "/api/v1/events", headers={"Authorization": "Bearer " + token, "Last-Event-ID": "0"})
time.sleep(0.5)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(1201):  # small events after the first: bob's skills from above are big
    c.request("PATCH", "/api/v1/users/bob", json.dumps({"skills": []} if i == 0 else {"capacity": 3 + i % 2}),
              {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("PATCH: %d" % r.status)
# the stream's events: the events table's rows and the messages stored as their own events
want = [row[0] for row in sqlite3.connect(db).execute(
    "SELECT id FROM events UNION SELECT id FROM messages"
    " WHERE id >= (SELECT value FROM meta WHERE key = 'message_events_from') ORDER BY id")]
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # now read it all quickly
slow.settimeout(20)
res = stream.getresponse()
ids = []
def next_id():
    while True:
        line = res.readline()
        if not line:
            sys.exit("the stream ended after %d events" % len(ids))
        if line.startswith(b"id: "):
            return int(line[4:])
while not ids or ids[-1] < want[-1]:
    ids.append(next_id())
if ids != want:
    sys.exit("got %d events (%s..%s), the store has %d (%s..%s)" % (len(ids), ids[:1], ids[-1:], len(want), want[:1], want[-1:]))
# live now: the next event comes at once
c.request("PATCH", "/api/v1/users/bob", json.dumps({"capacity": 7}), {"Authorization": "Bearer " + token})
c.getresponse().read()
if next_id() <= want[-1]:
    sys.exit("an old event came again")
EOF
check "a replay paced past more live events than it holds still sends each event once, in order, then goes live" $?

# --- outgoing webhooks: events posted, signed, in order, at least once ---------------------
"$PY" "$SRC/tests/webhook_receiver.py" "$work/rcv.port" "$work/rcv.log" "$work/rcv.status" &
rcv_pid=$! # the interpreter itself (not through the python3 function), so cleanup's kill reaches it
for _ in $(seq 50); do [ -s "$work/rcv.port" ] && break; sleep 0.1; done
rcv=http://127.0.0.1:$(cat "$work/rcv.port")
# posts [PATH]: the requests the receiver got (at PATH), as a JSON list in $work/posts.json
posts() {
  python3 - "$work/rcv.log" "${1:-}" >"$work/posts.json" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
print(json.dumps([r for r in rows if not sys.argv[2] or r["path"] == sys.argv[2]]))
EOF
}
# wait_posts PYTHON-CONDITION [PATH]: up to 5 s for the posts p (a list) to satisfy it
wait_posts() {
  for _ in $(seq 50); do
    posts "${2:-}"
    python3 -c "import json,sys; p=json.load(open(sys.argv[1])); ev=[e for r in p for e in json.loads(r['body'])['events']]; sys.exit(0 if ($1) else 1)" "$work/posts.json" && return 0
    sleep 0.1
  done
  return 1
}
call POST /api/v1/webhooks "$AGENT" "{\"url\": \"$rcv/a\"}"
expect "an agent cannot make a webhook" 403
call POST /api/v1/webhooks "$ADMIN" '{"url": "ftp://example.com/x"}'
expect "a webhook URL must be http or https" 422 'd["error"]["field"] == "url"'
call POST /api/v1/webhooks "$ADMIN" '{"url": "http:///x"}'
expect "a webhook URL needs a host" 422 'd["error"]["field"] == "url"'
call POST /api/v1/webhooks "$ADMIN" '{"events": ["*"]}'
expect "a webhook needs a url" 422 'd["error"]["field"] == "url"'
call POST /api/v1/webhooks "$ADMIN" "{\"url\": \"$rcv/a\", \"events\": [\"tickets.*\"]}"
expect "an unknown event family is 422 naming events" 422 'd["error"]["field"] == "events" and "events[0]" in d["error"]["message"]'
call POST /api/v1/webhooks "$ADMIN" "{\"url\": \"$rcv/a\", \"events\": []}"
expect "a webhook wants at least one event type" 422 'd["error"]["field"] == "events"'
call POST /api/v1/webhooks "$ADMIN" "{\"url\": \"$rcv/a\", \"secret\": \"mine\"}"
expect "a webhook's secret is not chosen by the caller" 400 'd["error"]["field"] == "secret"'
call POST /api/v1/webhooks "$ADMIN" "{\"url\": \"$rcv/a\", \"active\": \"yes\"}"
expect "active must be a boolean" 400 'd["error"]["field"] == "active"'
call POST /api/v1/webhooks "$ADMIN" '{"url": '
expect "a malformed webhook body is 400" 400
call POST /api/v1/webhooks "$ADMIN" "{\"url\": \"$rcv/a\", \"events\": [\"message.in\"], \"description\": \"CRM\"}"
expect "POST a webhook shows its secret once" 201 \
  'd["secret"].startswith("whsec_") and len(d["secret"]) == 70 and d["active"] is True and d["events"] == ["message.in"] and d["failures"] == 0'
WH=$(jv 'd["id"]')
WHSECRET=$(jv 'd["secret"]')
call POST /api/v1/webhooks "$ADMIN" "{\"url\": \"$rcv/b\", \"events\": [\"*\"], \"channel\": \"nosuch\"}"
expect "a webhook may watch one channel" 201 'd["channel"] == "nosuch"'
WHB=$(jv 'd["id"]')
call GET "/api/v1/webhooks/$WH" "$ADMIN"
expect "GET a webhook never shows its secret" 200 '"secret" not in d and d["url"].endswith("/a") and d["description"] == "CRM"'
sqlite3 "$work/db.sqlite" "SELECT secret FROM webhooks" | grep -q "$WHSECRET"
check "the secret is stored sealed, not in clear" $([ $? -ne 0 ]; echo $?)
call GET /api/v1/webhooks "$ADMIN"
expect "webhooks are listed" 200 "[w['id'] for w in d['items']] == [$WH, $WHB] and all('secret' not in w for w in d['items'])"
call GET /api/v1/webhooks "$AGENT"
expect "an agent cannot list webhooks" 403
call GET /api/v1/webhooks/999999 "$ADMIN"
expect "an unknown webhook is 404" 404

inbound demo wh1 kim "Hook me"
wait_posts 'any(e["type"] == "message.in" and e["data"]["preview"] == "Hook me" for e in ev)' /a
check "a new message is posted to the webhook" $? "$(tail -c 600 "$work/rcv.log" 2>/dev/null)"
python3 - "$work/posts.json" "$WHSECRET" "$WH" <<'EOF'
import hashlib, hmac, json, sys
posts, secret, wid = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
for p in posts:
    sig = dict(kv.split("=", 1) for kv in p["headers"]["X-Switchboard-Signature"].split(","))
    want = hmac.new(secret.encode(), (sig["t"] + "." + p["body"]).encode(), hashlib.sha256).hexdigest()
    body = json.loads(p["body"])
    if sig["v1"] != want or body["webhook"] != wid or p["headers"]["X-Switchboard-Webhook"] != str(wid):
        sys.exit(1)
    if p["headers"]["Content-Type"] != "application/json" or any(e["type"] != "message.in" for e in body["events"]):
        sys.exit(1)
EOF
check "each post is signed (HMAC-SHA256 of t.body) and holds only the types asked for" $? "$(head -c 600 "$work/posts.json")"
posts /b
check "a webhook of another channel gets nothing" $([ "$(cat "$work/posts.json")" = "[]" ]; echo $?) "$(head -c 300 "$work/posts.json")"
call POST "/api/v1/webhooks/$WHB/ping" "$ADMIN"
expect "POST ping sends a signed test event and says how the receiver took it" 200 \
  'd["delivered"] is True and d["status"] == 200 and d["error"] is None and d["duration_ms"] >= 0'
posts /b
python3 - "$work/posts.json" "$WHB" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
body = json.loads(p[-1]["body"]) if p else {}
ok = len(p) == 1 and body["webhook"] == int(sys.argv[2]) and [e["type"] for e in body["events"]] == ["ping"]
sys.exit(0 if ok and p[-1]["headers"]["X-Switchboard-Signature"].startswith("t=") else 1)
EOF
check "the receiver gets the ping event, signed" $? "$(head -c 400 "$work/posts.json")"
echo "500" >"$work/rcv.status"
call POST "/api/v1/webhooks/$WHB/ping" "$ADMIN"
expect "a refused ping says so, and counts as no failure" 200 \
  'd["delivered"] is False and d["status"] == 500 and "500" in d["error"]'
rm -f "$work/rcv.status"
call GET "/api/v1/webhooks/$WHB" "$ADMIN"
expect "a ping moves neither the cursor nor the failures" 200 'd["failures"] == 0 and d["last_attempt_at"] is None'
call POST "/api/v1/webhooks/$WHB/ping" "$AGENT"
expect "an agent cannot ping a webhook" 403
call POST /api/v1/webhooks/999999/ping "$ADMIN"
expect "pinging an unknown webhook is 404" 404

echo "503 1" >"$work/rcv.status"
inbound demo wh2 kim "Retry me"
wait_posts 'sum(e["data"]["preview"] == "Retry me" for e in ev) >= 1' /a
call GET "/api/v1/webhooks/$WH" "$ADMIN"
for _ in $(seq 20); do [ "$(jv 'd["failures"]')" -ge 1 ] && break; sleep 0.1; call GET "/api/v1/webhooks/$WH" "$ADMIN"; done
expect "a refused post is counted, with the receiver's status, and retried later" 200 \
  'd["failures"] >= 1 and d["last_status"] == 503 and "503" in d["last_error"] and d["next_attempt_at"] is not None'
echo 200 >"$work/rcv.status"
wait_posts 'sum(e["data"]["preview"] == "Retry me" for e in ev) >= 2' /a
check "after Retry-After the same events are posted again" $?
retried_id=$(python3 -c "import json,sys; p=json.load(open(sys.argv[1])); print(max(e['id'] for r in p for e in json.loads(r['body'])['events']))" "$work/posts.json")
for _ in $(seq 20); do call GET "/api/v1/webhooks/$WH" "$ADMIN"; [ "$(jv 'd["failures"]')" = 0 ] && break; sleep 0.1; done
expect "a delivered post clears the failures and moves the cursor past its events" 200 \
  "d['failures'] == 0 and d['last_status'] == 200 and d['last_success_at'] is not None and d['cursor'] >= $retried_id and d['next_attempt_at'] is None"
[ "$(sqlite3 "$work/db.sqlite" "SELECT cursor >= $retried_id FROM webhooks WHERE id = $WH")" = 1 ]
check "the cursor is stored" $?
curl -s "$base/metrics" >"$work/metrics.txt"
grep -Eq '^switchboard_webhook_posts_total\{result="failed"\} [1-9]' "$work/metrics.txt" &&
  grep -Eq '^switchboard_webhook_posts_total\{result="delivered"\} [1-9]' "$work/metrics.txt" &&
  grep -Eq '^switchboard_webhook_events_total [1-9]' "$work/metrics.txt" && grep -q '^switchboard_webhooks_failing 0$' "$work/metrics.txt"
check "/metrics counts webhook posts by result and the webhooks failing" $? "$(grep webhook "$work/metrics.txt")"

call PATCH "/api/v1/webhooks/$WH" "$ADMIN" '{"active": false}'
expect "PATCH turns a webhook off" 200 'd["active"] is False'
inbound demo wh3 kim "Nobody listens"
sleep 0.5
call PATCH "/api/v1/webhooks/$WH" "$ADMIN" '{"active": true, "rotate_secret": true}'
expect "PATCH turns it on with a new secret, shown once" 200 "d['active'] is True and d['secret'].startswith('whsec_') and d['secret'] != '$WHSECRET'"
WHSECRET2=$(jv 'd["secret"]')
wait_posts 'any(e["data"]["preview"] == "Nobody listens" for e in ev)' /a
check "turned on again, it posts what came while it was off" $?
python3 - "$work/posts.json" "$WHSECRET2" <<'EOF'
import hashlib, hmac, json, sys
p = json.load(open(sys.argv[1]))[-1]
sig = dict(kv.split("=", 1) for kv in p["headers"]["X-Switchboard-Signature"].split(","))
sys.exit(0 if sig["v1"] == hmac.new(sys.argv[2].encode(), (sig["t"] + "." + p["body"]).encode(), hashlib.sha256).hexdigest() else 1)
EOF
check "posts after a rotation are signed with the new secret" $?
python3 - "$work/posts.json" <<'EOF'
import json, sys
ids = [e["id"] for r in json.load(open(sys.argv[1])) for e in json.loads(r["body"])["events"]]
firsts = []
for i in ids:
    if i not in firsts:
        firsts.append(i)
sys.exit(0 if firsts == sorted(firsts) else 1)
EOF
check "events arrive in id order" $?
call PATCH "/api/v1/webhooks/$WH" "$ADMIN" '{"events": ["ticket.*", "thread.updated"], "url": "ftp://x"}'
expect "PATCH checks the url as POST does" 422 'd["error"]["field"] == "url"'
call PATCH "/api/v1/webhooks/$WH" "$ADMIN" '{"cursor": -1}'
expect "a negative cursor is 422" 422 'd["error"]["field"] == "cursor"'
call PATCH "/api/v1/webhooks/$WH" "$ADMIN" '{"cursor": 999999999}'
expect "a cursor past the newest event is 422 naming the newest" 422 'd["error"]["field"] == "cursor" and "(the newest)" in d["error"]["message"]'
call PATCH /api/v1/webhooks/999999 "$ADMIN" '{"active": true}'
expect "PATCH of an unknown webhook is 404" 404
call DELETE "/api/v1/webhooks/$WHB" "$ADMIN"
expect "DELETE a webhook" 200 "d['deleted'] == $WHB"
call DELETE "/api/v1/webhooks/$WHB" "$ADMIN"
expect "DELETE it again is 404" 404
config_with_web() { # adds a config channel named as the API channel "web" to $cfg
  python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
c["channels"].append({"name": "web", "plugin": "testplugin", "inbox": "FromConfig", "credentials": {"token": "config-web"}})
json.dump(c, open(sys.argv[1], "w"))' "$cfg"
}
# A config channel named as a running API channel takes its place at a
# reload; dropped from the config again, the API's runs again (as after a
# restart). Which one runs shows in the inbox new conversations get.
call GET /api/v1/channels/web "$AGENT"
web_inbox=$(jv 'd["inbox"]')
cp "$cfg" "$work/cfg.orig"
config_with_web
kill -HUP "$daemon_pid"
wait_log 'is in the config file and was also connected through the API; the config wins'
check "a reload's config channel wins over the API channel of its name" $? "$(grep -i web "$log" | tail -3)"
wait_state web connected
inbound web rl1 rhea "to the config's web"
call GET "/api/v1/conversations?channel=web&inbox=FromConfig" "$AGENT"
expect "the config's channel takes the webhooks" 200 'len(d["items"]) == 1'
call GET /api/v1/channels/web "$AGENT"
expect "the channel shows as the config's" 200 'd["source"] == "config" and d["inbox"] == "FromConfig"'
call GET "/api/v1/conversations?channel=web&inbox=$web_inbox" "$AGENT"
before=$(jv 'len(d["items"])')
cp "$work/cfg.orig" "$cfg"
kill -HUP "$daemon_pid"
wait_log 'no longer in the config file: the channel connected through the API runs again'
check "dropped from the config, the API channel runs again" $? "$(grep -i web "$log" | tail -3)"
wait_state web connected
inbound web rl2 sol "to the API's web again"
call GET "/api/v1/conversations?channel=web&inbox=$web_inbox" "$AGENT"
expect "the API's channel takes the webhooks again" 200 "len(d['items']) == $before + 1"
call GET /api/v1/channels/web "$AGENT"
expect "the channel shows as the API's again" 200 "d['source'] == 'api' and d['inbox'] == '$web_inbox'"
wait_posts 'any(e["data"].get("preview") == "to the API'"'"'s web again" for e in ev)' /a
check "the webhook posted what the channels took meanwhile" $?
posts /a
delivered_before_restart=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$work/posts.json")

# --- reload and stop with a stream open --------------------------------------------------
kill -HUP "$daemon_pid"
wait_log 'reloaded: 2 channels kept, 0 closed, 0 started'
check "SIGHUP keeps the API channel running beside the config one" $? "$(grep reloaded "$work/daemon.log")"
call GET "/api/v1/audit?limit=1" "$ADMIN"
expect "an applied reload is in the audit log with what it did to the channels" 200 \
  "d['items'][0]['method'] == 'SIGHUP' and d['items'][0]['path'] == 'config reload $cfg' and d['items'][0]['detail'] == {'kept': 2, 'closed': [], 'started': []} and d['items'][0]['token'] is None"
curl -s -N -H "Authorization: Bearer $AGENT" "$base/api/v1/events" >"$work/sse4" &
sse_pid=$!
sleep 0.3

# --- restart: API channels come back; a wrong key is a clear start-up error -------------
stop_daemon
wait "$sse_pid" 2>/dev/null
sse_pid=
start_daemon "$work/restart.log"
wait_log 'channel="web" plugin="testplugin" msg="connected"' "$work/restart.log"
check "API channels run again after a restart" $?
wait_log 'ready: ' "$work/restart.log"
sleep 0.5
posts /a
check "after a restart a webhook posts nothing it delivered before" \
  $([ "$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$work/posts.json")" = "$delivered_before_restart" ]; echo $?) \
  "$delivered_before_restart before, now: $(tail -c 400 "$work/rcv.log")"
inbound demo wh4 kim "After the restart"
wait_posts 'any(e["data"]["preview"] == "After the restart" for e in ev)' /a
check "after a restart the webhook goes on posting new events" $?
stop_daemon
# The same at start-up: the config's channel wins, and a reload that drops
# it starts the API's.
config_with_web
start_daemon "$work/restart2.log"
wait_log 'is in the config file and was also connected through the API; the config wins' "$work/restart2.log"
check "at start-up a config channel wins over the API channel of its name" $? "$(tail -3 "$work/restart2.log")"
wait_log 'ready: ' "$work/restart2.log"
cp "$work/cfg.orig" "$cfg"
kill -HUP "$daemon_pid"
wait_log 'no longer in the config file: the channel connected through the API runs again' "$work/restart2.log"
check "a reload that drops it starts the API's" $? "$(tail -3 "$work/restart2.log")"
wait_state web connected
call GET /api/v1/channels/web "$AGENT"
expect "the channel is the API's again" 200 "d['source'] == 'api' and d['inbox'] == '$web_inbox'"
stop_daemon
write_config "$cfg" "\"$(python3 -c 'print("77"*32)')\"" "$work/db.sqlite" "$port"
"$SB" run -c "$cfg" >"$work/wrongkey.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'channel "web" was connected through the API and its credentials cannot be unsealed: secret_key is not the key they were sealed with' "$work/wrongkey.log" &&
  ! grep -q 'listening' "$work/wrongkey.log"
check "a wrong secret_key with sealed channels stops start-up with a clear error, before it listens" $? "status $rc: $(tail -3 "$work/wrongkey.log")"
"$SB" check -c "$cfg" >"$work/wrongkey-check.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q 'channel "web" was connected through the API and its credentials cannot be unsealed' "$work/wrongkey-check.log"
check "check finds the wrong secret_key too" $? "status $rc: $(cat "$work/wrongkey-check.log")"
# without the API channels, what the wrong key cannot unseal is the webhooks' secrets: check says so too
sqlite3 "$work/db.sqlite" "DELETE FROM api_channels"
[ "$(sqlite3 "$work/db.sqlite" "SELECT count(*) FROM webhooks")" -gt 0 ] || sqlite3 "$work/db.sqlite" \
  "INSERT INTO webhooks(url, events, secret, created_at) VALUES('http://127.0.0.1:9/x', '[\"*\"]', 'v1:AAAA', 1)"
"$SB" check -c "$cfg" >"$work/wrongkey-hooks.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "webhook [0-9]*'s secret cannot be unsealed" "$work/wrongkey-hooks.log"
check "check finds webhook secrets the key cannot unseal" $? "status $rc: $(cat "$work/wrongkey-hooks.log")"

# --- no secret_key: connecting over the API is refused ------------------------------------
port2=$(free_port)
write_config "$work/nokey.json" none "$work/db2.sqlite" "$port2"
T2=$("$SB" tokens create -c "$work/nokey.json" --name root --role admin 2>/dev/null)
"$SB" run -c "$work/nokey.json" >"$work/nokey.log" 2>&1 &
daemon_pid=$!
log=$work/nokey.log
wait_log "listening on 127.0.0.1:$port2" "$log"
base=http://127.0.0.1:$port2
call POST /api/v1/channels "$T2" '{"name": "web", "plugin": "testplugin", "credentials": {"token": "abcdef"}}'
expect "without secret_key connecting a channel is 409 saying so" 409 'd["error"]["code"] == "secret_key_missing" and "secret_key" in d["error"]["message"]'
call POST /api/v1/webhooks "$T2" '{"url": "http://127.0.0.1:9/x"}'
expect "without secret_key making a webhook is 409 saying so" 409 'd["error"]["code"] == "secret_key_missing" and "secret_key" in d["error"]["message"]'
stop_daemon

# --- secrets and coverage -----------------------------------------------------------------
if grep -q "$API_SECRET\|$CFG_SECRET\|$ADMIN\|$AGENT\|$T3\|$DANA\|$ERIN\|$WHSECRET\|$WHSECRET2" "$work"/*.log; then
  not_ok "no secret or token is ever logged"
else
  ok "no secret or token is ever logged"
fi
if grep -q 'Sanitizer' "$work"/*.log; then
  not_ok "no sanitizer report from the daemon" "$(grep -A20 Sanitizer "$work"/*.log | head -40)"
else
  ok "no sanitizer report from the daemon"
fi
why=$($CHECK --coverage "$SPEC" "$work/hits")
check "every documented operation answered 2xx" $? "$why"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
