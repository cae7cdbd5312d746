"""
The cluster's control datagrams about players and chat (``docs/CLUSTER.md``):
chat lines and whisper receipts, keyframe requests, a player's resume by
token elsewhere, and a player's handoff to the owner of its new region.
Sans-IO, like :mod:`mmo.cluster.codec`, which decodes them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .fields import U16 as _U16
from .fields import U32 as _U32
from .fields import DatagramError, pack_str8, truncate_utf8
from .fields import Reader as _Reader

_CHAT = struct.Struct(">BII")
_RESUMED = struct.Struct(">8sI")
_HANDOFF = struct.Struct(">Iff")
_HERE = struct.Struct(">Idff")


@dataclass(frozen=True)
class ChatLine:
    """Chat for other nodes: say, zone, global, or a whisper to ``target``."""

    channel: int
    entity_id: int
    token: int
    zone: str
    sender: str
    target: str
    text: str

    def body(self, room: int) -> bytes:
        head = (_CHAT.pack(self.channel, self.entity_id, self.token) + pack_str8(self.zone)
                + pack_str8(self.sender) + pack_str8(self.target))
        text = truncate_utf8(self.text, max(0, room - len(head) - 2))
        return head + struct.pack(">H", len(text)) + text

    @classmethod
    def read(cls, data: bytes, at: int) -> ChatLine:
        r = _Reader(data, at)
        channel, eid, token = r.unpack(_CHAT)
        zone, sender, target = r.str8(), r.str8(), r.str8()
        (n,) = r.unpack(struct.Struct(">H"))
        out = cls(channel, eid, token, zone, sender, target, r.text(n))
        r.end()
        return out


@dataclass(frozen=True)
class WhisperReceipt:
    """``target`` got the whisper ``token`` that ``whisperer`` on ``origin`` sent."""

    token: int
    origin: str
    whisperer: str
    target: str

    def body(self) -> bytes:
        return (_U32.pack(self.token) + pack_str8(self.origin) + pack_str8(self.whisperer)
                + pack_str8(self.target))

    @classmethod
    def read(cls, data: bytes, at: int) -> WhisperReceipt:
        r = _Reader(data, at)
        (token,) = r.unpack(_U32)
        out = cls(token, r.str8(), r.str8(), r.str8())
        r.end()
        return out


@dataclass(frozen=True)
class Resumed:
    """``name`` came back on the sender with the resume token ``nonce`` (good until ``expires``)."""

    nonce: bytes
    expires: int
    name: str

    def body(self) -> bytes:
        return _RESUMED.pack(self.nonce, self.expires) + pack_str8(self.name)

    @classmethod
    def read(cls, data: bytes, at: int) -> Resumed:
        r = _Reader(data, at)
        nonce, expires = r.unpack(_RESUMED)
        out = cls(nonce, expires, r.str8())
        r.end()
        return out


@dataclass(frozen=True)
class Handoff:
    """
    The sender hands its player ``name`` (its entity ``entity_id`` there) to
    ``to_node``, which owns the region it walked into: where it stands and
    its extensions' record (``data``, JSON; ``None`` when it did not fit and
    was saved to the shared store instead).
    """

    to_node: str
    name: str
    zone: str
    entity_id: int
    x: float
    y: float
    data: bytes | None

    def body(self, room: int) -> bytes:
        head = (pack_str8(self.to_node) + pack_str8(self.name) + pack_str8(self.zone)
                + _HANDOFF.pack(self.entity_id, self.x, self.y))
        data = self.data
        if data is None or len(head) + 3 + len(data) > room:
            return head + b"\x00"
        return head + b"\x01" + _U16.pack(len(data)) + data

    @classmethod
    def read(cls, data: bytes, at: int) -> Handoff:
        r = _Reader(data, at)
        to_node, name, zone = r.str8(), r.str8(), r.str8()
        eid, x, y = r.unpack(_HANDOFF)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise DatagramError("a handoff's position is not finite")
        (flag,) = r.take(1)
        record = None
        if flag:
            (n,) = r.unpack(_U16)
            record = r.take(n)
        out = cls(to_node, name, zone, eid, x, y, record)
        r.end()
        return out


def request_bodies(cells: Sequence[tuple[str, int]], room: int) -> list[bytes]:
    """Keyframe requests for ``cells``, split to fit."""
    out: list[bytes] = []
    items: list[bytes] = []
    used = 1
    for zone, cell in cells:
        item = pack_str8(zone) + _U32.pack(cell)
        if items and (used + len(item) > room or len(items) == 255):
            out.append(bytes((len(items),)) + b"".join(items))
            items, used = [], 1
        items.append(item)
        used += len(item)
    if items:
        out.append(bytes((len(items),)) + b"".join(items))
    return out


def read_request(data: bytes, at: int) -> list[tuple[str, int]]:
    r = _Reader(data, at)
    (n,) = r.take(1)
    if n * (1 + _U32.size) > r.left():
        raise DatagramError("more cells than the datagram holds")
    out = []
    for _ in range(n):
        zone = r.str8()
        out.append((zone, r.unpack(_U32)[0]))
    r.end()
    return out


@dataclass(frozen=True)
class Where:
    """The sender asks where the player ``name`` was last seen (query ``query``)."""

    query: int
    name: str

    def body(self) -> bytes:
        return _U32.pack(self.query) + pack_str8(self.name)

    @classmethod
    def read(cls, data: bytes, at: int) -> Where:
        r = _Reader(data, at)
        (query,) = r.unpack(_U32)
        out = cls(query, r.str8())
        r.end()
        return out


@dataclass(frozen=True)
class Here:
    """
    An answer to ``asker``'s :class:`Where` ``query``: ``name`` was at ``x, y``
    of ``zone`` at ``heard`` (Unix seconds, the answering node's clock).
    """

    query: int
    heard: float
    x: float
    y: float
    asker: str
    name: str
    zone: str

    def body(self) -> bytes:
        return (_HERE.pack(self.query, self.heard, self.x, self.y) + pack_str8(self.asker)
                + pack_str8(self.name) + pack_str8(self.zone))

    @classmethod
    def read(cls, data: bytes, at: int) -> Here:
        r = _Reader(data, at)
        query, heard, x, y = r.unpack(_HERE)
        if not (math.isfinite(heard) and math.isfinite(x) and math.isfinite(y)):
            raise DatagramError("a whereabouts answer is not finite")
        out = cls(query, heard, x, y, r.str8(), r.str8(), r.str8())
        r.end()
        return out
