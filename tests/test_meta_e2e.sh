#!/usr/bin/env bash
# test_meta_e2e.sh — Messenger and WhatsApp through the real daemon against the Graph API double
# (tests/graph_double_server): verification, signatures, batched and redelivered webhooks with escaped
# unicode, profiles (and a failing profile lookup), an outbound reply through the outbox, read
# watermarks, echoes, WhatsApp media (stored and downloaded over the REST API, or its failure recorded),
# agents' uploaded files sent on (Messenger's filedata, WhatsApp's media upload)
# and statuses, messaging windows, GDPR explicit consent, and every class of Graph error the plugins
# classify (scripted in the double: failed, retried, rate-limited, auth_failed); checked over HTTP and
# in the SQLite store. Stops only the processes it starts, by PID.
set -u

SB=${SB_BINARY:?}
PLUGINS=${SB_PLUGIN_BUILD_DIR:?}
DOUBLE=${SB_BUILD_DIR:?}/tests/graph_double_server
work=$(mktemp -d /tmp/sbmeta.XXXXXX)
daemon_pid=
double_pid=
passed=0
failed=0

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid"; fi
  if [ -n "$double_pid" ] && kill -0 "$double_pid" 2>/dev/null; then kill -KILL "$double_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "# $2"; }
check() { # check NAME GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', wanted '$3'"; fi
}

TOKEN=EAAe2eToken
PAGE=1000200030004000
PSID=7000000000000001
FB_SECRET=fb-app-secret-e2e
WA_SECRET=wa-app-secret-e2e
WA_ID=4790000001

"$DOUBLE" --token "$TOKEN" --page "$PAGE" --port-file "$work/double.port" --log "$work/double.log" \
  --profile "$PSID:Kim:Larsen" --media "1037543291543636:image/jpeg:JPEGBYTES" \
  --media "2000000000000002:audio/ogg:OGGBYTES" --media "4000000000000004:image/webp:RIFFWEBP" \
  --media "5000000000000005:video/mp4:MP4BYTES" --media "3000000000000003:application/pdf:PDFBYTES" \
  >"$work/double.out" 2>&1 &
double_pid=$!
for _ in $(seq 50); do [ -s "$work/double.port" ] && break; sleep 0.1; done
gport=$(cat "$work/double.port")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$gport/v21.0"
cdn="http://127.0.0.1:$gport/cdn" # Messenger's attachment links
db="$work/db.sqlite"

cat >"$work/switchboard.json" <<EOF
{"listen": "127.0.0.1:$port", "store": "sqlite:$db", "outbox": {"retry_base": "200ms"},
 "plugins": {"dirs": ["$PLUGINS"], "allow": ["messenger", "whatsapp"]},
 "channels": [
   {"name": "fb", "plugin": "messenger", "inbox": "Support",
    "credentials": {"page_id": "$PAGE", "page_access_token": "$TOKEN", "app_secret": "$FB_SECRET",
                    "verify_token": "fb-verify", "graph_api_base": "$base", "greeting_text": "Hi {{user_first_name}}, ask us anything."},
    "auto_replies": {"instant_reply": "Thanks, we got your message."}},
   {"name": "fbc", "plugin": "messenger", "inbox": "Support",
    "credentials": {"page_id": "$PAGE", "page_access_token": "$TOKEN", "app_secret": "$FB_SECRET",
                    "verify_token": "fb-verify", "graph_api_base": "$base", "consent_mode": "explicit"}},
   {"name": "wa", "plugin": "whatsapp", "inbox": "Support",
    "credentials": {"phone_number_id": "$PAGE", "waba_id": "102290129340398", "access_token": "$TOKEN",
                    "app_secret": "$WA_SECRET", "verify_token": "wa-verify", "graph_api_base": "$base"}}
 ]}
EOF

AGENT=$("$SB" tokens create -c "$work/switchboard.json" --name e2e --role agent 2>"$work/token.err")
"$SB" run -c "$work/switchboard.json" --log-level debug >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do grep -q 'ready' "$work/daemon.log" && break; sleep 0.1; done
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"name":"wa","plugin":"whatsapp","state":"connected"' && break
  sleep 0.1
done
health=$(curl -sf "http://127.0.0.1:$port/healthz")
if grep -q '"name":"fb","plugin":"messenger","state":"connected"' <<<"$health" &&
  grep -q '"name":"wa","plugin":"whatsapp","state":"connected"' <<<"$health"; then
  ok "both channels connect after checking their token with the Graph API"
else
  not_ok "channels connect" "$health $(tail -20 "$work/daemon.log")"
fi

sql() { sqlite3 -cmd '.timeout 5000' "$db" "$1"; }
# settled SQL WANT: the query's answer once it equals WANT, or its last answer after 10 s.
settled() {
  local got
  for _ in $(seq 100); do
    got=$(sql "$1")
    [ "$got" = "$2" ] && break
    sleep 0.1
  done
  printf '%s' "$got"
}

