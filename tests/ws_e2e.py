"""ws_e2e.py — plugin-held WebSockets (ABI 1.3) through the real daemon.

Run by tests/test_websocket.sh. Starts switchboard with the wsecho test
plugin (tests/plugins/wsecho.c) on two channels and drives it with
tests/ws_client.py: handshake and echo, fragments, pings, the size and UTF-8
limits, refusals, closes from either side, a peer that vanishes, many
connections, a full send queue, liveness pings, a reload that removes a
channel, and SIGTERM with sockets open. Prints "ok - ..." lines (TAP-like).
"""
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ws_client  # noqa: E402
from ws_client import BINARY, CLOSE, PING, TEXT, Closed, Refused, WebSocket  # noqa: E402

SB = os.environ["SB_BINARY"]
PLUGINS = os.environ["SB_TEST_PLUGIN_DIR"]
work = tempfile.mkdtemp(prefix="sbws.")
log_path = os.path.join(work, "daemon.log")
failed = 0
passed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + name)
    else:
        failed += 1
        print("not ok - " + name)
        if detail:
            print("# " + str(detail).replace("\n", "\n# "))
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


port = free_port()


def write_config(channels):
    cfg = {
        "listen": "127.0.0.1:%d" % port,
        "store": "sqlite:%s/db.sqlite" % work,
        "http": {"body_limit": 4096, "websocket_ping": "1s"},
        "plugins": {"dirs": [PLUGINS], "allow": ["wsecho"]},
        "channels": [{"name": n, "plugin": "wsecho", "credentials": {}} for n in channels],
    }
    with open(os.path.join(work, "sb.json"), "w") as f:
        json.dump(cfg, f)


def log():
    with open(log_path, errors="replace") as f:
        return f.read()


