"""
The client protocol's messages and how they encode, sans-IO.

Every message is a frozen dataclass with a one-byte ``TYPE``.  A frame on the
wire is ``u32 length | u8 type | body``, big-endian, where ``length`` counts
the type byte and the body.  ``docs/PROTOCOL.md`` is the reference; this
module is its executable form and the two must agree.

The fixed parts of every body are the precompiled structs of
:mod:`mmo.wire.layout`, shared with the per-tick encoders of
:mod:`mmo.wire.fast` (which skip the dataclasses) and with every other
reader and writer of frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from . import layout
from .base import (
    MAX_STRING,
    NAME,
    PROTOCOL_VERSION,
    Channel,
    CorrectionReason,
    ErrorCode,
    Kind,
    NoticeKind,
    ProtocolError,
    Reader,
    _cut,
    _finite,
    frame,
    pack_string,
    valid_name,
)
from .layout import HEADER

__all__ = [
    "HEADER", "MAX_STRING", "NAME", "PROTOCOL_VERSION", "Channel", "CorrectionReason", "ErrorCode",
    "Kind", "NoticeKind", "ProtocolError", "Reader", "frame", "pack_string", "valid_name",
]


# ---------------------------------------------------------------- messages


class Message:
    """Base of every message: ``TYPE``, ``encode_body`` and ``decode_body``."""

    TYPE: ClassVar[int]

    def encode_body(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def decode_body(cls, r: Reader) -> Message:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self) -> bytes:
        return frame(self.TYPE, self.encode_body())


class _Empty(Message):
    def encode_body(self) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, r: Reader) -> Message:
        return cls()


# Client to server ---------------------------------------------------------

@dataclass(frozen=True)
class Hello(Message):
    TYPE: ClassVar[int] = 0x01
    version: int = PROTOCOL_VERSION
    client: str = ""

    def encode_body(self) -> bytes:
        return layout.HELLO.pack(self.version) + pack_string(self.client)

    @classmethod
    def decode_body(cls, r: Reader) -> Hello:
        (version,) = r.unpack(layout.HELLO)
        return cls(version, r.string())


@dataclass(frozen=True)
class Login(Message):
    TYPE: ClassVar[int] = 0x02
    name: str
    password: str

    def encode_body(self) -> bytes:
        return pack_string(self.name) + pack_string(self.password)

    @classmethod
    def decode_body(cls, r: Reader) -> Login:
        return cls(r.string(), r.string())


@dataclass(frozen=True)
class Resume(Message):
    """Instead of :class:`Login`: come back with a token from ``Ticket`` or ``Redirect``."""

    TYPE: ClassVar[int] = 0x09
    token: str

    def encode_body(self) -> bytes:
        return pack_string(self.token)

    @classmethod
    def decode_body(cls, r: Reader) -> Resume:
        return cls(r.string())


@dataclass(frozen=True)
class Move(Message):
    TYPE: ClassVar[int] = 0x03
    seq: int
    x: float
    y: float

    def encode_body(self) -> bytes:
        return layout.MOVE.pack(self.seq, self.x, self.y)

    @classmethod
    def decode_body(cls, r: Reader) -> Move:
        seq, x, y = r.unpack(layout.MOVE)
        _finite(x, y)
        return cls(seq, x, y)


@dataclass(frozen=True)
class Ping(Message):
    TYPE: ClassVar[int] = 0x04
    token: int
    client_time: float

    def encode_body(self) -> bytes:
        return layout.PING.pack(self.token, self.client_time)

    @classmethod
    def decode_body(cls, r: Reader) -> Ping:
        return cls(*r.unpack(layout.PING))


@dataclass(frozen=True)
class Chat(Message):
    """``target`` is the recipient's name for whispers and empty otherwise."""

    TYPE: ClassVar[int] = 0x05
    channel: int
    text: str
    target: str = ""

    def encode_body(self) -> bytes:
        return layout.CHAT.pack(self.channel) + pack_string(self.target) + pack_string(self.text)

    @classmethod
    def decode_body(cls, r: Reader) -> Chat:
        (channel,) = r.unpack(layout.CHAT)
        target = r.string()
        return cls(channel, r.string(), target)


@dataclass(frozen=True)
class ChangeZone(Message):
    TYPE: ClassVar[int] = 0x06
    zone: str

    def encode_body(self) -> bytes:
        return pack_string(self.zone)

    @classmethod
    def decode_body(cls, r: Reader) -> ChangeZone:
        return cls(r.string())


@dataclass(frozen=True)
class Who(_Empty):
    TYPE: ClassVar[int] = 0x07