# api_reply THREAD JSON: an agent's reply through the REST API; fails the test unless it is queued (202).
api_reply() {
  local got
  got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
    --data-binary "$2" "http://127.0.0.1:$port/api/v1/conversations/$1/messages")
  [ "$got" = "202" ] || not_ok "a reply is queued over the API" "got $got for $2 on conversation $1"
}
# queue_reply CHANNEL THREAD TEXT: an agent's text reply on that channel.
queue_reply() {
  api_reply "$2" "{\"channel\": \"$1\", \"text\": \"$3\"}"
}
# upload FILE TYPE NAME: an agent's upload over the REST API; prints the file's link (/api/v1/attachments/ID).
upload() {
  curl -s -H "Authorization: Bearer $AGENT" -H "Content-Type: $2" --data-binary @"$1" \
    "http://127.0.0.1:$port/api/v1/attachments?filename=$3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])'
}
# reply_file CHANNEL THREAD TEXT LINK: a reply with text and that stored file; waits until it is sent.
reply_file() {
  api_reply "$2" "{\"channel\": \"$1\", \"text\": \"$3\", \"attachments\": [{\"url\": \"$4\"}]}"
  for _ in $(seq 100); do [ "$(sql "SELECT status FROM messages WHERE text='$3'")" = sent ] && break; sleep 0.1; done
}
# post CHANNEL SECRET FILE: the double sends FILE as Meta does (rewritten with \uXXXX escapes and \/,
# signed with X-Hub-Signature-256); prints the HTTP status.
post() {
  "$DOUBLE" --send "http://127.0.0.1:$port/hooks/$1" --app-secret "$2" --file "$3" | cut -d' ' -f1
}
# post_signed_as CHANNEL FILE SIGNATURE: FILE as it is, with the given signature header.
post_signed_as() {
  curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H "X-Hub-Signature-256: $3" \
    --data-binary @"$2" "http://127.0.0.1:$port/hooks/$1"
}

# --- verification and signatures -------------------------------------------------------
if grep '"path":"/v21.0/me/messenger_profile"' "$work/double.log" | grep -q 'ask us anything'; then
  ok "the greeting text is set on the Page's Messenger profile at connect"
else
  not_ok "greeting via messenger_profile" "$(grep messenger_profile "$work/double.log")"
fi
got=$(curl -s "http://127.0.0.1:$port/hooks/fb?hub.mode=subscribe&hub.verify_token=fb-verify&hub.challenge=1158201444")
check "Messenger verification answers the challenge" "$got" "1158201444"
got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/hooks/wa?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
check "a wrong verify token gets 403" "$got" "403"

now=$(($(date +%s) * 1000))
cat >"$work/batch.json" <<EOF
{"object":"page","entry":[
 {"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now - 2000)),
  "message":{"mid":"m_e2e_1","text":"Café 😀 æøå","attachments":[{"type":"image","payload":{"url":"http://127.0.0.1:$gport/cdn/1037543291543636?x=1"}}]}}]},
 {"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now - 1000)),
  "message":{"mid":"m_e2e_2","text":"second","reply_to":{"mid":"m_e2e_1"}}}]}]}
EOF
check "a badly signed webhook gets 403" "$(post_signed_as fb "$work/batch.json" "sha256=$(printf '0%.0s' $(seq 64))")" "403"
check "an unsigned webhook gets 401" "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$work/batch.json" "http://127.0.0.1:$port/hooks/fb")" "401"
check "refused webhooks store nothing" "$(sql "SELECT count(*) FROM messages")" "0"

# --- inbound Messenger --------------------------------------------------------------------
check "a signed batch of two entries gets 200" "$(post fb "$FB_SECRET" "$work/batch.json")" "200"
check "every entry's message is stored" "$(sql "SELECT count(*) FROM messages WHERE channel='fb' AND direction='in'")" "2"
check "escaped unicode is stored as UTF-8" "$(sql "SELECT text FROM messages WHERE external_id='m_e2e_1'")" "Café 😀 æøå"
check "the contact is named from the User Profile API" "$(sql "SELECT name FROM contacts c JOIN identities i ON i.contact_id=c.id WHERE i.value='$PSID'")" "Kim Larsen"
check "an escaped attachment URL is stored unescaped" "$(sql "SELECT json_extract(attachments, '\$[0].url') FROM messages WHERE external_id='m_e2e_1'")" "http://127.0.0.1:$gport/cdn/1037543291543636?x=1"
check "the attachment's bytes are downloaded from Meta's CDN and kept, with their real type" \
  "$(sql "SELECT a.size || ' ' || a.mime_type FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.external_id='m_e2e_1'")" "9 image/jpeg"
check "reply_to.mid links the reply" "$(sql "SELECT r.external_id FROM messages m JOIN messages r ON r.id=m.reply_to WHERE m.external_id='m_e2e_2'")" "m_e2e_1"
for _ in $(seq 100); do [ "$(sql "SELECT status FROM messages WHERE channel='fb' AND automatic=1")" = sent ] && break; sleep 0.1; done
check "the new conversation gets the instant reply once, automatic, sent" "$(sql "SELECT count(*) || ' ' || group_concat(status) FROM messages WHERE channel='fb' AND automatic=1")" "1 sent"
if grep '"path":"/v21.0/me/messages"' "$work/double.log" | grep 'Thanks, we got your message' | grep -q 'messaging_type\\":\\"RESPONSE'; then
  ok "the instant reply goes as RESPONSE"
else
  not_ok "instant reply RESPONSE" "$(cat "$work/double.log")"
fi
check "a redelivered batch gets 200" "$(post fb "$FB_SECRET" "$work/batch.json")" "200"
check "a redelivered batch stores nothing new" "$(sql "SELECT count(*) FROM messages WHERE channel='fb' AND direction='in'")" "2"

