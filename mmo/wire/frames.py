"""
Splitting a byte stream into frames, sans-IO.

:class:`FrameDecoder` takes bytes in any chunking and returns complete
frames; it raises :class:`~mmo.wire.messages.ProtocolError` on the first
thing that is not a valid frame, and it never holds more than one frame's
worth of bytes plus one read, so a peer cannot grow it without bound.
"""

from __future__ import annotations

from collections.abc import Iterable

from .layout import HEADER, LENGTH, LENGTH_SIZE
from .messages import (
    BY_TYPE,
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    ErrorCode,
    Message,
    ProtocolError,
    Reader,
)

DEFAULT_MAX_FRAME = 64 * 1024
_HEADER_SIZE = HEADER.size
_LENGTH = LENGTH


class FrameDecoder:
    """
    Incremental decoder of ``u32 length | u8 type | body`` frames.

    ``accept`` limits the message classes that may arrive (a server accepts
    only client messages and the other way round); a frame of any other
    type is a protocol error.
    """

    def __init__(
        self,
        max_frame: int = DEFAULT_MAX_FRAME,
        accept: Iterable[type[Message]] | None = None,
    ) -> None:
        self.max_frame = max_frame
        self._types = (
            BY_TYPE if accept is None else {m.TYPE: m for m in accept}
        )
        self._buf = bytearray()

    @classmethod
    def for_server(cls, max_frame: int = DEFAULT_MAX_FRAME) -> FrameDecoder:
        return cls(max_frame, CLIENT_MESSAGES)

    @classmethod
    def for_client(cls, max_frame: int = 16 * 1024 * 1024) -> FrameDecoder:
        return cls(max_frame, SERVER_MESSAGES)

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf)

    def feed_frames(self, data: bytes = b"", limit: int | None = None) -> list[tuple[int, bytes]]:
        """
        Add ``data``; return the complete ``(type, body)`` frames now
        available, at most ``limit`` of them (the rest stay buffered for
        the next call).

        The type is checked against ``accept``; the body is not decoded, so
        a caller that needs only some messages (the load generator) can skip
        the others cheaply.  A zero or oversized length is refused as soon
        as its four bytes are here, before any body arrives.
        """
        buf = self._buf
        if data:
            buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        types = self._types
        left = -1 if limit is None else limit
        while end - pos >= LENGTH_SIZE and left:
            length = _LENGTH.unpack_from(buf, pos)[0]
            if length < 1:
                raise ProtocolError(ErrorCode.BAD_FRAME, "frame length is zero")
            if length > self.max_frame:
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame of {length} bytes exceeds the limit of {self.max_frame}",
                )
            if end - pos < _HEADER_SIZE:
                break
            type_ = buf[pos + LENGTH_SIZE]
            if type_ not in types:
                raise ProtocolError(
                    ErrorCode.BAD_FRAME, f"unknown message type 0x{type_:02x}"
                )
            stop = pos + LENGTH_SIZE + length
            if stop > end:
                break
            out.append((type_, bytes(buf[pos + _HEADER_SIZE : stop])))
            pos = stop
            left -= 1
        if pos:
            del buf[:pos]
        return out

    def decode(self, type_: int, body: bytes) -> Message:
        """Decode one frame's body into its message."""
        r = Reader(body)
        msg = self._types[type_].decode_body(r)
        r.finish()
        return msg

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every complete message now available."""
        return [self.decode(t, b) for t, b in self.feed_frames(data)]


def decode_all(data: bytes, accept: Iterable[type[Message]] | None = None) -> list[Message]:
    """Decode a buffer that holds whole frames only (a test and tool helper)."""
    dec = FrameDecoder(max(len(data), 1), accept)
    msgs = dec.feed(data)
    if dec.buffered:
        raise ProtocolError(ErrorCode.BAD_FRAME, "incomplete frame at end of data")
    return msgs
