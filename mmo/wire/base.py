"""
The client protocol's vocabulary, sans-IO: names, versions and limits, the
enums every message uses (error codes, chat channels, entity kinds...), the
protocol error, and the primitives messages are read and written with
(:class:`Reader`, strings, frames).  :mod:`mmo.wire.messages` builds the
messages from them and re-exports every name here.
"""

from __future__ import annotations

import math
import re
from enum import IntEnum
from struct import Struct

from . import layout
from .layout import HEADER

#: A player's name: 1 to 24 letters, digits, ``_`` or ``-``; case-sensitive.
NAME = re.compile(r"[A-Za-z0-9_\-]{1,24}")


def valid_name(name: str) -> bool:
    """Whether ``name`` is a player name (the whole string, no newline)."""
    return NAME.fullmatch(name) is not None


PROTOCOL_VERSION = 1

#: Longest string the codec accepts (bytes of UTF-8).
MAX_STRING = 4096


class ProtocolError(Exception):
    """
    The peer sent something the protocol does not allow.

    ``code`` is an :class:`ErrorCode`; the server answers with an
    :class:`Error` frame carrying it and closes the connection.
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class ErrorCode(IntEnum):
    BAD_FRAME = 1
    FRAME_TOO_LARGE = 2
    VERSION_MISMATCH = 3
    BAD_STATE = 4
    AUTH_FAILED = 5
    NAME_IN_USE = 6
    LOGIN_TIMEOUT = 7
    IDLE_TIMEOUT = 8
    RATE_LIMITED = 9
    TOO_MANY_CONNECTIONS = 10
    UNKNOWN_ZONE = 11
    UNKNOWN_PLAYER = 12
    SERVER_FULL = 13
    SLOW_READER = 14
    SHUTTING_DOWN = 15
    INVALID = 16
    REGISTRATION_CLOSED = 17
    TOKEN_REFUSED = 18


class Channel(IntEnum):
    SAY = 0
    ZONE = 1
    WHISPER = 2
    GLOBAL = 3
    SYSTEM = 4


class Kind(IntEnum):
    PLAYER = 0
    NPC = 1


class CorrectionReason(IntEnum):
    TOO_FAST = 1
    OUT_OF_BOUNDS = 2
    RATE_LIMITED = 3
    INVALID = 4
    TELEPORT = 5


class NoticeKind(IntEnum):
    INFO = 0
    SHUTDOWN = 1


# ---------------------------------------------------------------- reading


class Reader:
    """Cursor over one frame's body; every read is bounds-checked."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, st: Struct) -> tuple:
        end = self.pos + st.size
        if end > len(self.data):
            raise ProtocolError(ErrorCode.BAD_FRAME, "frame body is too short")
        values = st.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def string(self) -> str:
        (n,) = self.unpack(layout.STRING_LENGTH)
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError(ErrorCode.BAD_FRAME, "string runs past the frame")
        raw = self.data[self.pos : end]
        self.pos = end
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(ErrorCode.BAD_FRAME, "string is not UTF-8") from None

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(ErrorCode.BAD_FRAME, "trailing bytes in frame")


def pack_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > MAX_STRING:
        raise ValueError(f"string of {len(raw)} bytes is longer than {MAX_STRING}")
    return layout.STRING_LENGTH.pack(len(raw)) + raw


def _cut(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    raw = value.encode("utf-8")
    if len(raw) <= limit:
        return value
    return raw[:limit].decode("utf-8", "ignore")


#: What the length field counts besides the body: the type byte.
_TYPE_SIZE = layout.frame_length(HEADER)


def frame(type_: int, body: bytes) -> bytes:
    """Wrap ``body`` as one complete frame of type ``type_``."""
    return HEADER.pack(len(body) + _TYPE_SIZE, type_) + body


def _finite(*values: float) -> None:
    for v in values:
        if not math.isfinite(v):
            raise ProtocolError(ErrorCode.INVALID, "coordinates must be finite numbers")