# --- outbound through the outbox ------------------------------------------------------------
thread=$(sql "SELECT thread_id FROM messages WHERE external_id='m_e2e_1'")
queue_reply fb "$thread" "Hi Kim, how can we help?"
for _ in $(seq 100); do [ "$(sql "SELECT status FROM messages WHERE text='Hi Kim, how can we help?'")" = sent ] && break; sleep 0.1; done
check "a queued reply is sent through the Send API" "$(sql "SELECT status || ' ' || (external_id LIKE 'm_sent%') FROM messages WHERE text='Hi Kim, how can we help?'")" "sent 1"
if grep '"path":"/v21.0/me/messages"' "$work/double.log" | grep -q 'messaging_type\\":\\"RESPONSE'; then
  ok "the reply goes as RESPONSE: the host passes the customer's last message time"
else
  not_ok "RESPONSE reply" "$(cat "$work/double.log")"
fi

# An agent's upload goes to Messenger as a file part of the Send API call.
printf '\211PNG\r\n\032\nfile bytes' >"$work/scan.png"
reply_file fb "$thread" "Here is the scan" "$(upload "$work/scan.png" image/png scan.png)"
check "a reply with an uploaded file is sent" "$(sql "SELECT status FROM messages WHERE text='Here is the scan'")" "sent"
if grep '"path":"/v21.0/me/messages"' "$work/double.log" |
  grep -q '"name\\":\\"filedata\\",\\"filename\\":\\"scan.png\\",\\"content_type\\":\\"image/png\\",\\"size\\":'"$(stat -c %s "$work/scan.png")"; then
  ok "the uploaded file reaches Messenger as filedata with its name, type and size"
else
  not_ok "Messenger filedata" "$(grep filedata "$work/double.log" | tail -2)"
fi

cat >"$work/read.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"delivery":{"mids":["m_sent0002"],"watermark":$((now + 5000))}},
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 6000)),"read":{"watermark":$((now + 5000))}},
 {"sender":{"id":"$PAGE"},"recipient":{"id":"$PSID"},"timestamp":$((now + 7000)),"message":{"is_echo":true,"app_id":263902037430900,"mid":"m_e2e_echo","text":"Written in the Page inbox"}}]}]}
EOF
check "receipts and an echo get 200" "$(post fb "$FB_SECRET" "$work/read.json")" "200"
check "the read watermark marks the reply read" "$(settled "SELECT status FROM messages WHERE text='Hi Kim, how can we help?'" "read")" "read"
check "an echo is stored as an outbound message" "$(sql "SELECT direction FROM messages WHERE external_id='m_e2e_echo'")" "out"

# --- WhatsApp -------------------------------------------------------------------------------
ts=$(date +%s)
cat >"$work/wa.json" <<EOF
{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"$PAGE"},
 "contacts":[{"profile":{"name":"Kari Ås"},"wa_id":"$WA_ID"}],
 "messages":[{"from":"$WA_ID","id":"wamid.E2E1","timestamp":"$ts","type":"text","text":{"body":"Hei 👋"}},
  {"from":"$WA_ID","id":"wamid.E2E2","timestamp":"$ts","type":"image","image":{"caption":"Broken","mime_type":"image/jpeg","sha256":"x","id":"1037543291543636"}}]},
 "field":"messages"}]}]}
EOF
check "a signed WhatsApp batch gets 200" "$(post wa "$WA_SECRET" "$work/wa.json")" "200"
check "WhatsApp text is stored as UTF-8" "$(sql "SELECT text FROM messages WHERE external_id='wamid.E2E1'")" "Hei 👋"
check "the WhatsApp contact has the profile name and phone" "$(sql "SELECT name || ' ' || phone FROM contacts WHERE phone='+$WA_ID'")" "Kari Ås +$WA_ID"
if sql "SELECT attachments FROM messages WHERE external_id='wamid.E2E2'" | grep -q '/media/1037543291543636'; then
  ok "WhatsApp media is stored as an attachment URL"
else
  not_ok "WhatsApp media" "$(sql "SELECT attachments FROM messages WHERE external_id='wamid.E2E2'")"
fi
# The downloaded media is stored with the message and an agent downloads it over the API.
api_get() { # api_get PATH OUT: prints the HTTP status, the body goes to OUT (headers to OUT.h)
  curl -s -D "$2.h" -o "$2" -w '%{http_code}' -H "Authorization: Bearer $AGENT" "http://127.0.0.1:$port$1"
}
mthread=$(sql "SELECT thread_id FROM messages WHERE external_id='wamid.E2E2'")
check "the conversation with the WhatsApp image is readable over the API" \
  "$(api_get "/api/v1/conversations/$mthread" "$work/conv.json")" "200"
