"""A small WebSocket client on Python's standard library, for the server
tests: real RFC 6455 framing (masked client frames), plus raw access so the
tests can also send what a well-behaved client never would."""
import base64
import json
import os
import socket
import struct


class WSError(Exception):
    pass


class WS:
    def __init__(self, port, host="127.0.0.1", path="/", headers=None, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WSError("handshake refused: connection closed")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        self.status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in self.status + " ":
            raise WSError("handshake refused: " + self.status)

    def send_frame(self, opcode, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            m = os.urandom(4)
            payload = bytes(b ^ m[i % 4] for i, b in enumerate(payload)) if n < 4096 else _xor(payload, m)
            hdr += m
        self.sock.sendall(hdr + payload)

    def send(self, text):
        self.send_frame(1, text.encode())

    def cmd(self, name, obj):
        self.send(name + " " + json.dumps(obj))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WSError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        if b1 & 0x80:
            raise WSError("server frames must not be masked")
        return b0 & 0x0F, bool(b0 & 0x80), self._read(n)

    def recv(self):
        """The next message as (command, list of payloads)."""
        data = b""
        while True:
            op, fin, payload = self.recv_frame()
            if op == 8:
                raise WSError("closed by the server")
            if op == 9:
                self.send_frame(10, payload)
                continue
            data += payload
            if fin:
                break
        text = data.decode()
        cmd, _, body = text.partition(" ")
        return cmd, json.loads(body)

    def close(self):
        try:
            self.send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


def _xor(payload, m):
    n = len(payload)
    key = (m * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
