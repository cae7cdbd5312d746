"""
A blocking WebSocket test client over a real socket: the opening handshake
and RFC 6455 framing written out here (masked client frames), so that tests
can send what a browser would and what no library would (text, garbage,
huge messages) and read exactly what the node answers.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

from support import WireClient

from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def client_frame(payload: bytes, opcode: int = OP_BINARY, fin: bool = True) -> bytes:
    """One masked client frame."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack(">BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack(">BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack(">BBQ", first, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


def upgrade_request(host: str, port: int, origin: str | None = None, path: str = "/") -> bytes:
    """A browser's opening handshake (with ``Origin`` when given)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The server's whole frames in ``buf`` as (opcode, payload), and what is left."""
    out = []
    while len(buf) >= 2:
        first, second = buf[0], buf[1]
        assert not second & 0x80, "the server masked a frame"
        n = second & 0x7F
        at = 2
        if n == 126:
            if len(buf) < 4:
                break
            n = struct.unpack_from(">H", buf, 2)[0]
            at = 4
        elif n == 127:
            if len(buf) < 10:
                break
            n = struct.unpack_from(">Q", buf, 2)[0]
            at = 10
        if len(buf) < at + n:
            break
        assert first & 0x80, "the server fragmented a message"
        assert not first & 0x70, "the server set reserved bits"
        out.append((first & 0x0F, buf[at:at + n]))
        buf = buf[at + n:]
    return out, buf


def close_of(payload: bytes) -> tuple[int, str]:
    """A close frame's code and reason (1005: none given)."""
    code = struct.unpack_from(">H", payload)[0] if len(payload) >= 2 else 1005
    return code, payload[2:].decode(errors="replace")


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class WsWireClient(WireClient):
    """``WireClient`` over WebSocket: one protocol frame per binary message."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
                 origin: str | None = None, path: str = "/", rcvbuf: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connecting, so that the window the server sees is small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.decoder_buffer = b""
        self.decoder = FrameDecoder.for_client()
        self.inbox: list[m.Message] = []
        self.closed = False
        #: The server's close frame: (code, reason), once received.
        self.close_frame: tuple[int, str] | None = None
        #: Payloads of the binary messages received, one frame each.
        self.messages: list[bytes] = []
        self.sock.sendall(upgrade_request(host, port, origin, path))
        head = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in head:
            if time.monotonic() > deadline:
                raise AssertionError("no handshake answer in time")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HandshakeRefused(head.decode(errors="replace") or "closed")
            head += chunk
        head, _, self.decoder_buffer = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        if " 101 " not in status + " ":
            raise HandshakeRefused(status)

    # -- sending -------------------------------------------------------------------

    def send(self, *msgs: m.Message) -> None:
        self.sock.sendall(b"".join(client_frame(msg.encode()) for msg in msgs))

    def send_message(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        self.sock.sendall(client_frame(payload, opcode))

    # -- receiving -----------------------------------------------------------------

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        self.decoder_buffer += data
        self._frames()

    def _frames(self) -> None:
        frames, self.decoder_buffer = parse_frames(self.decoder_buffer)
        for opcode, payload in frames:
            if opcode == OP_BINARY:
                self.messages.append(payload)
                self.inbox.extend(self.decoder.feed(payload))
            elif opcode == OP_CLOSE:
                self.close_frame = close_of(payload)
                try:
                    self.sock.sendall(client_frame(payload[:2], OP_CLOSE))
                except OSError:
                    pass
            elif opcode == OP_PING:
                self.sock.sendall(client_frame(payload, OP_PONG))
            else:
                raise AssertionError(f"unexpected opcode {opcode} from the server")