media_url=$(python3 - "$work/conv.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a = [a for m in d["messages"] if m["external_id"] == "wamid.E2E2" for a in m["attachments"]]
ok = len(a) == 1 and a[0]["url"] == "/api/v1/attachments/%d" % a[0]["id"] and "/media/1037543291543636" in a[0]["source_url"]
print(a[0]["url"] if ok else "bad: %s" % a)
PY
)
check "the image attachment points at its download, keeping the Graph URL as source_url" "${media_url%/*}/" "/api/v1/attachments/"
check "GET the attachment answers 200" "$(api_get "$media_url" "$work/media.bin")" "200"
check "the bytes are those the Graph API served" "$(cat "$work/media.bin")" "JPEGBYTES"
check "with the media's Content-Type" "$(tr -d '\r' <"$work/media.bin.h" | grep -i '^content-type:' | cut -d' ' -f2-)" "image/jpeg"
wthread=$(sql "SELECT thread_id FROM messages WHERE external_id='wamid.E2E1'")
queue_reply wa "$wthread" "Takk, Kari!"
for _ in $(seq 100); do [ "$(sql "SELECT status FROM messages WHERE text='Takk, Kari!'")" = sent ] && break; sleep 0.1; done
wamid=$(sql "SELECT external_id FROM messages WHERE text='Takk, Kari!'")
check "a queued WhatsApp reply is sent through the Cloud API" "$(sql "SELECT status FROM messages WHERE text='Takk, Kari!'") ${wamid%%.*}" "sent wamid"
if grep "\"path\":\"/v21.0/$PAGE/messages\"" "$work/double.log" | grep -q "\"to\\\\\":\\\\\"$WA_ID"; then
  ok "the Cloud API call goes to the customer's wa_id"
else
  not_ok "Cloud API to" "$(tail -3 "$work/double.log")"
fi
# An agent's upload goes to WhatsApp as media uploaded first, then sent by its id.
printf '%%PDF-1.4 invoice' >"$work/invoice.pdf"
reply_file wa "$wthread" "Your invoice" "$(upload "$work/invoice.pdf" application/pdf invoice.pdf)"
check "a WhatsApp reply with an uploaded file is sent" "$(sql "SELECT status FROM messages WHERE text='Your invoice'")" "sent"
if grep "\"path\":\"/v21.0/$PAGE/media\"" "$work/double.log" | grep -q 'invoice.pdf'; then
  ok "the uploaded file is uploaded to the Cloud API's media endpoint"
else
  not_ok "WhatsApp media upload" "$(grep '/media' "$work/double.log" | tail -2)"
fi
if grep "\"path\":\"/v21.0/$PAGE/messages\"" "$work/double.log" | grep 'document' | grep -q 'invoice.pdf'; then
  ok "and sent as a document by its media id, with its file name"
else
  not_ok "WhatsApp document by id" "$(grep document "$work/double.log" | tail -2)"
fi
wa_status() { # wa_status STATUS-OBJECT-MEMBERS
  cat >"$work/wa_status.json" <<EOF
{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"$PAGE"},
 "statuses":[{"id":"$wamid","timestamp":"$ts","recipient_id":"$WA_ID",$1}]},"field":"messages"}]}]}
EOF
  post wa "$WA_SECRET" "$work/wa_status.json"
}
check "a WhatsApp status webhook gets 200" "$(wa_status '"status":"delivered"')" "200"
check "the status marks the reply delivered" "$(settled "SELECT status FROM messages WHERE text='Takk, Kari!'" "delivered")" "delivered"
check "a failed status webhook gets 200" "$(wa_status '"status":"failed","errors":[{"code":131047,"title":"Re-engagement message"}]')" "200"
check "131047 fails the reply with re-engagement required" "$(settled "SELECT status || ': ' || substr(error, 1, 22) FROM messages WHERE text='Takk, Kari!'" "failed: re-engagement required")" "failed: re-engagement required"
check "a redelivered WhatsApp batch gets 200" "$(post wa "$WA_SECRET" "$work/wa.json")" "200"
check "and stores nothing new" "$(sql "SELECT count(*) FROM messages WHERE channel='wa' AND direction='in'")" "2"
check "not even a second copy of the media" "$(sql "SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.channel = 'wa' AND m.direction = 'in'")" "1"
# Media the Graph API does not know: the message is still stored, with the
# failure recorded on it for agents (its metadata), and nothing downloaded.
cat >"$work/wa_gone.json" <<EOF
{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"$PAGE"},
 "contacts":[{"profile":{"name":"Kari Ås"},"wa_id":"$WA_ID"}],
 "messages":[{"from":"$WA_ID","id":"wamid.E2EGONE","timestamp":"$ts","type":"document","document":{"filename":"invoice.pdf","mime_type":"application/pdf","sha256":"y","id":"999000999"}}]},
 "field":"messages"}]}]}
EOF
check "a message whose media cannot be fetched still gets 200" "$(post wa "$WA_SECRET" "$work/wa_gone.json")" "200"
check "it is stored, with the media failure recorded on it" \
  "$(sql "SELECT count(*) || ' ' || (json_extract(metadata, '\$.media_error') LIKE '%media%') FROM messages WHERE external_id='wamid.E2EGONE'")" "1 1"
gone_thread=$(sql "SELECT thread_id FROM messages WHERE external_id='wamid.E2EGONE'")
api_get "/api/v1/conversations/$gone_thread" "$work/gone.json" >/dev/null
check "agents see the failure over the API" "$(python3 -c '
import json, sys
m = [m for m in json.load(open(sys.argv[1]))["messages"] if m["external_id"] == "wamid.E2EGONE"][0]
print("media_error" in (m["metadata"] or {}))' "$work/gone.json")" "True"
check "and no content was stored for it" "$(sql "SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.channel = 'wa' AND m.direction = 'in'")" "1"

# --- messaging windows through the daemon ----------------------------------------------------
# A Messenger customer who last wrote 30 hours ago: an agent's reply goes
# with the HUMAN_AGENT tag, the automatic instant reply may not leave 24 h.
PSID2=7000000000000002
old=$((now - 30 * 3600 * 1000))
cat >"$work/old.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID2"},"recipient":{"id":"$PAGE"},
 "timestamp":$old,"message":{"mid":"m_e2e_old","text":"Still waiting for my refund"}}]}]}
