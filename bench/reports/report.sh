#!/usr/bin/env bash
# bench/reports/report.sh — how long GET /api/v1/reports takes on a filled
# database. A store made by BIN (migrated to its schema) is filled directly
# with MESSAGES messages in conversations of five (inbound, automatic reply,
# an agent's reply, inbound, an agent's reply; every third conversation
# closed) spread over the last DAYS days, on two channels and twenty agents,
# message ids in time order as the daemon gives them;
# then the daemon starts on it and the report is asked for: the first
# (cold) one, and the median of five of each of the default range, a
# group_by=agent and a channel filter. Stops only the daemon it starts.
#
# usage: bench/reports/report.sh [BIN]   env: MESSAGES=100000 DAYS=7
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MESSAGES=${MESSAGES:-100000} DAYS=${DAYS:-7}
bin=$(realpath "${1:-$ROOT/build/switchboard}")
W=$(mktemp -d /tmp/sbreport.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/sb.json" <<EOF
{"listen": "127.0.0.1:$port", "store": "sqlite:$W/bench.db", "log_level": "warn",
 "plugins": {"dirs": []}, "channels": []}
EOF
token=$("$bin" tokens create -c "$W/sb.json" --name bench --role agent 2>/dev/null) # creates and migrates the store

python3 - "$W/bench.db" "$MESSAGES" "$DAYS" <<'PY'
import random, sqlite3, sys, time
db, total, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
random.seed(7)
now = int(time.time() * 1000)
span = days * 86400000
c.executemany("INSERT INTO users(name) VALUES(?)", [("agent%d" % i,) for i in range(20)])
users = [r[0] for r in c.execute("SELECT id FROM users")]
mid = c.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()[0]
threads, messages = [], []
for t in range(total // 5):
    tid = t + 1
    channel = ("mail", "chat")[t % 2]
    created = now - span + random.randrange(span - 3600000)
    agent = random.choice(users)
    prev = None
    kinds = [("in", 0, None, 0), ("out", 1, None, 2), ("out", 0, agent, random.randrange(60, 7200)),
             ("in", 0, None, 7300), ("out", 0, agent, 7400)]
    last_in = None
    for direction, auto, user, after_s in kinds:
        at = created + after_s * 1000
        status = "received" if direction == "in" else ("failed" if random.random() < 0.02 else "sent")
        messages.append((mid, tid, channel, direction, user, "text %d" % mid, status, auto, at, prev, tid))
        if direction == "in":
            last_in = mid
        prev = mid
        mid += 1
    closed = t % 3 == 0
    threads.append((tid, channel, ("Support", "Sales")[t % 2], tid, "closed" if closed else "open", agent, created,
                    created + 7500000 if closed else None, prev, last_in))
# The daemon gives message ids in the order it stores messages, so ids grow
# with time (the report finds a range's messages by id): renumber by time.
order = sorted(messages, key=lambda m: (m[8], m[0]))
first = messages[0][0]
new_id = {m[0]: first + i for i, m in enumerate(order)}
remap = lambda i: new_id[i] if i is not None else None
messages = [(remap(m[0]),) + m[1:9] + (remap(m[9]), m[10]) for m in messages]
threads = [t[:8] + (remap(t[8]), remap(t[9])) for t in threads]
c.executemany("INSERT INTO contacts(id, name) VALUES(?, ?)", [(t[0], "contact %d" % t[0]) for t in threads])
c.executemany("INSERT INTO threads(id, channel, inbox, contact_id, status, assignee_id, created_at, closed_at,"
              " last_message_id, last_in_id) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", threads)
c.executemany("INSERT INTO messages(id, thread_id, channel, direction, user_id, text, status, automatic, created_at,"
              " prev_id, contact_id) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", messages)
c.commit()
c.close()
print("# filled: %d conversations, %d messages over %d days" % (len(threads), len(messages), days))
PY

"$bin" run -c "$W/sb.json" >"$W/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
report() { # report QUERY: prints the seconds one report took
  curl -s -o "$W/body" -w '%{time_total}\n' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/reports?$1"
}
ms() { python3 -c "print('%.0f ms' % ($1 * 1000))"; }
median5() { for _ in 1 2 3 4 5; do report "$1"; done | sort -n | sed -n 3p; }
echo "# $(date -Is) $bin, database $(du -k "$W/bench.db" | cut -f1) kB"
echo "the first report (last $DAYS days by default): $(ms "$(report "")")"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('#', json.dumps({k: d[k] for k in ('conversations', 'messages', 'first_response', 'resolution')}))" "$W/body"
echo "default range, five (median): $(ms "$(median5 "")")"
echo "group_by=agent, five (median): $(ms "$(median5 "group_by=agent")")"
echo "channel=chat, five (median): $(ms "$(median5 "channel=chat")")"
echo "the last day only, five (median): $(ms "$(median5 "from=$(( $(date +%s) * 1000 - 86400000 ))")")"
