"""ws_client.py — a small RFC 6455 WebSocket client for the tests (standard library only).

It speaks the protocol frame by frame so a test can also break it on purpose:
fragment a message, interleave a ping, send invalid UTF-8 or an oversized
message, vanish without a close frame.
"""
import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Refused(Exception):
    """The server answered the handshake with something other than 101."""

    def __init__(self, status, body):
        super().__init__("handshake answered %d: %r" % (status, body))
        self.status = status
        self.body = body


class Closed(Exception):
    """The connection ended without a close frame."""


def _read_http_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise Closed("connection closed during the handshake")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


class WebSocket:
    def __init__(self, port, path, origin="http://allowed.test", host="127.0.0.1", timeout=10, headers=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.auto_pong = True
        self.pongs = []
        self.pings = []
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET %s HTTP/1.1" % path,
            "Host: %s:%d" % (host, port),
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: " + key,
            "Sec-WebSocket-Version: 13",
        ]
        if origin is not None:
            lines.append("Origin: " + origin)
        for name, value in (headers or {}).items():
            lines.append("%s: %s" % (name, value))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, hdrs, rest = _read_http_head(self.sock)
        if status != 101:
            body = rest
            length = int(hdrs.get("content-length", "0"))
            while len(body) < length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                body += chunk
            self.sock.close()
            raise Refused(status, body)
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept: %r" % hdrs.get("sec-websocket-accept"))
        self.buf = rest

    # -- frames -------------------------------------------------------------

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._need(2)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b1 & 0x80:
            raise AssertionError("the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._need(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._need(8))
        return fin, opcode, self._need(n)

    def recv(self):
        """The next message as (opcode, payload): TEXT, BINARY or CLOSE
        (payload: (code, reason)). Pings are answered (unless auto_pong is off)
        and pongs kept in self.pongs."""
        parts, kind = [], None
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == PING:
                self.pings.append(payload)
                if self.auto_pong:
                    self.send_frame(PONG, payload)
                continue
            if opcode == PONG:
                self.pongs.append(payload)
                continue
            if opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return CLOSE, (code, payload[2:].decode())
            if opcode != CONT:
                kind = opcode
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return kind, data.decode() if kind == TEXT else data

    def send_text(self, text):
        self.send_frame(TEXT, text)

    def send_binary(self, data):
        self.send_frame(BINARY, data)

    def close(self, code=1000, reason=""):
        self.send_frame(CLOSE, struct.pack("!H", code) + reason.encode())

    def wait_closed(self):
        """Reads until the server ends the connection; True when it did."""
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, socket.timeout):
            return False

    def abort(self):
        """Vanishes without a close frame (the connection is reset)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