EOF
check "a message written 30 hours ago gets 200" "$(post fb "$FB_SECRET" "$work/old.json")" "200"
check "the automatic instant reply does not leave the 24-hour window" \
  "$(settled "SELECT m.status FROM messages m JOIN threads t ON t.id = m.thread_id JOIN identities i ON i.contact_id = t.contact_id WHERE i.value='$PSID2' AND m.automatic=1" "failed")" "failed"
othread=$(sql "SELECT thread_id FROM messages WHERE external_id='m_e2e_old'")
queue_reply fb "$othread" "Sorry for the wait"
check "an agent's reply 30 hours later is sent" "$(settled "SELECT status FROM messages WHERE text='Sorry for the wait'" "sent")" "sent"
if grep 'Sorry for the wait' "$work/double.log" | grep 'MESSAGE_TAG' | grep -q 'HUMAN_AGENT'; then
  ok "it goes with MESSAGE_TAG + HUMAN_AGENT (the window counts from the customer's own timestamp)"
else
  not_ok "HUMAN_AGENT tag" "$(grep 'Sorry for the wait' "$work/double.log")"
fi
# A WhatsApp customer who last wrote 30 hours ago: free text fails at once, a
# template (the reply's template) goes out.
WA_ID2=4790000002
# wa_text FILE NAME WA_ID WAMID TIMESTAMP BODY: a WhatsApp text message from a customer, as Meta sends it.
wa_text() {
  cat >"$1" <<EOF
{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"$PAGE"},
 "contacts":[{"profile":{"name":"$2"},"wa_id":"$3"}],
 "messages":[{"from":"$3","id":"$4","timestamp":"$5","type":"text","text":{"body":"$6"}}]},
 "field":"messages"}]}]}
EOF
}
wa_text "$work/wa_old.json" Ola "$WA_ID2" wamid.E2EOLD "$((old / 1000))" "Hallo?"
check "an old WhatsApp message gets 200" "$(post wa "$WA_SECRET" "$work/wa_old.json")" "200"
wothread=$(sql "SELECT thread_id FROM messages WHERE external_id='wamid.E2EOLD'")
queue_reply wa "$wothread" "Free text too late"
api_reply "$wothread" '{"template": {"name": "order_update", "language": "en", "parameters": ["Ola"]}}'
check "free text outside the 24-hour window fails at once" "$(settled "SELECT status FROM messages WHERE text='Free text too late'" "failed")" "failed"
check "a template outside the window is sent" "$(settled "SELECT status FROM messages WHERE template IS NOT NULL" "sent")" "sent"
if grep "/v21.0/$PAGE/messages" "$work/double.log" | grep 'order_update' | grep -q 'template'; then
  ok "it goes to the Cloud API as a template message"
else
  not_ok "WhatsApp template" "$(grep order_update "$work/double.log")"
fi

# --- GDPR explicit consent through the daemon -------------------------------------------------
# A first message is answered with the consent request; an agent's reply is
# held (deferred, never dead-lettered) until the person taps the button, then
# released at once rather than at the hold's end.
PSID3=7000000000000003
cat >"$work/consent1.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID3"},"recipient":{"id":"$PAGE"},
 "timestamp":$now,"message":{"mid":"m_e2e_c1","text":"Can you help me?"}}]}]}
EOF
check "a first message on a consent channel gets 200" "$(post fbc "$FB_SECRET" "$work/consent1.json")" "200"
for _ in $(seq 100); do grep -q 'SWITCHBOARD_CONSENT_GIVEN' "$work/double.log" && break; sleep 0.1; done
if grep '"path":"/v21.0/me/messages"' "$work/double.log" | grep "$PSID3" | grep -q 'SWITCHBOARD_CONSENT_GIVEN'; then
  ok "the person is asked for consent with a postback button"
else
  not_ok "consent request" "$(grep "$PSID3" "$work/double.log")"
fi
cthread=$(sql "SELECT thread_id FROM messages WHERE external_id='m_e2e_c1'")
queue_reply fbc "$cthread" "Happy to help"
held=$(settled "SELECT state || ' ' || attempts || ' ' || (next_at > $now + 1800000) || ' ' || (last_error LIKE 'held: the customer has not given consent%') FROM outbox WHERE message_id = (SELECT id FROM messages WHERE text='Happy to help')" "pending 0 1 1")
check "an agent's reply before consent is held for later, not counted as an attempt, with the reason" "$held" "pending 0 1 1"
if grep 'Happy to help' "$work/double.log" >/dev/null; then not_ok "a held reply reached Meta"; else ok "a held reply does not reach Meta"; fi
cat >"$work/consent2.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID3"},"recipient":{"id":"$PAGE"},
 "timestamp":$((now + 1000)),"postback":{"mid":"m_e2e_c2","title":"I agree","payload":"SWITCHBOARD_CONSENT_GIVEN"}}]}]}
EOF
check "the consent postback gets 200" "$(post fbc "$FB_SECRET" "$work/consent2.json")" "200"
check "the held reply goes out as soon as consent is given" "$(settled "SELECT status FROM messages WHERE text='Happy to help'" "sent")" "sent"
check "the consent is recorded in the channel's state" "$(sql "SELECT count(*) FROM kv WHERE channel='fbc' AND key='c:$PSID3'")" "1"

