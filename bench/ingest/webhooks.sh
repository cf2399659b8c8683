#!/usr/bin/env bash
# bench/ingest/webhooks.sh — what an outgoing webhook that wants every event
# costs the webhooks coming in, and whether it keeps up. Rounds alternate a
# daemon without webhooks and one with a webhook of "*" posting to a local
# receiver (a Python server that only counts the events it is posted); each
# round puts the Messenger channel under `wrk -t2 -c64` (the harness's
# messenger.lua) for DURATION seconds after a 2-second warm-up, then says
# how long after the load the webhook had posted every event stored.
#
# PERF=1: perf records the loop and the reader during the rounds with the
# webhook and prints where each spent its time, by function.
#
# usage: bench/ingest/webhooks.sh   env: DURATION=8 ROUNDS=2 USERS=100 PERF=0
# Needs build-bench-fb/ (bench/ingest/messenger.sh builds it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHANNEL=messenger DURATION=${DURATION:-8} ROUNDS=${ROUNDS:-2} PERF=${PERF:-0}
export USERS=${USERS:-100}
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench-peers}
. "$ROOT/bench/ingest/channel.sh"
bin=$B/switchboard
R=
on_cleanup() { if [ -n "$R" ]; then kill "$R" 2>/dev/null || true; wait "$R" 2>/dev/null || true; fi; }

# start_receiver: a fresh receiver as R, its port in $W/rcv.port, its
# count of events posted and the highest id in $W/rcv.count.
start_receiver() {
  rm -f "$W/rcv.port" "$W/rcv.count"
python3 - "$W/rcv.port" "$W/rcv.count" <<'PY' &
import http.server, json, os, sys, threading
port_file, count_file = sys.argv[1:3]
lock, state = threading.Lock(), {"events": 0, "max": 0}
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
        with lock:
            state["events"] += len(events)
            state["max"] = max([state["max"]] + [e["id"] for e in events])
            with open(count_file + ".tmp", "w") as f:
                f.write("%d %d\n" % (state["events"], state["max"]))
            os.rename(count_file + ".tmp", count_file)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
  R=$!
  for _ in $(seq 50); do [ -s "$W/rcv.port" ] && break; sleep 0.1; done
}
export SB_EXTRA="\"secret_key\": \"$(python3 -c 'print("4b" * 32)')\","

# CPU ticks of each of the daemon's threads, a "name ticks" line each.
threads() { for t in /proc/"$D"/task/*; do echo "$(cat "$t/comm") $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "$t/stat")"; done; }
newest() { sqlite3 "$W/bench.db" "SELECT max((SELECT coalesce(max(id), 0) FROM messages), (SELECT coalesce(max(id), 0) FROM events))"; }
echo "# $(date -Is) messenger channel, wrk -t2 -c64 -d${DURATION}s; a webhook of \"*\" posting to a local receiver, or none"
for round in $(seq "$ROUNDS"); do
  for mode in none webhook; do
    rm -f "$W"/bench.db*
    start_daemon "$bin"
    if [ "$mode" = webhook ]; then
      start_receiver
      token=$("$bin" tokens create -c "$W/sb.json" --name "bench$round" --role admin 2>/dev/null)
      curl -sf -o /dev/null -H "Authorization: Bearer $token" \
        -d "{\"url\": \"http://127.0.0.1:$(cat "$W/rcv.port")/in\", \"events\": [\"*\"], \"cursor\": 0}" \
        "http://127.0.0.1:$port/api/v1/webhooks"
    fi
    RUN_ID=w$round$RANDOM wrk -t2 -c64 -d2s -s "$script" "$url" >/dev/null
    threads >"$W/before"
    if [ "$PERF" = 1 ] && [ "$mode" = webhook ]; then
      reader=$(for t in /proc/"$D"/task/*; do [ "$(cat "$t/comm")" != sb-reader ] || basename "$t"; done | paste -sd,)
      perf record -q --call-graph dwarf,16384 -e cpu-clock -F 300 -t "$D,$reader" -o "$W/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
      S=$!
    fi
    out=$(RUN_ID=r$round$RANDOM$RANDOM wrk -t2 -c64 -d"${DURATION}s" --latency -s "$script" "$url")
    threads >"$W/after"
    if [ -n "$S" ]; then
      wait "$S" || true; S=
      perf report -i "$W/perf.data" --children --sort comm,sym --stdio -g none --percent-limit 3 2>/dev/null |
        grep -v "^#" | grep -v "^$" | grep -v "\[k\]" | head -45 >"$W/perf.txt"
    fi
    line=$(python3 - "$(sed -n 's/^WRKJSON //p' <<<"$out")" "$W/before" "$W/after" <<'PY'
import collections, json, os, sys
j = json.loads(sys.argv[1])
def load(p):
    c = collections.Counter()
    for l in open(p):
        name, t = l.rsplit(None, 1)
        c[name] += int(t)
    return c
b, a = load(sys.argv[2]), load(sys.argv[3])
per = {k: (a[k] - b[k]) / os.sysconf("SC_CLK_TCK") * 1e6 / j["requests"] for k in a}
parts = " ".join("%s %.1f" % (k.replace("switchboard", "loop"), v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.5)
print("%6d req/s  p99 %6.2f ms  daemon %.1f µs of CPU/req (%s)" % (j["rps"], j["lat_p99_ms"], sum(per.values()), parts))
PY
)
    if [ "$mode" = webhook ]; then
      last=$(newest)
      start=$(date +%s.%N)
      delivered=; for _ in $(seq 600); do
        read -r n max <"$W/rcv.count" 2>/dev/null || { n=0; max=0; }
        [ "$max" -ge "$last" ] && { delivered=$n; break; }
        sleep 0.1
      done
      lag=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $start))")
      echo "round $round, a webhook of \"*\": $line  |  every event posted ${lag} s after the load (${delivered:-not all} events, up to id $last)"
      if [ -s "$W/perf.txt" ]; then echo "  where the loop and the reader spent it (share of their samples):"; sed 's/^/  /' "$W/perf.txt"; rm -f "$W/perf.txt"; fi
    else
      echo "round $round, no webhook:     $line"
    fi
    kill "$D"; wait "$D" || true; D=
    on_cleanup; R=
  done
done
