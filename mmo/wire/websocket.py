"""
The WebSocket binding of the client protocol, sans-IO.

Over WebSocket, each binary message carries exactly one frame of the
protocol, its ``u32 length`` included, in both directions.  Text messages
are not part of the protocol.

- :func:`split_frames` cuts bytes made of whole frames into one message
  each (what a client sends; the load generator's bots).
- :func:`server_messages` does the same for the server's side and writes
  each message's WebSocket header too (RFC 6455 section 5.2: a final,
  unmasked, uncompressed binary frame), so that the tick's one write per
  player stays one write: no extension is ever negotiated, so these bytes
  are the whole WebSocket framing.
- :func:`read_messages` reads the simplest and commonest WebSocket frames,
  whole binary messages in one frame each, many at a time; a full
  WebSocket parser (Autobahn's) takes whatever else comes (control frames,
  fragments, the partial frame at the end of a read).
- :class:`MessageReader` checks what a client sends, message by message:
  binary, within the largest frame, exactly one frame.  It raises
  :class:`~mmo.wire.messages.ProtocolError` with the codes a TCP client
  gets for the same mistakes, and never holds more than one message of at
  most ``max_frame + 4`` bytes.
"""

from __future__ import annotations

from struct import Struct

from .layout import LENGTH, LENGTH_SIZE, U16
from .messages import ErrorCode, ProtocolError

_LENGTH = LENGTH.unpack_from
_U16 = U16.unpack_from
#: FIN and the binary opcode, the first byte of every message the server sends.
_FIN_BINARY = 0x82
#: Headers of server messages: 7-bit, 16-bit and 64-bit payload lengths.
_SMALL = [bytes((_FIN_BINARY, n)) for n in range(126)]
_MEDIUM = Struct(">BBH")
_LARGE = Struct(">BBQ")


def message_header(size: int) -> bytes:
    """The WebSocket header of one server message of ``size`` payload bytes."""
    if size < 126:
        return _SMALL[size]
    if size < 65536:
        return _MEDIUM.pack(_FIN_BINARY, 126, size)
    return _LARGE.pack(_FIN_BINARY, 127, size)


def split_frames(data: bytes) -> list[bytes]:
    """The frames of ``data``, which holds whole frames only."""
    out = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < LENGTH_SIZE:
            raise ValueError(f"a partial frame at byte {pos} of {end}")
        stop = pos + LENGTH_SIZE + _LENGTH(data, pos)[0]
        if stop > end:
            raise ValueError(f"a partial frame at byte {pos} of {end}")
        out.append(data[pos:stop])
        pos = stop
    return out


def server_messages(data: bytes) -> bytes:
    """
    ``data`` (whole frames) as the bytes of WebSocket messages, one frame
    each, ready for the socket.
    """
    end = len(data)
    if end < LENGTH_SIZE:
        if end:
            raise ValueError(f"a partial frame at byte 0 of {end}")
        return b""
    size = LENGTH_SIZE + _LENGTH(data, 0)[0]
    if size == end:
        # One frame (a reply, a chat line): no copy of the frame to cut out.
        return message_header(size) + data
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    pos = 0
    while True:
        stop = pos + size
        if stop > end:
            raise ValueError(f"a partial frame at byte {pos} of {end}")
        parts.append(message_header(size))
        parts.append(view[pos:stop])
        pos = stop
        if end - pos < LENGTH_SIZE:
            if pos != end:
                raise ValueError(f"a partial frame at byte {pos} of {end}")
            return b"".join(parts)
        size = LENGTH_SIZE + _LENGTH(data, pos)[0]


def read_messages(data: bytes, masked: bool, limit: int) -> tuple[list[bytes], int]:
    """
    The payloads of the whole binary messages at the start of ``data`` --
    each one final frame, no reserved bit, masked if ``masked`` (what a
    client sends) or not (what a server sends), of at most ``limit`` and
    fewer than 65,536 bytes -- unmasked, and how many bytes of ``data``
    they took.  It stops at the first frame that is anything else or is
    not all there, and leaves it to a full parser.
    """
    out = []
    pos = 0
    end = len(data)
    mask_bit = 0x80 if masked else 0
    while end - pos >= 2:
        if data[pos] != _FIN_BINARY:
            break
        second = data[pos + 1]
        if second & 0x80 != mask_bit:
            break
        size = second & 0x7F
        at = pos + 2
        if size == 126:
            if end - at < 2:
                break
            size = _U16(data, at)[0]
            at += 2
            if size < 126:
                break  # not the shortest length: the full parser refuses it
        elif size == 127:
            break
        if size > limit:
            break
        if masked:
            if end - at < 4 + size:
                break
            key = data[at:at + 4]
            at += 4
            payload = data[at:at + size]
            if size:
                stream = (key * ((size >> 2) + 1))[:size]
                payload = (int.from_bytes(payload, "big")
                           ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
        else:
            if end - at < size:
                break
            payload = data[at:at + size]
        out.append(payload)
        pos = at + size
    return out, pos


class MessageReader:
    """
    Checks a client's messages: call :meth:`begin`, then :meth:`fragment`
    and :meth:`data` for each WebSocket frame of the message, then
    :meth:`end`, which returns the message's one protocol frame.

    The frame's own header (a zero length, a length over ``max_frame``, an
    unknown type) is left to the session's frame decoder, so that it gets
    the very error a TCP client would; this class refuses only what
    WebSocket adds: a text message, a message longer than any frame, and a
    message that is not exactly one frame.
    """

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self.limit = max_frame + LENGTH_SIZE
        self.parts: list[bytes] = []
        self.size = 0

    def begin(self, binary: bool) -> None:
        """A message begins; ``binary`` is its opcode's kind."""
        self.parts = []
        self.size = 0
        if not binary:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                "text messages are not part of the protocol: send each frame as one "
                "binary message")

    def fragment(self, length: int) -> None:
        """A WebSocket frame of ``length`` payload bytes begins (before its bytes)."""
        self.size += length
        if self.size > self.limit:
            raise ProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"message of {self.size} bytes exceeds the limit of {self.limit} "
                f"(a frame of at most {self.max_frame} bytes and its 4-byte length)")

    def data(self, payload: bytes) -> None:
        """Payload bytes of the current WebSocket frame."""
        self.parts.append(payload)

    def end(self) -> bytes:
        """The message is complete: its frame, or :class:`ProtocolError`."""
        parts, self.parts = self.parts, []
        return self.whole(parts[0] if len(parts) == 1 else b"".join(parts))

    def whole(self, message: bytes) -> bytes:
        """A message received whole: its frame, or :class:`ProtocolError`."""
        size = len(message)
        if size > self.limit:
            raise ProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"message of {size} bytes exceeds the limit of {self.limit} "
                f"(a frame of at most {self.max_frame} bytes and its 4-byte length)")
        if size < LENGTH_SIZE:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"a message of {size} bytes holds no frame: each message is one whole "
                "frame, its 4-byte length first")
        length = _LENGTH(message, 0)[0]
        if LENGTH_SIZE + length == size or length < 1 or length > self.max_frame:
            # One frame, or a header the decoder refuses in the TCP client's words.
            return message
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            f"a message must hold exactly one frame: this one has {size} bytes, "
            f"its frame {LENGTH_SIZE + length}")
