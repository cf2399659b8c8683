#!/usr/bin/env bash
# test_e2e_custom.sh — the custom channel end to end through the real daemon
# and an external-service double (tests/integration_double.py): signed
# inbound, redelivery, bad signatures, attachments (inline content downloaded
# over the REST API), an automatic reply through the outbox to the double
# (signature verified there), a delivery receipt, an agent's REST API reply
# that reaches the integration with the agent's name, a retried send (429 +
# Retry-After) and a permanently failed one. Stops what it starts.
set -u
. "$(dirname "$0")/lib.sh"
SB=${SB_BINARY:?}
SRC=${SB_SOURCE_DIR:?}
PLUGINS=${SB_PLUGIN_BUILD_DIR:?}
DOUBLE="python3 $SRC/tests/integration_double.py"
work=$(mktemp -d /tmp/sbe2e.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
sql() { sqlite3 "$work/db.sqlite" "$1"; }
out_status() { sql "select status from messages where direction = 'out' and channel = '$1'"; }

export E2E_SECRET=e2e-signing-secret-0123456789
$DOUBLE serve --secret "$E2E_SECRET" --port-file "$work/double.port" --log "$work/double.log" &
pids+=($!)
wait_for '[ -s "$work/double.port" ]' || { echo "double did not start"; exit 1; }
dport=$(cat "$work/double.port")
port=$(free_port)

channel() { # channel NAME PATH-MODE REPLY
  printf '{"name": "%s", "plugin": "custom", "credentials": {"webhook_url": "http://127.0.0.1:%s/out/%s", "signing_secret": {"env": "E2E_SECRET"}, "request_timeout": "2s"}, "auto_replies": {"instant_reply": "%s"}}' \
    "$1" "$dport" "$2" "$3"
}
{
  echo "{\"listen\": \"127.0.0.1:$port\", \"store\": \"sqlite:$work/db.sqlite\","
  echo " \"plugins\": {\"dirs\": [\"$PLUGINS\"], \"allow\": [\"custom\"]},"
  echo " \"users\": [{\"name\": \"Ana Lima\", \"email\": \"ana@acme.example\", \"avatar_url\": \"https://cdn.acme.example/ana.png\"}],"
  echo " \"channels\": ["
  echo "  $(channel demo ok 'Thanks, we got your message.'),"
  echo "  $(channel slow 429 'Queued for you.'),"
  echo "  $(channel refusing 400 'Never arrives.'),"
  echo "  $(channel leaky leaky 'Never arrives either.')"
  echo " ]}"
} >"$work/sb.json"
AGENT=$("$SB" tokens create -c "$work/sb.json" --name e2e --role agent 2>"$work/token.err")
"$SB" run -c "$work/sb.json" >"$work/daemon.log" 2>&1 &
daemon=$!
pids+=($daemon)
wait_for 'grep -q "ready:" "$work/daemon.log"' || { cat "$work/daemon.log"; exit 1; }
base=http://127.0.0.1:$port/hooks
post() { $DOUBLE post --secret "$E2E_SECRET" "$@"; }

msg='{"id": "ext-msg-1", "thread_id": "t-9", "sender": {"id": "user-42", "name": "Kim", "email": "kim@example.com"}, "text": "Hello", "timestamp": '"$(date +%s)"'}'
out=$(post "$base/demo/messages" "$msg")
check "signed inbound message → 200 with its id, after commit" '[[ "$out" =~ ^200\ \{\"message_id\":\"[0-9]+\"\}$ ]]' "$out"
out2=$(post "$base/demo/messages" "$msg")
check "redelivery → 200 with the same id" '[ "$out2" = "$out" ]' "$out2"
check "redelivery stored nothing new" '[ "$(sql "select count(*) from messages where direction = '"'in'"'")" = 1 ]'
check "the message has a contact, a thread and a ticket" \
  '[ "$(sql "select count(*) from contacts") $(sql "select count(*) from threads") $(sql "select count(*) from tickets")" = "1 1 1" ]'
check "the contact's profile comes from the sender" '[ "$(sql "select name || '"'/'"' || email from contacts")" = "Kim/kim@example.com" ]'
out=$($DOUBLE post --bad --secret "$E2E_SECRET" "$base/demo/messages" '{"id": "x2", "sender": {"id": "u"}, "text": "hi"}')
check "bad signature → 401" '[[ "$out" == 401* ]]' "$out"
out=$($DOUBLE post --skew -600 --secret "$E2E_SECRET" "$base/demo/messages" '{"id": "x3", "sender": {"id": "u"}, "text": "hi"}')
check "stale timestamp → 401" '[[ "$out" == 401* ]]' "$out"
out=$(post "$base/demo/messages" '{"id": "x4", "sender": {}, "text": "hi"}')
check "missing sender.id → 400 naming the field" '[[ "$out" == 400*sender.id* ]]' "$out"
check "nothing stored for refused requests" '[ "$(sql "select count(*) from messages where direction = '"'in'"'")" = 1 ]'

att='{"id": "ext-att-1", "sender": {"id": "user-42"}, "text": "See the photo", "attachments": [{"url": "https://files.example.com/a.png", "mime_type": "image/png", "filename": "a.png", "size": 1234}]}'
out=$(post "$base/demo/messages" "$att")
check "a message with an attachment → 200" '[[ "$out" == 200* ]]' "$out"
stored=$(sql "select attachments from messages where external_id = 'ext-att-1'")
check "the attachment is stored with its URL, type, name and size" \
  'python3 -c "import json,sys; a=json.loads(sys.argv[1])[0]; sys.exit(not (a[\"url\"]==\"https://files.example.com/a.png\" and a[\"mime_type\"]==\"image/png\" and a[\"filename\"]==\"a.png\" and a[\"size\"]==1234))" "$stored"' "$stored"
big='{"id": "ext-att-2", "sender": {"id": "user-42"}, "attachments": [{"url": "https://files.example.com/b.bin", "mime_type": "application/octet-stream", "size": 99999999}]}'
out=$(post "$base/demo/messages" "$big")
check "an attachment over max_attachment_bytes → 413, nothing stored" \
  '[[ "$out" == 413* ]] && [ "$(sql "select count(*) from messages where external_id = '"'ext-att-2'"'")" = 0 ]' "$out"

# The instant reply goes through the outbox to the double, signed.
wait_for 'grep -q "Thanks, we got" "$work/double.log" 2>/dev/null'
line=$(grep "Thanks, we got" "$work/double.log" 2>/dev/null | head -1)
check "the automatic reply reached the integration" '[ -n "$line" ]' "$(cat "$work/daemon.log")"
check "its signature verifies" 'grep -q "\"valid_signature\": true" <<<"$line"' "$line"
check "it names the recipient and carries an idempotency key" \
  'grep -q "\"recipient\": {\"id\": \"user-42\"" <<<"$line" && grep -q "\"idempotency_key\": \"[^\"]" <<<"$line"' "$line"
wait_for '[ "$(out_status demo)" = sent ]'
check "the reply is stored as sent, automatic, with the external id" \
  '[ "$(sql "select status || '"'/'"' || external_id || '"'/'"' || automatic from messages where direction = '"'out'"' and channel = '"'demo'"'")" = "sent/ext-1/1" ]' \
  "$(sql "select * from messages")"

out=$(post "$base/demo/status" '{"id": "ext-1", "status": "delivered"}')
check "a delivery receipt → 200" '[[ "$out" == 200* ]]' "$out"
wait_for '[ "$(sql "select status from messages where external_id = '"'ext-1'"'")" = delivered ]'
check "the reply is marked delivered" '[ "$(sql "select status from messages where external_id = '"'ext-1'"'")" = delivered ]'

out=$(post "$base/demo/messages" '{"id": "ext-1", "sender": {"id": "user-43"}, "text": "Another customer"}')
check "a message whose id is the one the integration gave our reply → 409 naming it, not a duplicate's 200" \
  '[[ "$out" == 409* ]] && grep -q "\"code\": *\"conflict\"" <<<"$out" && grep -q "\"field\": *\"id\"" <<<"$out"' "$out"
check "and nothing is stored for it" '[ "$(sql "select count(*) from messages where text = '"'Another customer'"'")" = 0 ]'
out=$(post "$base/demo/messages" '{"id": "ext-msg-2", "sender": {"id": "user-42"}, "text": "Still there?"}')
check "a second message from the contact → 200" '[[ "$out" == 200* ]]' "$out"
sleep 1.5
check "it joins the open conversation" '[ "$(sql "select count(*) from threads")" = 1 ]'
check "no second instant reply in the same conversation" '[ "$(grep -c "Thanks, we got" "$work/double.log")" = 1 ]'

# An agent replies through the REST API with a token of their user: the
# integration learns who answered (the custom wire format's "agent").
TOKEN=$("$SB" tokens create -c "$work/sb.json" --name ana-laptop --role agent --user "Ana Lima" 2>"$work/tok.err")
check "a token of a config user is made while the daemon runs" '[[ $TOKEN =~ ^sbt_[0-9a-f]{64}$ ]]' "$(cat "$work/tok.err")"
api=http://127.0.0.1:$port/api/v1
conv=$(curl -s -H "Authorization: Bearer $TOKEN" "$api/conversations?channel=demo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
code=$(curl -s -o "$work/reply.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  -d '{"text": "Ana here, looking into it."}' "$api/conversations/$conv/messages")
check "the agent's reply is queued" '[ "$code" = 202 ]' "$code $(cat "$work/reply.json")"
wait_for 'grep -q "Ana here" "$work/double.log" 2>/dev/null'
line=$(grep "Ana here" "$work/double.log" 2>/dev/null | head -1)
check "the integration gets the replying agent's name, email and avatar" \
  'python3 -c "import json,sys; b=json.loads(sys.argv[1])[\"body\"]; sys.exit(b.get(\"agent\") != {\"name\": \"Ana Lima\", \"email\": \"ana@acme.example\", \"avatar_url\": \"https://cdn.acme.example/ana.png\"})" "$line"' \
  "$line $(tail -5 "$work/daemon.log")"
auto=$(grep "Thanks, we got" "$work/double.log" | head -1)
check "an automatic reply names no agent" \
  'python3 -c "import json,sys; sys.exit(\"agent\" in json.loads(sys.argv[1])[\"body\"])" "$auto"' "$auto"
wait_for '[ "$(sql "select count(*) from messages m join users u on u.id = m.user_id where m.status = '"'sent'"' and u.name = '"'Ana Lima'"'")" = 1 ]'
check "the reply is stored as sent with its author" \
  '[ "$(sql "select count(*) from messages m join users u on u.id = m.user_id where m.status = '"'sent'"' and u.name = '"'Ana Lima'"'")" = 1 ]' \
  "$(sql "select id, status, user_id from messages where direction = 'out'")"

# 429 with Retry-After → retried, then sent; 400 → failed with the body's error.
post "$base/slow/messages" '{"id": "s1", "sender": {"id": "u-slow"}, "text": "hi"}' >/dev/null
post "$base/refusing/messages" '{"id": "r1", "sender": {"id": "u-ref"}, "text": "hi"}' >/dev/null
wait_for '[ "$(out_status slow)" = sent ]'
check "a 429 is retried after Retry-After and then sent" '[ "$(out_status slow)" = sent ]' \
  "$(sql "select * from messages where channel = 'slow'"; sql "select * from outbox")"
attempts=$(grep -c '/out/429' "$work/double.log")
keys=$(grep '/out/429' "$work/double.log" | python3 -c 'import sys, json; print(len({json.loads(l)["idempotency_key"] for l in sys.stdin}))')
check "both attempts carried the same idempotency key" '[ "$attempts $keys" = "2 1" ]' "$attempts attempts, $keys keys"
wait_for '[ "$(out_status refusing)" = failed ]'
check "a 400 fails the reply with the integration's error text" \
  '[ "$(sql "select status || '"'/'"' || error from messages where direction = '"'out'"' and channel = '"'refusing'"'")" = "failed/unknown recipient" ]' \
  "$(sql "select * from messages where channel = 'refusing'")"

post "$base/leaky/messages" '{"id": "l1", "sender": {"id": "u-leak"}, "text": "hi"}' >/dev/null
wait_for '[ "$(out_status leaky)" = failed ]'
check "a service's error quoting the signing secret is stored with the secret redacted" \
  '[ "$(sql "select error from messages where direction = '"'out'"' and channel = '"'leaky'"'")" = "refused: your key [redacted] is wrong" ]' \
  "$(sql "select error from messages where channel = 'leaky'")"

metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
metric() { awk -v k="$1" '$1 == k {print $2}' <<<"$metrics"; }
m_in=$(metric 'switchboard_inbound_messages_total{channel="demo"}')
m_dup=$(metric 'switchboard_inbound_duplicates_total{channel="demo"}')
m_sig=$(metric 'switchboard_webhook_signature_failures_total{channel="demo"}')
m_sends="$(metric 'switchboard_outbound_messages_total{channel="slow",result="retry"}') $(metric 'switchboard_outbound_messages_total{channel="slow",result="sent"}') $(metric 'switchboard_outbound_messages_total{channel="refusing",result="failed"}')"
check "metrics count inbound messages per channel (the conflicting one too: handed to the router)" '[ "$m_in" = 5 ]' "$m_in"
check "metrics count redeliveries" '[ "$m_dup" = 1 ]' "$m_dup"
check "metrics count signature failures" '[ "$m_sig" = 2 ]' "$m_sig"
check "metrics count sends by result" '[ "$m_sends" = "1 1 1" ]' "$m_sends"
check "metrics show the outbox depth and latency histograms" \
  'grep -q "^switchboard_outbox_depth{state=\"pending\"} 0" <<<"$metrics" && grep -q "^switchboard_store_commit_seconds_count [1-9]" <<<"$metrics" && grep -q "^switchboard_send_seconds_bucket{le=\"+Inf\"} [1-9]" <<<"$metrics"'
check "metrics show channel states" 'grep -q "^switchboard_channel_state{channel=\"demo\",plugin=\"custom\",state=\"connected\"} 1" <<<"$metrics"'

# Content sent inline (base64) is stored with the message; an agent downloads it.
head -c 3000 /dev/urandom >"$work/inline.bin"
inline='{"id": "ext-att-3", "sender": {"id": "user-42"}, "text": "Receipt attached", "attachments": [{"data": "'"$(base64 -w0 "$work/inline.bin")"'", "mime_type": "image/png", "filename": "receipt.png"}]}'
out=$(post "$base/demo/messages" "$inline")
check "a message with inline base64 content → 200" '[[ "$out" == 200* ]]' "$out"
api() { curl -s -H "Authorization: Bearer $AGENT" "http://127.0.0.1:$port$1" "${@:2}"; }
conv=$(sql "select thread_id from messages where external_id = 'ext-att-3'")
url=$(api "/api/v1/conversations/$conv" | python3 -c 'import json, sys
d = json.load(sys.stdin)
print([a["url"] for m in d["messages"] if m["external_id"] == "ext-att-3" for a in m["attachments"]][0])')
check "its attachment points at the download endpoint" '[[ "$url" =~ ^/api/v1/attachments/[0-9]+$ ]]' "$url"
api "$url" -o "$work/inline.got"
check "the download is the content, byte for byte" 'cmp -s "$work/inline.got" "$work/inline.bin"'
out=$(post "$base/demo/messages" "$inline")
check "a redelivery stores the content no second time" \
  '[[ "$out" == 200* ]] && [ "$(sql "select count(*) from attachments")" = 1 ]' "$out"

check "the signing secret never reaches the log" '! grep -q "$E2E_SECRET" "$work/daemon.log"'
check "the API token never reaches the log" '! grep -q "$TOKEN" "$work/daemon.log"'
kill -TERM "$daemon"
wait "$daemon"
rc=$?
pids=("${pids[0]}")
check "SIGTERM stops the daemon with status 0" '[ $rc -eq 0 ]'

finish