def wait_for(pred, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def closed_lines(conn=None, code=None):
    pat = r"ws_closed conn=%s code=%s" % (conn if conn is not None else r"\d+", code if code is not None else r"-?\d+")
    return re.findall(pat, log())


def healthy():
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def http_get(path, headers=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % path
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s.sendall((req + "\r\n").encode())
    data = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def metric(name, channel):
    _, body = http_get("/metrics")
    m = re.search(r'^%s\{channel="%s"\} (\d+)$' % (name, channel), body.decode(), re.M)
    return int(m.group(1)) if m else None


write_config(["chat", "side"])
daemon = subprocess.Popen([SB, "run", "-c", os.path.join(work, "sb.json")], stdout=open(log_path, "w"),
                          stderr=subprocess.STDOUT)
try:
    if not wait_for(healthy):
        print(log())
        sys.exit(1)

    # -- the handshake and echo -------------------------------------------
    ws = WebSocket(port, "/hooks/chat/socket")
    check("an accepted handshake is answered 101 and ws_open's own send arrives first", ws.recv() == (TEXT, "hello"))
    ws.send_text("héllo wörld")
    check("a text message is echoed as text", ws.recv() == (TEXT, "héllo wörld"))
    ws.send_binary(b"\x00\xff\x10")
    check("a binary message is echoed as binary", ws.recv() == (BINARY, b"\x00\xff\x10"))
    ws.send_frame(TEXT, "frag", fin=False)
    ws.send_frame(ws_client.PING, "mid")
    ws.send_frame(ws_client.CONT, "men", fin=False)
    ws.send_frame(ws_client.CONT, "ted", fin=True)
    check("fragments arrive joined as one message", ws.recv() == (TEXT, "fragmented"))
    check("a ping between fragments is answered with its payload", ws.pongs == [b"mid"], ws.pongs)
    ws.send_frame(ws_client.PING, "p1")
    ws.send_text("after ping")
    got = ws.recv()
    check("a ping is answered with a pong", ws.pongs[-1:] == [b"p1"] and got == (TEXT, "after ping"), (ws.pongs, got))
    ws.send_text("tick")
    check("a message sent from a plugin timer reaches the peer", ws.recv() == (TEXT, "tick"))
    check("the open WebSockets gauge counts the connection", metric("switchboard_websockets_open", "chat") == 1,
          metric("switchboard_websockets_open", "chat"))
    ws.send_text("count")
    check("the plugin sees one open connection", ws.recv() == (TEXT, "1"))
    ws.close(1000, "done")
    check("a peer's close is answered with the same code", ws.recv() == (CLOSE, (1000, "done")))
    check("the server ends the connection after the closing handshake", ws.wait_closed())
    check("ws_closed runs with the peer's code", wait_for(lambda: len(closed_lines(1, 1000)) == 1), log())

    # -- limits ------------------------------------------------------------
    ws = WebSocket(port, "/hooks/chat")
    ws.recv()
    ws.send_text("x" * 5000)
    msg = ws.recv()
    check("a message past the body limit is closed with 1009", msg[0] == CLOSE and msg[1][0] == 1009, msg)
    check("the oversized peer is disconnected", ws.wait_closed())
    check("ws_closed reports 1009 for the oversized message", wait_for(lambda: len(closed_lines(2, 1009)) == 1), log())

    ws = WebSocket(port, "/hooks/chat")
    ws.recv()
    ws.send_frame(TEXT, b"ok \xff\xfe")
    msg = ws.recv()
    check("text that is not UTF-8 is closed with 1007", msg[0] == CLOSE and msg[1][0] == 1007, msg)
    check("ws_closed reports 1007 for invalid UTF-8", wait_for(lambda: len(closed_lines(3, 1007)) == 1), log())

    ws = WebSocket(port, "/hooks/chat")
    ws.recv()
    ws.send_frame(TEXT, "frag", fin=False)
    ws.send_frame(ws_client.CONT, "y" * 4200, fin=True)
    msg = ws.recv()
    check("fragments that add up past the limit are closed with 1009", msg[0] == CLOSE and msg[1][0] == 1009, msg)
    ws.wait_closed()

    # -- refusals ----------------------------------------------------------
    def refused(path, origin="http://allowed.test"):
        try:
            WebSocket(port, path, origin=origin).abort()
            return None
        except Refused as e:
            return e.status

    check("a bad Origin is refused 403", refused("/hooks/chat", "http://evil.test") == 403)
    check("no Origin is refused 403", refused("/hooks/chat", None) == 403)
    check("SB_ENOENT refuses 404", refused("/hooks/chat/missing") == 404)
    check("SB_EAGAIN refuses 429", refused("/hooks/chat?refuse=busy") == 429)
    check("SB_EFBIG refuses 413", refused("/hooks/chat?refuse=big") == 413)
    check("another refusal is 400", refused("/hooks/chat?refuse=bad") == 400)
    check("an unknown channel is 404", refused("/hooks/nosuch") == 404)
    check("a plain request still goes to receive()", http_get("/hooks/chat/plain") == (200, b"plain"))
    status, _ = http_get("/hooks/chat", {"Upgrade": "websocket", "Connection": "Upgrade",
                                         "Sec-WebSocket-Key": "short", "Origin": "http://allowed.test"})
    check("a malformed Sec-WebSocket-Key is 400", status == 400, status)
    for version in ("8", None):
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                   "Origin": "http://allowed.test"}
        if version is not None:
            headers["Sec-WebSocket-Version"] = version
        status, _ = http_get("/hooks/chat", headers)
        check("Sec-WebSocket-Version %s is 426 (RFC 6455 has 13 only)" % version, status == 426, status)
    check("refusals were not counted as open", metric("switchboard_websockets_open", "chat") == 0)

    # -- closes ------------------------------------------------------------
    ws = WebSocket(port, "/hooks/chat")
    ws.recv()
    ws.send_text("close")
    msg = ws.recv()
    check("a plugin's ws_close sends its code and reason (once)", msg == (CLOSE, (4000, "bye")), msg)
    ws.close(4000, "bye")
    check("the plugin-closed connection ends", ws.wait_closed())
    check("ws_closed follows the plugin's close, and late sends are refused",
          wait_for(lambda: re.search(r"ws_closed conn=5 code=4000 from=127.0.0.1 late_send=-2", log())), log())

    ws = WebSocket(port, "/hooks/chat")
    ws.recv()
    ws.abort()
    check("a peer that vanishes gets ws_closed(1006)", wait_for(lambda: len(closed_lines(6, 1006)) == 1), log())
    time.sleep(0.3)
    check("... exactly once", len(closed_lines(6)) == 1, closed_lines(6))

    # -- many connections and a full queue --------------------------------
    many = []
    for _ in range(60):
        w = WebSocket(port, "/hooks/chat")
        many.append(w)
    check("60 connections are each greeted", all(w.recv() == (TEXT, "hello") for w in many))
    many[-1].send_text("count")
    check("the plugin holds 60 connections", many[-1].recv() == (TEXT, "60"))
    for i, w in enumerate(many):
        w.send_text("n%d" % i)
    check("each of them is echoed its own message", all(w.recv() == (TEXT, "n%d" % i) for i, w in enumerate(many)))
    for w in many:
        w.close()
    check("all of them close cleanly", all(w.recv()[0] == CLOSE and w.wait_closed() for w in many))
    check("every one ran ws_closed(1000)", wait_for(lambda: len(closed_lines(None, 1000)) == 61), len(closed_lines()))

    ws = WebSocket(port, "/hooks/chat")
    ws.recv()
    ws.send_text("flood")
    chunks = [ws.recv() for _ in range(16)]
    check("a send queue past 1 MiB refuses with SB_EAGAIN",
          wait_for(lambda: "flooded 16, then -11" in log()) and all(c == (BINARY, bytes(65536)) for c in chunks))
    ws.send_text("after flood")
    check("the connection works once the queue drained", ws.recv() == (TEXT, "after flood"))

    # -- liveness ----------------------------------------------------------
    quiet = WebSocket(port, "/hooks/chat")
    quiet.recv()
    quiet.auto_pong = False
    ws.auto_pong = True
    start = time.time()
    frames = []
    # the other peer answers its pings meanwhile, as a browser would
    while time.time() - start < 8:
        ready, _, _ = select.select([quiet.sock, ws.sock], [], [], 0.2)
        if ws.sock in ready:
            opcode, payload = ws.recv_frame()[1:]
            if opcode == PING:
                ws.pings.append(payload)
                ws.send_frame(ws_client.PONG, payload)
        if quiet.sock in ready:
            try:
                frames.append(quiet.recv_frame()[1])
            except (Closed, ConnectionResetError):
                break
    took = time.time() - start
    check("a quiet peer is pinged, and cut off when it never answers", PING in frames and 2 <= took <= 5,
          (frames, took))
    check("the cut-off peer gets ws_closed(1006)", wait_for(lambda: len(closed_lines(68, 1006)) == 1),
          log()[-2000:])
    ws.send_text("still here")
    check("a peer that answers pings stays connected", ws.recv() == (TEXT, "still here"))
    check("... having been pinged", len(ws.pings) >= 1, ws.pings)
    ws.close()
    ws.recv()
    ws.wait_closed()

    # -- frames wslay alone would drop the connection for, without a close ---
    def broken(name, send):
        w = WebSocket(port, "/hooks/chat")
        w.recv()
        send(w)
        try:
            msg = w.recv()
        except (Closed, ConnectionResetError) as e:
            msg = ("no close frame", str(e))
        check(name + " is closed with 1002", msg[0] == CLOSE and msg[1][0] == 1002, msg)
        check("... and the connection ends", w.wait_closed())

    def masked(opcode_byte, payload, length_bytes):
        key = os.urandom(4)
        return bytes([opcode_byte]) + length_bytes + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    before = len(closed_lines(None, 1002))
    broken("a ping over 125 bytes", lambda w: w.send_frame(PING, b"p" * 126))
    broken("a fragmented ping", lambda w: w.send_frame(PING, b"p", fin=False))
    broken("a close frame of one byte", lambda w: w.send_frame(CLOSE, b"\x03"))
    broken("a length not in its shortest form",
           lambda w: w.sock.sendall(masked(0x81, b"short", bytes([0x80 | 126, 0, 5]))))
    broken("a 64-bit length under 65536", lambda w: w.sock.sendall(masked(0x82, b"x", bytes([0x80 | 127]) + struct.pack("!Q", 1))))

    def split_header(w):
        w.send_text("first")  # a whole message before the broken frame, in an earlier read
        check("a message before a broken frame is still taken", w.recv() == (TEXT, "first"))
        w.sock.sendall(bytes([0x89]))
        time.sleep(0.2)
        w.sock.sendall(bytes([0x80 | 126]) + struct.pack("!H", 200))

    broken("a control frame whose header comes in two reads", split_header)
    check("ws_closed reports 1002 for each", wait_for(lambda: len(closed_lines(None, 1002)) == before + 6),
          closed_lines(None, 1002))

    # -- a reload that removes the channel ------------------------------------
    a = WebSocket(port, "/hooks/chat")
    b = WebSocket(port, "/hooks/chat")
    a.recv(), b.recv()
    side = [WebSocket(port, "/hooks/side") for _ in range(3)]
    for w in side:
        w.recv()
    write_config(["side"])
    before = len(log())
    daemon.send_signal(signal.SIGHUP)
    ma, mb = a.recv(), b.recv()
    check("a reload that removes the channel closes its sockets with 1001",
          ma[0] == CLOSE and ma[1][0] == 1001 and mb[0] == CLOSE and mb[1][0] == 1001, (ma, mb))
    a.close(1001)
    b.close(1001)
    a.wait_closed(), b.wait_closed()
    check("then destroy() runs, after every ws_closed",
          wait_for(lambda: "wsecho destroyed with 0 open" in log()[before:]), log()[before:])
    tail = log()[before:]
    check("... in that order", tail.count("code=1001") == 2 and tail.rfind("code=1001") < tail.find("destroyed"), tail)
    refused_after = refused("/hooks/chat")
    check("the removed channel's path is 404", refused_after == 404, refused_after)
    side[0].send_text("kept")
    check("the other channel's sockets are untouched", side[0].recv() == (TEXT, "kept"))

    # -- SIGTERM with sockets open ------------------------------------------
    side[2].abort()
    before = len(log())
    daemon.send_signal(signal.SIGTERM)
    m0, m1 = side[0].recv(), side[1].recv()
    check("SIGTERM closes open sockets with 1001", m0[0] == CLOSE and m0[1][0] == 1001 and m1[1][0] == 1001, (m0, m1))
    side[0].close(1001)
    side[1].close(1001)
    rc = daemon.wait(timeout=30)
    tail = log()[before:]
    check("the daemon exits 0", rc == 0, rc)
    check("every socket ran ws_closed before destroy",
          "wsecho destroyed with 0 open" in tail and tail.rfind("ws_closed") < tail.find("destroyed"), tail)
    check("no sanitizer report", "Sanitizer" not in log() and "runtime error" not in log(), log()[-3000:])
finally:
    if daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    if failed:
        print("# daemon log:\n# " + log()[-6000:].replace("\n", "\n# "))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