@dataclass(frozen=True)
class Bye(_Empty):
    TYPE: ClassVar[int] = 0x08


# Server to client ---------------------------------------------------------

@dataclass(frozen=True)
class Welcome(Message):
    TYPE: ClassVar[int] = 0x81
    version: int
    node_id: str
    max_frame: int
    server: str = ""

    def encode_body(self) -> bytes:
        return (
            layout.WELCOME.pack(self.version, self.max_frame)
            + pack_string(self.node_id)
            + pack_string(self.server)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> Welcome:
        version, max_frame = r.unpack(layout.WELCOME)
        node_id = r.string()
        return cls(version, node_id, max_frame, r.string())


@dataclass(frozen=True)
class EnterWorld(Message):
    TYPE: ClassVar[int] = 0x82
    entity_id: int
    zone: str
    x: float
    y: float
    zone_width: float
    zone_height: float
    aoi: float
    tick_hz: int
    node_id: str

    def encode_body(self) -> bytes:
        return (
            layout.ENTER_WORLD.pack(
                self.entity_id, self.x, self.y, self.zone_width, self.zone_height,
                self.aoi, self.tick_hz,
            )
            + pack_string(self.zone)
            + pack_string(self.node_id)
        )

    @classmethod
    def decode_body(cls, r: Reader) -> EnterWorld:
        eid, x, y, w, h, aoi, hz = r.unpack(layout.ENTER_WORLD)
        zone = r.string()
        return cls(eid, zone, x, y, w, h, aoi, hz, r.string())


@dataclass(frozen=True)
class Tick(Message):
    """Starts one tick's update; the frames after it belong to this tick."""

    TYPE: ClassVar[int] = 0x83
    tick: int
    server_time: float

    def encode_body(self) -> bytes:
        return layout.TICK.pack(self.tick, self.server_time)

    @classmethod
    def decode_body(cls, r: Reader) -> Tick:
        return cls(*r.unpack(layout.TICK))


@dataclass(frozen=True)
class EntityInfo:
    entity_id: int
    kind: int
    x: float
    y: float
    name: str


@dataclass(frozen=True)
class Enter(Message):
    TYPE: ClassVar[int] = 0x84
    entities: tuple[EntityInfo, ...] = field(default_factory=tuple)

    def encode_body(self) -> bytes:
        parts = [layout.COUNT.pack(len(self.entities))]
        for e in self.entities:
            parts.append(layout.ENTER_ITEM.pack(e.entity_id, e.kind, e.x, e.y))
            parts.append(pack_string(e.name))
        return b"".join(parts)

    @classmethod
    def decode_body(cls, r: Reader) -> Enter:
        (n,) = r.unpack(layout.COUNT)
        out = []
        for _ in range(n):
            eid, kind, x, y = r.unpack(layout.ENTER_ITEM)
            out.append(EntityInfo(eid, kind, x, y, r.string()))
        return cls(tuple(out))


@dataclass(frozen=True)
class Leave(Message):
    TYPE: ClassVar[int] = 0x85
    entity_ids: tuple[int, ...] = ()

    def encode_body(self) -> bytes:
        n = len(self.entity_ids)
        return layout.repeated(layout.LEAVE_ITEM, n, layout.COUNT).pack(n, *self.entity_ids)

    @classmethod
    def decode_body(cls, r: Reader) -> Leave:
        (n,) = r.unpack(layout.COUNT)
        return cls(r.unpack(layout.repeated(layout.LEAVE_ITEM, n)))


@dataclass(frozen=True)
class Moves(Message):
    """Positions of entities that moved this tick: ``(id, x, y)`` triples."""

    TYPE: ClassVar[int] = 0x86
    moves: tuple[tuple[int, float, float], ...] = ()

    def encode_body(self) -> bytes:
        return layout.COUNT.pack(len(self.moves)) + b"".join(
            layout.MOVE_ITEM.pack(*m) for m in self.moves
        )

    @classmethod
    def decode_body(cls, r: Reader) -> Moves:
        (n,) = r.unpack(layout.COUNT)
        return cls(tuple(r.unpack(layout.MOVE_ITEM) for _ in range(n)))


@dataclass(frozen=True)
class Correction(Message):
    """The server refused move ``seq``; ``(x, y)`` is the true position."""

    TYPE: ClassVar[int] = 0x87
    seq: int
    x: float
    y: float
    reason: int

    def encode_body(self) -> bytes:
        return layout.CORRECTION.pack(self.seq, self.x, self.y, self.reason)

    @classmethod
    def decode_body(cls, r: Reader) -> Correction:
        return cls(*r.unpack(layout.CORRECTION))


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[int] = 0x88
    token: int
    client_time: float
    server_time: float

    def encode_body(self) -> bytes:
        return layout.PONG.pack(self.token, self.client_time, self.server_time)

    @classmethod
    def decode_body(cls, r: Reader) -> Pong:
        return cls(*r.unpack(layout.PONG))


@dataclass(frozen=True)
class ChatMessage(Message):
    TYPE: ClassVar[int] = 0x89
    channel: int
    sender: str
    text: str

    def encode_body(self) -> bytes:
        return (layout.CHAT_MESSAGE.pack(self.channel) + pack_string(self.sender)
                + pack_string(self.text))

    @classmethod
    def decode_body(cls, r: Reader) -> ChatMessage:
        (channel,) = r.unpack(layout.CHAT_MESSAGE)
        sender = r.string()
        return cls(channel, sender, r.string())


@dataclass(frozen=True)
class WhoReply(Message):
    """``players`` holds ``(name, zone, node_id)``; ``total`` may exceed it."""

    TYPE: ClassVar[int] = 0x8A
    total: int
    players: tuple[tuple[str, str, str], ...] = ()

    def encode_body(self) -> bytes:
        parts = [layout.WHO_REPLY.pack(self.total, len(self.players))]
        for name, zone, node in self.players:
            parts += [pack_string(name), pack_string(zone), pack_string(node)]
        return b"".join(parts)

    @classmethod
    def decode_body(cls, r: Reader) -> WhoReply:
        total, n = r.unpack(layout.WHO_REPLY)
        return cls(total, tuple((r.string(), r.string(), r.string()) for _ in range(n)))


@dataclass(frozen=True)
class Notice(Message):
    TYPE: ClassVar[int] = 0x8B
    kind: int
    text: str

    def encode_body(self) -> bytes:
        return layout.NOTICE.pack(self.kind) + pack_string(self.text)

    @classmethod
    def decode_body(cls, r: Reader) -> Notice:
        (kind,) = r.unpack(layout.NOTICE)
        return cls(kind, r.string())


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[int] = 0x8C
    code: int
    text: str

    def encode_body(self) -> bytes:
        # The text often quotes what the client sent (a whisper's target, a
        # zone name), which may be longer than a string may be: cut it rather
        # than fail to refuse.
        return layout.ERROR.pack(self.code) + pack_string(_cut(self.text, MAX_STRING))

    @classmethod
    def decode_body(cls, r: Reader) -> Error:
        (code,) = r.unpack(layout.ERROR)
        return cls(code, r.string())


@dataclass(frozen=True)
class Resync(_Empty):
    """Forget every entity you know; :class:`Enter` frames follow."""

    TYPE: ClassVar[int] = 0x8D


@dataclass(frozen=True)
class Ticket(Message):
    """
    A resume token for this player, good for ``valid_for`` seconds: sent
    after ``EnterWorld`` and again before the last one runs out.  Keep the
    newest; present it in :class:`Resume` to come back without a password.
    """

    TYPE: ClassVar[int] = 0x8E
    token: str
    valid_for: int

    def encode_body(self) -> bytes:
        return layout.TICKET.pack(self.valid_for) + pack_string(self.token)

    @classmethod
    def decode_body(cls, r: Reader) -> Ticket:
        (valid_for,) = r.unpack(layout.TICKET)
        return cls(r.string(), valid_for)


@dataclass(frozen=True)
class Redirect(Message):
    """
    Play on another node: connect to ``host``:``port`` (TCP; or
    ``websocket_port`` for a browser, 0 if that node has no WebSocket door)
    and present ``token`` in :class:`Resume`.  The server closes next.
    """

    TYPE: ClassVar[int] = 0x8F
    host: str
    port: int
    websocket_port: int
    token: str

    def encode_body(self) -> bytes:
        return (pack_string(self.host) + layout.REDIRECT.pack(self.port, self.websocket_port)
                + pack_string(self.token))

    @classmethod
    def decode_body(cls, r: Reader) -> Redirect:
        host = r.string()
        port, ws_port = r.unpack(layout.REDIRECT)
        return cls(host, port, ws_port, r.string())


CLIENT_MESSAGES: tuple[type[Message], ...] = (
    Hello, Login, Move, Ping, Chat, ChangeZone, Who, Bye, Resume,
)
SERVER_MESSAGES: tuple[type[Message], ...] = (
    Welcome, EnterWorld, Tick, Enter, Leave, Moves, Correction, Pong,
    ChatMessage, WhoReply, Notice, Error, Resync, Ticket, Redirect,
)
BY_TYPE: dict[int, type[Message]] = {m.TYPE: m for m in CLIENT_MESSAGES + SERVER_MESSAGES}
