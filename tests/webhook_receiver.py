#!/usr/bin/env python3
"""webhook_receiver.py — a receiver of the daemon's outgoing webhooks for tests.

  webhook_receiver.py PORT_FILE LOG_FILE STATUS_FILE

Listens on a free loopback port (written to PORT_FILE). Every request is
appended to LOG_FILE as one JSON line {path, headers, body}. The answer's
status is read from STATUS_FILE at each request ("200" when it is missing);
a second word is sent as Retry-After ("503 1").
"""
import http.server
import json
import os
import sys

port_file, log_file, status_file = sys.argv[1:4]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(log_file, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                                "body": body.decode("utf-8", "replace")}) + "\n")
        try:
            words = open(status_file).read().split()
        except OSError:
            words = ["200"]
        self.send_response(int(words[0]))
        if len(words) > 1:
            self.send_header("Retry-After", words[1])
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
