"""
Cell records, sans-IO: what a cell delta or keyframe datagram carries.

A body of type :data:`CELL_DELTA` or :data:`CELL_KEYFRAME` is one or more
records back to back (``docs/CLUSTER.md``): each is a zone, a cell, the
stream's sequence number and part, and the entities' full records, moves
and departures.  The readers return updates or raise
:class:`~mmo.cluster.fields.DatagramError`, their work bounded by the
bytes they are given.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fields import DatagramError, pack_str8

CELL_DELTA = 1
CELL_KEYFRAME = 2

_CELL_HEAD = struct.Struct(">IIBBHHH")
FULL_ITEM = struct.Struct(">IBffB")
MOVE_ITEM = struct.Struct(">Iff")
GONE_ITEM = struct.Struct(">II")
#: The ``to`` of a departure that left the zone (or the world).
NOWHERE = 0xFFFFFFFF


# -- cell updates --------------------------------------------------------------


@dataclass(slots=True)
class CellUpdate:
    """One record of a cell stream: full records, moves and departures."""

    zone: str
    cell: int
    seq: int
    keyframe: bool = False
    part: int = 0
    parts: int = 1
    #: (entity id, kind, x, y, name)
    fulls: list[tuple[int, int, float, float, str]] = field(default_factory=list)
    #: (entity id, x, y)
    moves: list[tuple[int, float, float]] = field(default_factory=list)
    #: (entity id, the cell it went to, or NOWHERE)
    gones: list[tuple[int, int]] = field(default_factory=list)


def full_item(eid: int, kind: int, x: float, y: float, name: str) -> bytes:
    raw = name.encode("utf-8")[:255]
    return FULL_ITEM.pack(eid, kind, x, y, len(raw)) + raw


def move_item(eid: int, x: float, y: float) -> bytes:
    return MOVE_ITEM.pack(eid, x, y)


#: Zone names as str8, and back: a node has a few zones, each named in
#: every cell datagram it sends or reads.
_ZONE_BYTES: dict[str, bytes] = {}
_ZONE_NAMES: dict[bytes, str] = {}
_ZONES_KEPT = 256


def _zone_str8(zone: str) -> bytes:
    zone_b = _ZONE_BYTES.get(zone)
    if zone_b is None:
        zone_b = pack_str8(zone)
        if len(_ZONE_BYTES) >= _ZONES_KEPT:
            _ZONE_BYTES.clear()
        _ZONE_BYTES[zone] = zone_b
    return zone_b


def cell_bodies(
    zone: str, cell: int, first_seq: int, fulls: Sequence[bytes],
    moves: Sequence[bytes], gones: Sequence[tuple[int, int]], room: int,
) -> list[bytes]:
    """
    The records of one cell's update, split so that each is at most ``room``
    bytes; the i-th carries stream sequence number ``first_seq + i``.  A
    record is a body alone, or several share one (:func:`pack_records`).
    """
    zone_b = _zone_str8(zone)
    space = room - len(zone_b) - _CELL_HEAD.size
    if space < 64:
        raise ValueError("no room for cell records: the zone name or node id is too long")
    chunks: list[tuple[list[bytes], list[int]]] = []
    items: list[bytes] = []
    counts = [0, 0, 0]
    used = 0
    for section, seq in enumerate((fulls, moves, [GONE_ITEM.pack(*g) for g in gones])):
        for item in seq:
            if used + len(item) > space:
                chunks.append((items, counts))
                items, counts, used = [], [0, 0, 0], 0
            items.append(item)
            counts[section] += 1
            used += len(item)
    if items or not chunks:
        chunks.append((items, counts))
    parts = len(chunks) if len(chunks) <= 255 else 0
    return [
        zone_b + _CELL_HEAD.pack(cell, (first_seq + i) & 0xFFFFFFFF, min(i, 255), parts,
                                 *n) + b"".join(its)
        for i, (its, n) in enumerate(chunks)
    ]


_TAIL_STRUCTS: dict[tuple[int, int], struct.Struct] = {}


def _tail_struct(nm: int, ng: int) -> struct.Struct:
    """The struct of ``nm`` move items followed by ``ng`` departures."""
    st = _TAIL_STRUCTS.get((nm, ng))
    if st is None:
        st = struct.Struct(">" + "Iff" * nm + "II" * ng)
        if len(_TAIL_STRUCTS) >= 1024:
            _TAIL_STRUCTS.clear()
        _TAIL_STRUCTS[nm, ng] = st
    return st


def cell_bodies_flat(
    zone: str, cell: int, first_seq: int, fulls: list[bytes],
    moves: list[Any], gones: list[int], room: int,
) -> list[bytes]:
    """
    :func:`cell_bodies`, the same bytes, with the moves and departures given
    flat (``[id, x, y, id, x, y, ...]`` and ``[id, to, id, to, ...]``): an
    update that fits in one body is packed with one struct call.
    """
    nm, ng = len(moves) // 3, len(gones) // 2
    zone_b = _zone_str8(zone)
    size = nm * MOVE_ITEM.size + ng * GONE_ITEM.size
    for item in fulls:
        size += len(item)
    if size > room - len(zone_b) - _CELL_HEAD.size:
        return cell_bodies(zone, cell, first_seq, fulls,
                           [MOVE_ITEM.pack(*moves[i : i + 3]) for i in range(0, 3 * nm, 3)],
                           [(gones[i], gones[i + 1]) for i in range(0, 2 * ng, 2)], room)
    head = _CELL_HEAD.pack(cell, first_seq & 0xFFFFFFFF, 0, 1, len(fulls), nm, ng)
    tail = _tail_struct(nm, ng).pack(*moves, *gones) if nm or ng else b""
    if fulls:
        return [b"".join((zone_b, head, *fulls, tail))]
    return [zone_b + head + tail]


_FULL_SIZE = FULL_ITEM.size
_MOVE_SIZE = MOVE_ITEM.size
_GONE_SIZE = GONE_ITEM.size
_CELL_HEAD_SIZE = _CELL_HEAD.size
_unpack_full = FULL_ITEM.unpack_from
_unpack_cell_head = _CELL_HEAD.unpack_from
_iter_moves = MOVE_ITEM.iter_unpack
_iter_gones = GONE_ITEM.iter_unpack


def pack_records(records: Sequence[bytes], room: int) -> list[bytes]:
    """
    Cell records (each at most ``room`` bytes, from :func:`cell_bodies`)
    packed, in order, back to back into as few bodies of at most ``room``
    bytes as this greedy pass makes.
    """
    out: list[bytes] = []
    batch: list[bytes] = []
    used = 0
    for record in records:
        n = len(record)
        if used + n > room and batch:
            out.append(b"".join(batch))
            batch, used = [], 0
        batch.append(record)
        used += n
    if batch:
        out.append(b"".join(batch))
    return out


def _run(data: bytes, p: int, end: int, n: int, size: int,
         iter_unpack: Callable[[bytes], Any]) -> tuple[list[Any], int]:
    """The ``n`` items of ``size`` bytes at ``data[p:]``, and where they end."""
    if not n:
        return [], p
    q = p + n * size
    if q > end:
        raise DatagramError("datagram is truncated")
    return list(iter_unpack(data[p:q])), q


def read_cells(kind: int, data: bytes, at: int,
               wanted: Callable[[tuple[str, int]], bool] | None = None,
               ) -> tuple[list[CellUpdate], int]:
    """
    The cell records of ``data[at:]``, back to back to its end: the updates
    (:class:`CellUpdate`) of those whose ``(zone, cell)`` is ``wanted``
    (all, without it), and how many others were skipped by their lengths
    (their names not decoded).  Raises :class:`DatagramError` for a body
    without records or any record that does not end where it says.
    """
    end = len(data)
    if at >= end:
        raise DatagramError("a cell datagram without records")
    keyframe = kind == CELL_KEYFRAME
    out: list[CellUpdate] = []
    skipped = 0
    p = at
    # Every record takes at least 1 + _CELL_HEAD_SIZE bytes: the loop is
    # bounded by the length of ``data``.
    while p < end:
        q = p + 1 + data[p]
        if q > end:
            raise DatagramError("datagram is truncated")
        raw = data[p + 1 : q]
        zone = _ZONE_NAMES.get(raw)
        if zone is None:
            try:
                zone = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DatagramError("a string is not UTF-8") from None
            if len(_ZONE_NAMES) >= _ZONES_KEPT:
                _ZONE_NAMES.clear()
            _ZONE_NAMES[raw] = zone
        if q + _CELL_HEAD_SIZE > end:
            raise DatagramError("datagram is truncated")
        cell, seq, part, parts, nf, nm, ng = _unpack_cell_head(data, q)
        p = q + _CELL_HEAD_SIZE
        if nf * _FULL_SIZE + nm * _MOVE_SIZE + ng * _GONE_SIZE > end - p:
            raise DatagramError("more records than the datagram holds")
        if wanted is not None and not wanted((zone, cell)):
            for _ in range(nf):
                p += _FULL_SIZE
                if p > end:
                    raise DatagramError("datagram is truncated")
                p += data[p - 1]
            p += nm * _MOVE_SIZE + ng * _GONE_SIZE
            if p > end:
                raise DatagramError("datagram is truncated")
            skipped += 1
            continue
        fulls = []
        for _ in range(nf):
            if p + _FULL_SIZE > end:
                raise DatagramError("datagram is truncated")
            eid, ekind, x, y, n = _unpack_full(data, p)
            p += _FULL_SIZE
            q = p + n
            if q > end:
                raise DatagramError("datagram is truncated")
            try:
                name = data[p:q].decode("utf-8")
            except UnicodeDecodeError:
                raise DatagramError("a string is not UTF-8") from None
            fulls.append((eid, ekind, x, y, name))
            p = q
        moves, p = _run(data, p, end, nm, _MOVE_SIZE, _iter_moves)
        gones, p = _run(data, p, end, ng, _GONE_SIZE, _iter_gones)
        out.append(CellUpdate(zone, cell, seq, keyframe, part, parts, fulls, moves, gones))
    return out, skipped