# A reply with an attachment, answering a given message: one Send API call
# per part, the first carrying reply_to.
replied=$(sql "SELECT id FROM messages WHERE external_id='m_e2e_1'")
api_reply "$thread" "{\"channel\": \"fb\", \"text\": \"Here is the label\", \"reply_to\": $replied,
  \"attachments\": [{\"url\": \"https://cdn.example/label.png\", \"mime_type\": \"image/png\"}]}"
check "a reply with an attachment is sent" "$(settled "SELECT status FROM messages WHERE text='Here is the label'" "sent")" "sent"
if grep '"path":"/v21.0/me/messages"' "$work/double.log" | grep 'Here is the label' | grep -q 'reply_to\\":{\\"mid\\":\\"m_e2e_1'; then
  ok "its text answers the given message (reply_to.mid)"
else
  not_ok "reply_to on the Send API" "$(grep 'Here is the label' "$work/double.log")"
fi
if grep '"path":"/v21.0/me/messages"' "$work/double.log" | grep 'label.png' | grep -q 'image'; then
  ok "its attachment goes as an image attachment"
else
  not_ok "attachment on the Send API" "$(grep 'label.png' "$work/double.log")"
fi
# A customer who last wrote 8 days ago cannot be answered on Messenger at all.
PSID5=7000000000000005
cat >"$work/ancient.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID5"},"recipient":{"id":"$PAGE"},
 "timestamp":$((now - 8 * 24 * 3600 * 1000)),"message":{"mid":"m_e2e_8d","text":"hello from last week"}}]}]}
EOF
check "a message written 8 days ago gets 200" "$(post fb "$FB_SECRET" "$work/ancient.json")" "200"
athread=$(sql "SELECT thread_id FROM messages WHERE external_id='m_e2e_8d'")
queue_reply fb "$athread" "Too late to answer"
check "a reply past 7 days fails at once with the reason" \
  "$(settled "SELECT status || ' ' || (error LIKE 'outside the 7-day human agent window%') FROM messages WHERE text='Too late to answer'" "failed 1")" "failed 1"
if grep -q 'Too late to answer' "$work/double.log"; then not_ok "a reply past 7 days reached Meta"; else ok "and nothing reaches Meta"; fi

# --- every kind of event through the daemon ---------------------------------------------------
# Messenger: attachments of each type, stickers in both forms, a shared link,
# a quick reply, a postback and a standby event, in one signed batch.
cat >"$work/kinds.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 10)),"message":{"mid":"m_k_att","attachments":[
  {"type":"image","payload":{"url":"$cdn/1037543291543636"}},{"type":"audio","payload":{"url":"$cdn/2000000000000002"}},
  {"type":"video","payload":{"url":"$cdn/5000000000000005"}},{"type":"file","payload":{"url":"$cdn/3000000000000003"}}]}},
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 11)),"message":{"mid":"m_k_st1","sticker_id":369239263222822,
  "attachments":[{"type":"image","payload":{"url":"$cdn/4000000000000004","sticker_id":369239263222822}}]}},
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 12)),"message":{"mid":"m_k_st2",
  "attachments":[{"type":"sticker","payload":{"url":"$cdn/4000000000000004"}}]}},
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 13)),"message":{"mid":"m_k_fb",
  "attachments":[{"type":"fallback","title":"A page","payload":{"url":"https://ex.com/x"}}]}},
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 14)),"message":{"mid":"m_k_qr","text":"Yes please",
  "quick_reply":{"payload":"YES_PLEASE"}}},
 {"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 15)),"postback":{"mid":"m_k_pb","title":"Talk to sales","payload":"SALES"}}]},
 {"id":"$PAGE","time":$now,"standby":[{"sender":{"id":"$PSID"},"recipient":{"id":"$PAGE"},"timestamp":$((now + 16)),
  "message":{"mid":"m_k_sb","text":"to the other app"}}]}]}
EOF
check "a batch with every Messenger event kind gets 200" "$(post fb "$FB_SECRET" "$work/kinds.json")" "200"
meta() { sql "SELECT json_extract(metadata, '\$.$2') FROM messages WHERE external_id='$1'"; }
check "image, audio, video and file attachments are downloaded from the CDN and kept with their real types" \
  "$(sql "SELECT group_concat(json_extract(a.value, '\$.mime_type') || ':' || (SELECT size FROM attachments s WHERE s.message_id = m.id AND s.position = a.key), ' ') FROM messages m, json_each(m.attachments) a WHERE m.external_id='m_k_att'")" \
  "image/jpeg:9 audio/ogg:8 video/mp4:8 application/pdf:8"
check "a sticker sent as an image keeps its sticker_id" "$(meta m_k_st1 sticker_id)" "369239263222822"
check "the newer sticker type is marked a sticker" "$(meta m_k_st2 sticker) $(sql "SELECT json_array_length(attachments) FROM messages WHERE external_id='m_k_st2'")" "1 1"
check "a shared link is the text, its title in the metadata" "$(sql "SELECT text FROM messages WHERE external_id='m_k_fb'")" "https://ex.com/x"
check "a quick reply's payload is kept" "$(meta m_k_qr quick_reply_payload)" "YES_PLEASE"
check "a postback is a message with its payload" "$(sql "SELECT text FROM messages WHERE external_id='m_k_pb'") $(meta m_k_pb postback_payload)" "Talk to sales SALES"
check "a standby event is recorded, marked standby" "$(meta m_k_sb standby)" "1"

