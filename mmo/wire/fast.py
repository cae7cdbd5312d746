"""
Encoders for the per-tick frames, straight from world entities to bytes.

The same bytes as :mod:`mmo.wire.messages` produces (tests check that), but
without building a message object per entity: the tick encodes each cell's
moves once and every viewer of the cell gets the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from .messages import (
    ENTER_ITEM,
    HEADER,
    Enter,
    Leave,
    Moves,
    Resync,
    Tick,
    pack_string,
)

#: Entities per Enter / Leave / Moves frame; keeps frames far below the
#: 16 MiB a client accepts, even in a crowd.
CHUNK = 4096

_TICK = struct.Struct(">IBId")
_TICK_LEN = _TICK.size - 4
_MOVES_HEAD = struct.Struct(">IBH")
_ENTER_HEAD = _MOVES_HEAD
_MOVES_TYPE = Moves.TYPE
_ENTER_TYPE = Enter.TYPE
_LEAVE_TYPE = Leave.TYPE
_move_structs: dict[int, struct.Struct] = {}
_leave_structs: dict[int, struct.Struct] = {}

RESYNC = HEADER.pack(1, Resync.TYPE)


def tick_frame(tick: int, server_time: float) -> bytes:
    return _TICK.pack(_TICK_LEN, Tick.TYPE, tick & 0xFFFFFFFF, server_time)


def _moves_struct(n: int) -> struct.Struct:
    st = _move_structs.get(n)
    if st is None:
        st = struct.Struct(">IBH" + "Iff" * n)
        if len(_move_structs) < 512:
            _move_structs[n] = st
    return st


def moves_frames(entities: Sequence[Any]) -> bytes:
    """One ``Moves`` frame (or several, past :data:`CHUNK`) for ``entities``."""
    out = []
    for start in range(0, len(entities), CHUNK):
        chunk = entities[start : start + CHUNK]
        n = len(chunk)
        st = _moves_struct(n)
        flat: list[Any] = []
        for e in chunk:
            flat += (e.id, e.x, e.y)
        out.append(st.pack(st.size - 4, _MOVES_TYPE, n, *flat))
    return b"".join(out)


def enter_item(e: Any) -> bytes:
    return ENTER_ITEM.pack(e.id, e.kind, e.x, e.y) + pack_string(e.name)


def enter_frames(entities: Sequence[Any], cache: dict[int, bytes]) -> list[bytes]:
    """``Enter`` frames for ``entities``; ``cache`` holds items for one tick."""
    out = []
    for start in range(0, len(entities), CHUNK):
        items = []
        for e in entities[start : start + CHUNK]:
            item = cache.get(e.id)
            if item is None:
                item = cache[e.id] = enter_item(e)
            items.append(item)
        body = b"".join(items)
        out.append(_ENTER_HEAD.pack(len(body) + 3, _ENTER_TYPE, len(items)) + body)
    return out


def leave_frames(ids: Iterable[int]) -> list[bytes]:
    ids = list(ids)
    out = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        n = len(chunk)
        st = _leave_structs.get(n)
        if st is None:
            st = struct.Struct(">IBH" + "I" * n)
            if len(_leave_structs) < 512:
                _leave_structs[n] = st
        out.append(st.pack(st.size - 4, _LEAVE_TYPE, n, *chunk))
    return out
