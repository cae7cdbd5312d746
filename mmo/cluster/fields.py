"""
The building blocks of the cluster's datagram bodies (:mod:`mmo.cluster.codec`
and :mod:`mmo.cluster.control`): the error every reader raises, short
strings, and a bounds-checked reader.
"""

from __future__ import annotations

import struct
from typing import Any

U16 = struct.Struct(">H")
U32 = struct.Struct(">I")


class DatagramError(Exception):
    """A datagram that is not one of ours, or is malformed."""


def micros(seconds: float) -> int:
    """``seconds`` since 1970 as the header's whole microseconds (a u64)."""
    return min(max(int(seconds * 1_000_000), 0), 0xFFFFFFFFFFFFFFFF)


def pack_str8(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{value[:20]!r}... is longer than 255 bytes of UTF-8")
    return bytes((len(raw),)) + raw


def truncate_utf8(value: str, limit: int) -> bytes:
    """``value`` as UTF-8, cut to at most ``limit`` bytes on a character boundary."""
    raw = value.encode("utf-8")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


class Reader:
    """Cursor over a body; every read is bounds-checked (:class:`DatagramError`)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DatagramError("datagram is truncated")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        if self.pos + st.size > len(self.data):
            raise DatagramError("datagram is truncated")
        out = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return out

    def str8(self) -> str:
        (n,) = self.take(1)
        return self.text(n)

    def text(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise DatagramError("a string is not UTF-8") from None

    def left(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        if self.pos != len(self.data):
            raise DatagramError(f"{len(self.data) - self.pos} bytes after the body")
