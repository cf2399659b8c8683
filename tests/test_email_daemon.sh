#!/usr/bin/env bash
# test_email_daemon.sh — the email channel through the real daemon: Dovecot and
# OpenSMTPD started here on free ports (../shared/recipes/mail-servers.md), the
# switchboard executable with an SQLite store; customer mail sent with swaks
# must become messages, threads, contacts and identities in the store, the
# IMAP cursor must survive a restart without storing anything twice, an
# attachment's content must be downloadable over the REST API, a web form's
# conversations must be answered by email through its reply_channel, and the
# password must never reach the log. Stops only what it starts, by PID.
set -u

SB=${SB_BINARY:?}
PLUGINS=${SB_PLUGIN_BUILD_DIR:?}
passed=0
failed=0
dovecot_pid=
smtpd_pid=
daemon_pid=
work=$(mktemp -d /tmp/sbmail.XXXXXX)
chmod 0755 "$work" # Dovecot's auth process runs as user dovecot

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}
cleanup() {
  stop_pid "$daemon_pid"
  stop_pid "$smtpd_pid"
  stop_pid "$dovecot_pid"
  wait 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "# $2"; }
check() { # check NAME WANT GOT
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "wanted '$2', got '$3'"; fi
}

for tool in /usr/sbin/dovecot /usr/sbin/smtpd /usr/bin/swaks /usr/bin/sqlite3; do
  if [ ! -x "$tool" ]; then echo "not ok - $tool is missing (scripts/deps.sh test)"; exit 1; fi
done
if [ "$(id -u)" -ne 0 ]; then echo "not ok - Dovecot and OpenSMTPD need root here"; exit 1; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
imap=$(free_port); lmtp=$(free_port); smtp=$(free_port); http=$(free_port)

mkdir -p "$work/mail" "$work/home" && chown -R dovecot:dovecot "$work/mail" "$work/home"
printf 'support:{PLAIN}s3cret-mail-pass\ncustomer:{PLAIN}s3cret-mail-pass\nvisitor:{PLAIN}s3cret-mail-pass\nformer:{PLAIN}s3cret-mail-pass\n' >"$work/passwd"
cat >"$work/dovecot.conf" <<EOF
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $work/run
log_path = /dev/stderr
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %n
mail_location = maildir:$work/mail/%u
mail_fsync = never
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/passwd
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$work/home/%u
}
service imap-login {
  inet_listener imap {
    port = $imap
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp
  }
}
EOF
cat >"$work/smtpd.conf" <<EOF
table vusers { "@" = "dovecot" }
listen on 127.0.0.1 port $smtp
action "tolmtp" lmtp "127.0.0.1:$lmtp" rcpt-to virtual <vusers>
match from any for any action "tolmtp"
EOF
/usr/sbin/dovecot -F -c "$work/dovecot.conf" 2>"$work/dovecot.log" &
dovecot_pid=$!
# OpenSMTPD keeps one control socket per machine (/var/run/smtpd.sock) and one
# queue (/var/spool/smtpd): in a private mount namespace with its own empty /run
# and /var/spool (where it makes its queue: the package's service may never have
# run, so the machine need not have one), ours runs beside any other. Without
# unshare it runs plainly and waits for its turn.
run_smtpd() {
  if [ -x /usr/bin/unshare ]; then
    exec /usr/bin/unshare -m --propagation private /bin/sh -c \
      'mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/spool && mkdir -m 0711 /var/spool/smtpd && exec /usr/sbin/smtpd -d -f "$0"' "$1"
  fi
  exec /usr/sbin/smtpd -d -f "$1"
}
for attempt in $(seq 120); do
  (run_smtpd "$work/smtpd.conf") >"$work/smtpd.log" 2>&1 &
  smtpd_pid=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$smtp") 2>/dev/null && break 2
    kill -0 "$smtpd_pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$smtpd_pid"; wait "$smtpd_pid" 2>/dev/null; smtpd_pid=
  [ "$attempt" = 1 ] && echo "# another OpenSMTPD runs; waiting for it to stop"
  sleep 1
