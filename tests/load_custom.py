#!/usr/bin/env python3
"""load_custom.py — sends signed custom-channel messages with unique ids from
several threads and records every acknowledgement.

  load_custom.py --url URL --secret S --prefix P --count N --threads T --acks FILE

Each 200 answer is appended to FILE as "external_id message_id" and flushed
at once, so the file lists exactly what the daemon acknowledged even if the
daemon is killed mid-run. Connection errors (the daemon gone) end a thread
quietly. Bounded: at most N requests, each with a 10 s timeout.
"""
import argparse
import hashlib
import hmac
import http.client
import json
import threading
import time
import urllib.parse


def worker(args, start, step, lock, out):
    u = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    for i in range(start, args.count, step):
        ext = "%s-%d" % (args.prefix, i)
        body = json.dumps({"id": ext, "sender": {"id": "load-%d" % (i % 50)}, "text": "message %d" % i}).encode()
        ts = str(int(time.time()))
        sig = "sha256=" + hmac.new(args.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        try:
            conn.request("POST", u.path, body=body, headers={
                "Content-Type": "application/json", "X-Switchboard-Timestamp": ts,
                "X-Switchboard-Signature": sig})
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            return
        if r.status == 200:
            mid = json.loads(data)["message_id"]
            with lock:
                out.write("%s %s\n" % (ext, mid))
                out.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--acks", required=True)
    a = p.parse_args()
    lock = threading.Lock()
    with open(a.acks, "a") as out:
        ts = [threading.Thread(target=worker, args=(a, k, a.threads, lock, out)) for k in range(a.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


if __name__ == "__main__":
    main()
