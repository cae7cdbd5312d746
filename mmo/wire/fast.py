"""
Encoders for the frames sent every tick or every move, straight to bytes.

The same bytes as :mod:`mmo.wire.messages` produces (tests check that), with
the same structs (:mod:`mmo.wire.layout`), but without building a message
object per entity: the tick encodes each cell's moves once and every viewer
of the cell gets the same bytes, and a load-generator bot packs a whole Move
frame in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from struct import Struct
from typing import Any

from . import layout
from .messages import Enter, Leave, Move, Moves, Resync, Tick, pack_string

#: Entities per Enter / Leave / Moves frame; keeps frames far below the
#: 16 MiB a client accepts, even in a crowd.
CHUNK = 4096

_TICK = layout.TICK_FRAME
_TICK_LEN = layout.frame_length(_TICK)
_LENGTH_SIZE = layout.LENGTH_SIZE
_COUNTED_HEAD = layout.COUNTED_HEAD
#: The length field of an Enter frame, less its items.
_COUNTED_LEN = layout.frame_length(_COUNTED_HEAD)
_ENTER_ITEM = layout.ENTER_ITEM
_MOVES_TYPE = Moves.TYPE
_ENTER_TYPE = Enter.TYPE
_LEAVE_TYPE = Leave.TYPE
_move_structs: dict[int, Struct] = {}
_leave_structs: dict[int, Struct] = {}

RESYNC = layout.HEADER.pack(layout.frame_length(layout.HEADER), Resync.TYPE)

#: ``move_frame(seq, x, y)``: one whole Move frame (a C call, no Python frame).
move_frame: Callable[[int, float, float], bytes] = partial(
    layout.MOVE_FRAME.pack, layout.frame_length(layout.MOVE_FRAME), Move.TYPE
)


def tick_frame(tick: int, server_time: float) -> bytes:
    return _TICK.pack(_TICK_LEN, Tick.TYPE, tick & 0xFFFFFFFF, server_time)


def _counted_struct(cache: dict[int, Struct], item: Struct, n: int) -> Struct:
    """The struct of a whole frame of ``n`` items; the common sizes are kept."""
    st = cache.get(n)
    if st is None:
        st = layout.repeated(item, n, _COUNTED_HEAD)
        if len(cache) < 512:
            cache[n] = st
    return st


def moves_frames(entities: Sequence[Any]) -> bytes:
    """One ``Moves`` frame (or several, past :data:`CHUNK`) for ``entities``."""
    out = []
    for start in range(0, len(entities), CHUNK):
        # One frame (nearly always): the list itself, not a copy.
        chunk = entities if len(entities) <= CHUNK else entities[start : start + CHUNK]
        n = len(chunk)
        st = _counted_struct(_move_structs, layout.MOVE_ITEM, n)
        flat: list[Any] = []
        for e in chunk:
            flat += (e.id, e.x, e.y)
        out.append(st.pack(st.size - _LENGTH_SIZE, _MOVES_TYPE, n, *flat))
    return out[0] if len(out) == 1 else b"".join(out)


def enter_item(e: Any) -> bytes:
    return _ENTER_ITEM.pack(e.id, e.kind, e.x, e.y) + pack_string(e.name)


def enter_frames(entities: Sequence[Any], cache: dict[int, bytes]) -> list[bytes]:
    """``Enter`` frames for ``entities``; ``cache`` holds items for one tick."""
    out = []
    for start in range(0, len(entities), CHUNK):
        # The head's place first, filled in once the body's size is known:
        # the frame is joined in one copy.
        parts = [b""]
        size = 0
        chunk = entities if len(entities) <= CHUNK else entities[start : start + CHUNK]
        for e in chunk:
            item = cache.get(e.id)
            if item is None:
                item = cache[e.id] = enter_item(e)
            parts.append(item)
            size += len(item)
        parts[0] = _COUNTED_HEAD.pack(size + _COUNTED_LEN, _ENTER_TYPE, len(parts) - 1)
        out.append(b"".join(parts))
    return out


def leave_frames(ids: Iterable[int]) -> list[bytes]:
    items = ids if isinstance(ids, list) else list(ids)
    n = len(items)
    if 0 < n <= CHUNK:  # one frame (nearly always): no copies of the list
        st = _counted_struct(_leave_structs, layout.LEAVE_ITEM, n)
        return [st.pack(st.size - _LENGTH_SIZE, _LEAVE_TYPE, n, *items)]
    out = []
    for start in range(0, n, CHUNK):
        chunk = items[start : start + CHUNK]
        n = len(chunk)
        st = _counted_struct(_leave_structs, layout.LEAVE_ITEM, n)
        out.append(st.pack(st.size - _LENGTH_SIZE, _LEAVE_TYPE, n, *chunk))
    return out