done
if ! wait_port "$imap" || [ -z "$smtpd_pid" ] || ! wait_port "$smtp"; then
  echo "not ok - the mail servers did not start"; cat "$work"/*.log; exit 1
fi

export MAIL_TEST_PASSWORD=s3cret-mail-pass
cat >"$work/switchboard.json" <<EOF
{"listen": "127.0.0.1:$http", "store": "sqlite:$work/db.sqlite",
 "plugins": {"dirs": ["$PLUGINS"], "allow": ["email", "custom", "form"]},
 "channels": [
   {"name": "support", "plugin": "email", "inbox": "Support",
    "credentials": {"imap_url": "imap://127.0.0.1:$imap/INBOX", "smtp_url": "smtp://127.0.0.1:$smtp",
                    "tls": "none", "username": "support", "password": {"env": "MAIL_TEST_PASSWORD"},
                    "from_address": "support@example.org", "company_name": "Acme", "poll_interval": "300ms"},
    "auto_replies": {"instant_reply": "Thanks, we received your mail."}},
   {"name": "web", "plugin": "custom", "inbox": "Support",
    "credentials": {"webhook_url": "http://127.0.0.1:9/unused", "signing_secret": "web-signing-secret"}},
   {"name": "contact", "plugin": "form", "inbox": "Support", "reply_channel": "support",
    "credentials": {"allowed_origins": ["https://shop.example.com"]},
    "auto_replies": {"instant_reply": "We have your request."}}
 ]}
EOF

start_daemon() {
  "$SB" run -c "$work/switchboard.json" --log-level debug >>"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "not ok - the daemon did not start"; cat "$work/daemon.log"; exit 1
}
send() { # send FILE-CONTENT
  printf '%b' "$1" >"$work/in.eml"
  swaks --server "127.0.0.1:$smtp" --from customer@example.com --to support@example.org --data "$work/in.eml" >/dev/null 2>&1
}
db() { sqlite3 "$work/db.sqlite" "$1" 2>/dev/null; }
wait_rows() { # wait_rows SQL WANT
  for _ in $(seq 150); do [ "$(db "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1
}

AGENT=$("$SB" tokens create -c "$work/switchboard.json" --name e2e --role agent 2>"$work/token.err")
"$SB" check -c "$work/switchboard.json" >/dev/null 2>&1 && ok "check accepts an email channel" ||
  not_ok "check accepts an email channel" "$("$SB" check -c "$work/switchboard.json" 2>&1)"
start_daemon

send 'From: Kim Customer <customer@example.com>\r\nTo: support@example.org\r\nSubject: Where is my order\r\nMessage-ID: <d-1@example.com>\r\n\r\nHi, order 4471\r\n'
wait_rows "SELECT count(*) FROM messages WHERE external_id='d-1@example.com'" 1
check "a customer's mail becomes an inbound message" 1 "$(db "SELECT count(*) FROM messages WHERE external_id='d-1@example.com' AND direction='in'")"
check "its thread carries the plugin's thread key" mail-1 "$(db "SELECT t.external_id FROM threads t JOIN messages m ON m.thread_id=t.id WHERE m.external_id='d-1@example.com'")"
check "the contact is named from the From header" "Kim Customer" "$(db "SELECT c.name FROM contacts c JOIN messages m ON m.contact_id=c.id WHERE m.external_id='d-1@example.com'")"
check "the contact has an email identity" 1 "$(db "SELECT count(*) FROM identities WHERE channel='support' AND value='customer@example.com'")"
# The instant reply leaves through the plugin's SMTP send and lands in the
# customer's mailbox as a threaded, loop-safe reply.
wait_rows "SELECT status FROM messages WHERE direction='out' AND automatic=1" sent
check "the instant reply is sent" sent "$(db "SELECT status FROM messages WHERE direction='out' AND automatic=1")"
for _ in $(seq 100); do ls "$work"/mail/customer/new/* >/dev/null 2>&1 && break; sleep 0.1; done
reply=$(cat "$work"/mail/customer/new/* 2>/dev/null)
check "it reaches the customer's mailbox, as text and HTML" 2 "$(grep -c 'Thanks, we received your mail.' <<<"$reply")"
check "it answers the customer's mail" 1 "$(grep -ci '^In-Reply-To: <d-1@example.com>' <<<"$reply")"
check "it is marked as an automatic reply" 1 "$(grep -ci '^Auto-Submitted: auto-replied' <<<"$reply")"
check "its subject is a tagged Re:" 1 "$(grep -ci '^Subject: Re: Where is my order \[#1\]' <<<"$reply")"
check "its Message-ID is the stored external id" 1 \
  "$(grep -ci "^Message-ID: <$(db "SELECT external_id FROM messages WHERE direction='out' AND automatic=1")>" <<<"$reply")"

send 'From: customer@example.com\r\nTo: support@example.org\r\nSubject: Re: Where is my order [#1]\r\nMessage-ID: <d-2@example.com>\r\n\r\nAny news?\r\n'
wait_rows "SELECT count(*) FROM messages WHERE external_id='d-2@example.com'" 1
check "a tagged reply joins the same thread" 1 "$(db "SELECT count(DISTINCT thread_id) FROM messages WHERE external_id IN ('d-1@example.com','d-2@example.com')")"
check "the IMAP cursor is kept in the store" 2 "$(db "SELECT value FROM kv WHERE channel='support' AND key='last_uid'")"

# A restart reads on from the stored cursor: nothing twice, new mail once.
stop_pid "$daemon_pid"; wait "$daemon_pid" 2>/dev/null; daemon_pid=
start_daemon
send 'From: customer@example.com\r\nTo: support@example.org\r\nSubject: another question\r\nMessage-ID: <d-3@example.com>\r\n\r\nAlso...\r\n'
wait_rows "SELECT count(*) FROM messages WHERE external_id='d-3@example.com'" 1
check "after a restart nothing is stored twice" 3 "$(db "SELECT count(*) FROM messages WHERE channel='support' AND direction='in'")"
check "a new subject from the same customer starts a new thread" mail-2 "$(db "SELECT t.external_id FROM threads t JOIN messages m ON m.thread_id=t.id WHERE m.external_id='d-3@example.com'")"

# An attachment's content is stored with the mail's message and an agent downloads it.
head -c 2000 /dev/urandom >"$work/invoice.pdf"
{
  printf 'From: customer@example.com\r\nTo: support@example.org\r\nSubject: the invoice\r\n'
  printf 'Message-ID: <d-4@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
  printf -- '--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHere it is.\r\n'
  printf -- '--b1\r\nContent-Type: application/pdf; name="invoice.pdf"\r\n'
  printf 'Content-Disposition: attachment; filename="invoice.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
  base64 -w 76 "$work/invoice.pdf" | sed 's/$/\r/'
  printf -- '--b1--\r\n'
} >"$work/att.eml"
swaks --server "127.0.0.1:$smtp" --from customer@example.com --to support@example.org --data "$work/att.eml" >/dev/null 2>&1
wait_rows "SELECT count(*) FROM messages WHERE external_id='d-4@example.com'" 1
url=$(curl -s -H "Authorization: Bearer $AGENT" \
  "http://127.0.0.1:$http/api/v1/conversations/$(db "SELECT thread_id FROM messages WHERE external_id='d-4@example.com'")" |
  python3 -c 'import json, sys
d = json.load(sys.stdin)
print(" ".join(a.get("url", "-") + "|" + str(a.get("filename")) for m in d["messages"] if m["external_id"] == "d-4@example.com" for a in m["attachments"]))')
check "the mail's attachment is listed with a download url" "invoice.pdf" "$(grep -oE '^/api/v1/attachments/[0-9]+\|invoice.pdf$' <<<"$url" | cut -d'|' -f2)"
curl -s -o "$work/invoice.got" -H "Authorization: Bearer $AGENT" "http://127.0.0.1:$http${url%%|*}"
check "its content downloads byte for byte" same "$(cmp -s "$work/invoice.got" "$work/invoice.pdf" && echo same)"

# A visitor of another channel who left an email address is answered by
# email: the reply through the email channel starts a conversation at that
# address, and the visitor's answer comes back to the same contact.
body='{"id":"web-1","sender":{"id":"visitor-7","name":"Vera Visitor"},"text":"Anyone there?"}'
body2='{"id":"web-2","sender":{"id":"visitor-7","email":"visitor@example.org"},"text":"Mail me: visitor@example.org"}'
web_post() { # web_post BODY: prints the HTTP status
  local ts sig
  ts=$(date +%s)
  sig=$(printf '%s.%s' "$ts" "$1" | openssl dgst -sha256 -hmac web-signing-secret | awk '{print $NF}')
  curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H "X-Switchboard-Timestamp: $ts" \
    -H "X-Switchboard-Signature: sha256=$sig" --data-binary "$1" "http://127.0.0.1:$http/hooks/web/messages"
}
check "a web visitor's first message is taken" 200 "$(web_post "$body")"
check "the address they leave later is taken" 200 "$(web_post "$body2")"
check "it completes their contact" visitor@example.org "$(db "SELECT c.email FROM contacts c JOIN messages m ON m.contact_id=c.id WHERE m.external_id='web-1'")"
wthread=$(db "SELECT thread_id FROM messages WHERE external_id='web-1'")
got=$(curl -s -o "$work/web_reply.json" -w '%{http_code}' -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
  -d '{"text":"Hello Vera, answering by email.","channel":"support"}' "http://127.0.0.1:$http/api/v1/conversations/$wthread/messages")
check "an agent's reply through the email channel is accepted" 202 "$got"
wait_rows "SELECT status FROM messages WHERE text='Hello Vera, answering by email.'" sent
for _ in $(seq 100); do ls "$work"/mail/visitor/new/* >/dev/null 2>&1 && break; sleep 0.1; done
check "it reaches the visitor's mailbox" 1 "$(grep -l 'Hello Vera, answering by email.' "$work"/mail/visitor/new/* 2>/dev/null | wc -l)"
check "the address became the contact's identity on the email channel" 1 \
  "$(db "SELECT count(*) FROM identities i JOIN messages m ON m.contact_id=i.contact_id WHERE m.external_id='web-1' AND i.channel='support' AND i.value='visitor@example.org'")"
sent_id=$(db "SELECT external_id FROM messages WHERE text='Hello Vera, answering by email.'")
swaks --server "127.0.0.1:$smtp" --from visitor@example.org --to support@example.org \
  --header "Subject: Re: thanks" --header "In-Reply-To: <$sent_id>" --header "Message-ID: <v-1@example.org>" \
  --body "Thanks, that helps." >/dev/null 2>&1
wait_rows "SELECT count(*) FROM messages WHERE external_id='v-1@example.org'" 1
check "the visitor's answer by email belongs to the same contact" 1 \
  "$(db "SELECT count(DISTINCT contact_id) FROM messages WHERE external_id IN ('web-1', 'v-1@example.org')")"
# The customer renames the conversation's subject (keeping the tag): the
# next reply answers that subject, as a mail program answering it would.
send 'From: customer@example.com\r\nTo: support@example.org\r\nSubject: Order 4471 still missing [#1]\r\nMessage-ID: <d-5@example.com>\r\n\r\nStill nothing.\r\n'
wait_rows "SELECT count(*) FROM messages WHERE external_id='d-5@example.com'" 1
check "a renamed subject with the tag stays in the conversation" 1 \
  "$(db "SELECT count(DISTINCT thread_id) FROM messages WHERE external_id IN ('d-1@example.com','d-5@example.com')")"
got=$(curl -s -o "$work/web_reply2.json" -w '%{http_code}' -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
  -d '{"text":"cannot go","channel":"support"}' \
  "http://127.0.0.1:$http/api/v1/conversations/$(db "SELECT thread_id FROM messages WHERE external_id='d-1@example.com'")/messages")
check "a reply through a channel the contact is already on still works" 202 "$got"
wait_rows "SELECT status FROM messages WHERE text='cannot go'" sent
for _ in $(seq 100); do grep -lq 'cannot go' "$work"/mail/customer/new/* 2>/dev/null && break; sleep 0.1; done
check "a reply's subject is the customer's latest subject, tagged once" 1 \
  "$(grep -l 'cannot go' "$work"/mail/customer/new/* 2>/dev/null | xargs -r grep -ci '^Subject: Re: Order 4471 still missing \[#1\]')"

# A web form only takes messages in: its conversations are answered by email
# through its reply_channel, automatically and by agents, at the address the
# form gave.
got=$(curl -s -o "$work/form.json" -w '%{http_code}' -H 'Origin: https://shop.example.com' -H 'Accept: application/json' \
  --data-urlencode 'email=Former@example.org' --data-urlencode 'name=Fo Rmer' --data-urlencode 'subject=Broken kettle' \
  --data-urlencode 'message=It leaks.' "http://127.0.0.1:$http/hooks/contact")
check "a form submission is taken" 201 "$got"
fthread=$(db "SELECT thread_id FROM messages WHERE channel='contact' AND text LIKE 'It leaks.%'")
wait_rows "SELECT status || ' ' || channel FROM messages WHERE thread_id=$fthread AND automatic=1" "sent support"
check "its instant reply goes by email through the reply_channel" "sent support" \
  "$(db "SELECT status || ' ' || channel FROM messages WHERE thread_id=$fthread AND automatic=1")"
for _ in $(seq 100); do grep -lq 'We have your request.' "$work"/mail/former/new/* 2>/dev/null && break; sleep 0.1; done
check "and reaches the address the form gave" 1 "$(grep -l 'We have your request.' "$work"/mail/former/new/* 2>/dev/null | wc -l)"
got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
  -d '{"text":"A new kettle is on its way."}' "http://127.0.0.1:$http/api/v1/conversations/$fthread/messages")
check "an agent's reply naming no channel is accepted" 202 "$got"
wait_rows "SELECT status || ' ' || channel FROM messages WHERE text='A new kettle is on its way.'" "sent support"
for _ in $(seq 100); do grep -lq 'A new kettle is on its way.' "$work"/mail/former/new/* 2>/dev/null && break; sleep 0.1; done
check "it goes by email too" 1 "$(grep -l 'A new kettle is on its way.' "$work"/mail/former/new/* 2>/dev/null | wc -l)"
got=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $AGENT" -H 'Content-Type: application/json' \
  -d '{"text":"x","channel":"contact"}' "http://127.0.0.1:$http/api/v1/conversations/$fthread/messages")
check "a reply through the form channel itself is refused" 422 "$got"

if grep -q "s3cret-mail-pass" "$work/daemon.log"; then not_ok "the password never reaches the log"; else ok "the password never reaches the log"; fi

echo "# $passed passed, $failed failed"
[ "$failed" -eq 0 ]
