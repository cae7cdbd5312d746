"""
The byte layout of the client protocol's frames, defined once.

A frame is ``u32 length | u8 type | body``, big-endian, where ``length``
counts the type byte and the body.  A string is ``u16 length | UTF-8``; a
list is ``u16 count | items``.  This module holds every fixed part as a
precompiled ``struct.Struct``: the message codec (:mod:`mmo.wire.messages`),
the per-tick encoders (:mod:`mmo.wire.fast`), the server's session and the
load generator's bots all read and write frames with these, and no other
module spells a frame's format string (a test checks that).

``docs/PROTOCOL.md`` describes the same layout in prose.
"""

from __future__ import annotations

from struct import Struct

#: ``u32 length | u8 type``, in front of every body.
HEADER = Struct(">IB")
#: The length field alone (checked before the type byte arrives).
LENGTH = Struct(">I")
#: Bytes of the length field, which does not count itself.
LENGTH_SIZE = LENGTH.size

U8 = Struct(">B")
U16 = Struct(">H")
#: In front of a string's UTF-8 bytes.
STRING_LENGTH = U16
#: In front of the items of Enter, Leave and Moves.
COUNT = U16

# The fixed part of each body, in wire order; strings follow where noted.

#: Hello: ``version``, then the ``client`` string.
HELLO = Struct(">H")
#: Move: ``seq, x, y``.
MOVE = Struct(">Iff")
#: Ping: ``token, client_time``.
PING = Struct(">Id")
#: Chat: ``channel``, then the ``target`` and ``text`` strings.
CHAT = U8
#: Welcome: ``version, max_frame``, then the ``node_id`` and ``server`` strings.
WELCOME = Struct(">HI")
#: EnterWorld: ``entity_id, x, y, zone_width, zone_height, aoi, tick_hz``,
#: then the ``zone`` and ``node_id`` strings.
ENTER_WORLD = Struct(">IfffffH")
#: Tick: ``tick, server_time``.
TICK = Struct(">Id")
#: One entity of Enter (after :data:`COUNT`): ``entity_id, kind, x, y``, then
#: the ``name`` string.
ENTER_ITEM = Struct(">IBff")
#: One entity of Leave (after :data:`COUNT`): ``entity_id``.
LEAVE_ITEM = Struct(">I")
#: One entity of Moves (after :data:`COUNT`): ``entity_id, x, y``.
MOVE_ITEM = Struct(">Iff")
#: Correction: ``seq, x, y, reason``.
CORRECTION = Struct(">IffB")
#: Pong: ``token, client_time, server_time``.
PONG = Struct(">Idd")
#: ChatMessage: ``channel``, then the ``sender`` and ``text`` strings.
CHAT_MESSAGE = U8
#: WhoReply: ``total, count``, then ``count`` times three strings.
WHO_REPLY = Struct(">IH")
#: Notice: ``kind``, then the ``text`` string.
NOTICE = U8
#: Error: ``code``, then the ``text`` string.
ERROR = U16
#: Ticket: valid_for (seconds); the token follows as a string.
TICKET = U16
#: Redirect: port, websocket_port (after the host string).
REDIRECT = Struct(">HH")
#: Inside a resume token (opaque to clients; see mmo.server.tokens):
#: version, expires (Unix seconds), nonce; then name and zone strings, and
TOKEN_HEAD = Struct(">BI8s")
#: x, y; then the MAC.
TOKEN_POSITION = Struct(">ff")


def _fields(st: Struct) -> str:
    """The format of ``st`` without its byte-order prefix."""
    return st.format[1:]


def joined(*parts: Struct) -> Struct:
    """One struct for ``parts`` one after the other (big-endian has no padding)."""
    return Struct(">" + "".join(_fields(p) for p in parts))


def repeated(item: Struct, n: int, head: Struct | None = None) -> Struct:
    """One struct for ``head`` (if any) followed by ``n`` times ``item``."""
    return Struct(">" + (_fields(head) if head is not None else "") + _fields(item) * n)


def frame_length(whole: Struct) -> int:
    """The length field of a frame that is exactly ``whole`` (header included)."""
    return whole.size - LENGTH_SIZE


# Whole frames packed in one call, for the paths that run per tick or per move.

#: A whole Tick frame: header, then :data:`TICK`.
TICK_FRAME = joined(HEADER, TICK)
#: A whole Move frame: header, then :data:`MOVE`.
MOVE_FRAME = joined(HEADER, MOVE)
#: The header and item count of an Enter, Leave or Moves frame.
COUNTED_HEAD = joined(HEADER, COUNT)
