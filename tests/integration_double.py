#!/usr/bin/env python3
"""integration_double.py — an external service that speaks the custom
channel's wire contract, for the end-to-end tests.

It listens on 127.0.0.1 (port 0; the chosen port is written to --port-file),
receives Switchboard's signed outbound POSTs, checks each signature and
answers as scripted, records every request as one JSON line in --log, and
offers `sign` and `post` helpers for sending signed requests to the daemon.

  integration_double.py serve --secret S --port-file F --log L

How it answers depends on the request path's last segment: ".../ok" → 200
{"id": "ext-N"}; ".../429" → 429 with Retry-After: 1 on the first request to
that path, then 200; ".../500" → 500 first, then 200; ".../400" → 400
{"error": "unknown recipient"} always; ".../leaky" → 400 with an error that
quotes the signing secret (as a careless service might).
  integration_double.py post  --secret S URL BODY      # prints "STATUS BODY"
"""
import argparse
import hashlib
import hmac
import http.server
import json
import sys
import time
import urllib.error
import urllib.request


def sign(secret, ts, body):
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + mac


def serve(args):
    counter = {"n": 0}
    per_path = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ts = self.headers.get("X-Switchboard-Timestamp", "")
            got = self.headers.get("X-Switchboard-Signature", "")
            valid = hmac.compare_digest(got, sign(args.secret, ts, body)) and abs(time.time() - int(ts or 0)) < 300
            counter["n"] += 1
            per_path[self.path] = per_path.get(self.path, 0) + 1
            mode = self.path.rsplit("/", 1)[-1]
            first = per_path[self.path] == 1
            record = {"path": self.path, "valid_signature": valid,
                      "idempotency_key": self.headers.get("Idempotency-Key"),
                      "body": json.loads(body or b"null")}
            with open(args.log, "a") as f:
                f.write(json.dumps(record) + "\n")
            if not valid:
                self.reply(401, {"error": "bad signature"})
            elif mode == "429" and first:
                self.reply(429, {"error": "slow down"}, {"Retry-After": "1"})
            elif mode == "500" and first:
                self.reply(500, {"error": "oops"})
            elif mode == "400":
                self.reply(400, {"error": "unknown recipient"})
            elif mode == "leaky":
                self.reply(400, {"error": "refused: your key %s is wrong" % args.secret})
            else:
                self.reply(200, {"id": "ext-%d" % counter["n"]})

        def reply(self, status, obj, headers=None):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file, "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()


def post(args):
    body = args.body.encode()
    ts = str(int(time.time()) + args.skew)
    req = urllib.request.Request(args.url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Switchboard-Timestamp": ts,
        "X-Switchboard-Signature": sign(args.secret, ts, body) if not args.bad else "sha256=" + "0" * 64,
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            print(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode())


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--secret", required=True)
    s.add_argument("--port-file", required=True)
    s.add_argument("--log", required=True)
    q = sub.add_parser("post")
    q.add_argument("--secret", required=True)
    q.add_argument("--skew", type=int, default=0)
    q.add_argument("--bad", action="store_true")
    q.add_argument("url")
    q.add_argument("body")
    args = p.parse_args()
    serve(args) if args.cmd == "serve" else post(args)


if __name__ == "__main__":
    sys.exit(main())