# WhatsApp: location, button and list replies, a template button, a reaction
# and its removal, a voice note, a sticker and a video.
cat >"$work/wa_kinds.json" <<EOF
{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"$PAGE"},
 "contacts":[{"profile":{"name":"Kari Ås"},"wa_id":"$WA_ID"}],
 "messages":[
  {"from":"$WA_ID","id":"wamid.K_LOC","timestamp":"$ts","type":"location","location":{"latitude":59.91,"longitude":10.75,"name":"Office","address":"Main st 1"}},
  {"from":"$WA_ID","id":"wamid.K_BR","timestamp":"$ts","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"yes-1","title":"Yes"}}},
  {"from":"$WA_ID","id":"wamid.K_LR","timestamp":"$ts","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"r2","title":"Row 2","description":"d"}}},
  {"from":"$WA_ID","id":"wamid.K_BTN","timestamp":"$ts","type":"button","button":{"payload":"STOP","text":"Stop promotions"}},
  {"from":"$WA_ID","id":"wamid.K_RX","timestamp":"$ts","type":"reaction","reaction":{"message_id":"$wamid","emoji":"👍"}},
  {"from":"$WA_ID","id":"wamid.K_RX0","timestamp":"$ts","type":"reaction","reaction":{"message_id":"$wamid"}},
  {"from":"$WA_ID","id":"wamid.K_VOICE","timestamp":"$ts","type":"audio","audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"x","id":"2000000000000002","voice":true}},
  {"from":"$WA_ID","id":"wamid.K_STK","timestamp":"$ts","type":"sticker","sticker":{"mime_type":"image/webp","id":"4000000000000004","animated":false}},
  {"from":"$WA_ID","id":"wamid.K_VID","timestamp":"$ts","type":"video","video":{"mime_type":"video/mp4","id":"5000000000000005"}}]},
 "field":"messages"}]}]}
EOF
check "a batch with every WhatsApp message type gets 200" "$(post wa "$WA_SECRET" "$work/wa_kinds.json")" "200"
check "every one of them is stored" "$(sql "SELECT count(*) FROM messages WHERE external_id LIKE 'wamid.K_%'")" "9"
check "a location reads as its name, with coordinates kept" "$(sql "SELECT text LIKE '%Office%' FROM messages WHERE external_id='wamid.K_LOC'") $(meta wamid.K_LOC location.latitude)" "1 59.91"
check "button and list replies read as their titles" "$(sql "SELECT group_concat(text, '|') FROM (SELECT text FROM messages WHERE external_id IN ('wamid.K_BR', 'wamid.K_LR', 'wamid.K_BTN') ORDER BY id)")" "Yes|Row 2|Stop promotions"
check "a reaction answers the reacted message" "$(sql "SELECT m.text || ' -> ' || r.external_id FROM messages m JOIN messages r ON r.id = m.reply_to WHERE m.external_id='wamid.K_RX'")" "Reacted 👍 -> $wamid"
check "a removed reaction is recorded as such" "$(sql "SELECT text FROM messages WHERE external_id='wamid.K_RX0'") $(meta wamid.K_RX0 reaction_removed)" "Removed a reaction 1"
check "a voice note is stored with its audio, marked voice" "$(meta wamid.K_VOICE voice) $(sql "SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.external_id='wamid.K_VOICE'")" "1 1"
check "a sticker and a video keep their media" "$(sql "SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.external_id IN ('wamid.K_STK', 'wamid.K_VID')")" "2"

# --- Graph errors through the daemon -----------------------------------------------------------
# The double answers the next matching call with the scripted Graph error.
script() { # script PATH-PART HTTP-STATUS CODE SUBCODE
  curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"path\":\"$1\",\"http_status\":$2,\"code\":$3,\"subcode\":$4,\"message\":\"Scripted $3\"}" \
    "http://127.0.0.1:$gport/__double/script" >/dev/null
}
script /me/messages 400 10 2018278
queue_reply fb "$thread" "Window closed reply"
check "Messenger 10/2018278 fails the reply at once with Meta's reason" \
  "$(settled "SELECT status || ' ' || (error LIKE '%Scripted 10%') FROM messages WHERE text='Window closed reply'" "failed 1")" "failed 1"
script /me/messages 400 551 0
queue_reply fb "$thread" "Unavailable person reply"
check "Messenger 551 fails the reply" "$(settled "SELECT status FROM messages WHERE text='Unavailable person reply'" "failed")" "failed"
# rate_paused TEXT: "pending 1 1" once the reply waits for a retry at least 30 s away.
rate_paused() {
  settled "SELECT o.state || ' ' || o.attempts || ' ' || (o.next_at - CAST(strftime('%s', 'now') AS INTEGER) * 1000 > 30000)
           FROM messages m JOIN outbox o ON o.message_id = m.id WHERE m.text='$1'" "pending 1 1"
}
# A reply left waiting on a rate limit goes in a conversation of its own: the
# replies after it in its conversation wait behind it (in order).
script /me/messages 400 613 0
queue_reply fb "$othread" "Throttled reply"
check "Messenger 613 (rate limit) is retried after a pause, not failed" "$(rate_paused "Throttled reply")" "pending 1 1"
script /me/messages 400 2 0
queue_reply fb "$thread" "Unavailable service reply"
check "Messenger 2 is retried with backoff, then sent" \
  "$(settled "SELECT m.status || ' ' || o.attempts FROM messages m JOIN outbox o ON o.message_id = m.id WHERE m.text='Unavailable service reply'" "sent 2")" "sent 2"
curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"path":"/me/messages","http_status":503}' "http://127.0.0.1:$gport/__double/script"
queue_reply fb "$thread" "Server error reply"
check "an HTTP 5xx from the Graph API is retried, then sent" \
  "$(settled "SELECT m.status || ' ' || o.attempts FROM messages m JOIN outbox o ON o.message_id = m.id WHERE m.text='Server error reply'" "sent 2")" "sent 2"
script "/$PAGE/messages" 400 131047 0
queue_reply wa "$wthread" "WhatsApp too late"
check "WhatsApp 131047 answered at once fails with re-engagement required" \
  "$(settled "SELECT status || ': ' || substr(error, 1, 22) FROM messages WHERE text='WhatsApp too late'" "failed: re-engagement required")" "failed: re-engagement required"
script "/$PAGE/messages" 400 131056 0
wa_text "$work/wa_pair.json" Per 4790000009 wamid.E2EPAIR "$ts" Hei
check "a message from another WhatsApp customer gets 200" "$(post wa "$WA_SECRET" "$work/wa_pair.json")" "200"
pthread=$(sql "SELECT thread_id FROM messages WHERE external_id='wamid.E2EPAIR'")
queue_reply wa "$pthread" "WhatsApp pair limit"
check "WhatsApp 131056 (pair rate limit) is retried after a pause, not failed" "$(rate_paused "WhatsApp pair limit")" "pending 1 1"
script "/$PAGE/messages" 500 1 0
queue_reply wa "$wthread" "WhatsApp unknown error"
check "WhatsApp 1 is retried with backoff, then sent" \
  "$(settled "SELECT m.status || ' ' || o.attempts FROM messages m JOIN outbox o ON o.message_id = m.id WHERE m.text='WhatsApp unknown error'" "sent 2")" "sent 2"
script "/$PAGE/messages" 400 131026 0
queue_reply wa "$wthread" "WhatsApp undeliverable"
check "WhatsApp 131026 fails the reply" "$(settled "SELECT status FROM messages WHERE text='WhatsApp undeliverable'" "failed")" "failed"
# A profile error keeps the page-scoped id and does not fail the message.
PSID4=7000000000000004
script "/$PSID4" 400 100 2018218
cat >"$work/noprofile.json" <<EOF
{"object":"page","entry":[{"id":"$PAGE","time":$now,"messaging":[{"sender":{"id":"$PSID4"},"recipient":{"id":"$PAGE"},
 "timestamp":$now,"message":{"mid":"m_e2e_np","text":"who am I"}}]}]}
EOF
check "a message whose User Profile lookup fails gets 200" "$(post fb "$FB_SECRET" "$work/noprofile.json")" "200"
check "it is stored under the page-scoped id" \
  "$(sql "SELECT count(*) FROM messages m JOIN identities i ON i.contact_id = m.contact_id WHERE m.external_id='m_e2e_np' AND i.value='$PSID4'")" "1"
settled "SELECT m.status FROM messages m JOIN identities i ON i.contact_id = m.contact_id WHERE i.value='$PSID4' AND m.automatic=1" "sent" >/dev/null
# 190: the token is refused — the channel goes auth_failed, the operator is told, sends are held.
script /me/messages 401 190 0
queue_reply fb "$thread" "Token refused reply"
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"name":"fb","plugin":"messenger","state":"auth_failed"' && break
  sleep 0.1
done
if curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"name":"fb","plugin":"messenger","state":"auth_failed"'; then
  ok "Messenger 190 puts the channel in auth_failed (/healthz)"
else
  not_ok "auth_failed after 190" "$(curl -s "http://127.0.0.1:$port/healthz")"
fi
check "the reply refused for the token is held, not failed" \
  "$(settled "SELECT m.status || ' ' || o.state || ' ' || (o.last_error LIKE 'held: %') FROM messages m JOIN outbox o ON o.message_id = m.id WHERE m.text='Token refused reply'" "queued pending 1")" "queued pending 1"
if grep -q 'auth_failed' "$work/daemon.log"; then ok "the operator is told in the log"; else not_ok "auth_failed logged"; fi

# --- the SDK's conformance checker ------------------------------------------------------------
for p in "messenger --set page_id=1 --set graph_api_base=http://127.0.0.1:1/v21.0" \
  "whatsapp --set phone_number_id=1 --set waba_id=1 --set graph_api_base=http://127.0.0.1:1/v21.0"; do
  set -- $p
  name=$1
  shift
  out=$("$SB" plugins check "$PLUGINS/$name.so" "$@" 2>&1)
  if grep -q "conforms to plugin ABI" <<<"$out"; then ok "$name.so passes plugins check"; else not_ok "$name.so plugins check" "$out"; fi
done

if grep -qE "$TOKEN|$FB_SECRET|$WA_SECRET|fb-verify" "$work/daemon.log"; then
  not_ok "no secret reaches the daemon's log" "$(grep -E "$TOKEN|$FB_SECRET|$WA_SECRET|fb-verify" "$work/daemon.log" | head -3)"
else
  ok "no secret reaches the daemon's log"
fi

kill -TERM "$daemon_pid"
wait "$daemon_pid"
check "the daemon stops cleanly" "$?" "0"
daemon_pid=
kill -TERM "$double_pid"
wait "$double_pid"
double_pid=

echo "# $passed passed, $failed failed"
[ "$failed" -eq 0 ]
