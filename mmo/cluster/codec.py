"""
The cluster's datagrams, sans-IO: bytes in, messages out, and back.

``docs/CLUSTER.md`` describes every byte.  A datagram is a header (magic,
version, type, the sender's epoch, sequence number and clock, its id), a
body whose layout depends on the type, and a MAC (:mod:`mmo.cluster.auth`).
Every reader here, given any bytes at all, returns a message or raises
:class:`DatagramError`, and nothing else; its work and memory are bounded
by the length of what it is given (counts are checked against the bytes
left before anything is built, and the metrics' JSON is bounded in size and
nesting before it is parsed).
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import bounded_json
from .auth import MAC_SIZE, keyed
from .control import (
    ChatLine,
    Handoff,
    Here,
    Resumed,
    Where,
    WhisperReceipt,
    read_request,
    request_bodies,
)
from .fields import U16 as _U16
from .fields import DatagramError, micros, pack_str8, truncate_utf8
from .fields import Reader as _Reader

__all__ = [
    "ChatLine", "DatagramError", "Handoff", "Here", "Resumed", "WhisperReceipt", "Where",
    "micros",
    "pack_str8", "read_request", "request_bodies", "truncate_utf8",
]

MAGIC = b"MC"
#: 2 added the sender's clock to the header (version 1 had none); 3 lets a
#: cell datagram carry the records of several cells.
VERSION = 3
#: Largest datagram sent (MAC included): under the path MTU of any network.
MAX_DATAGRAM = 1200

CELL_DELTA = 1
CELL_KEYFRAME = 2
HEARTBEAT = 3
METRICS = 4
CHAT = 5
WHISPER_RECEIPT = 6
KEYFRAME_REQUEST = 7
BYE = 8
RESUMED = 9
HANDOFF = 10
WHERE = 11
HERE = 12
TYPES = {CELL_DELTA, CELL_KEYFRAME, HEARTBEAT, METRICS, CHAT, WHISPER_RECEIPT,
         KEYFRAME_REQUEST, BYE, RESUMED, HANDOFF, WHERE, HERE}

#: The header's fixed part (magic, version, type, epoch, seq, clock, id length).
HEAD = _HEAD = struct.Struct(">2sBBQQQB")
_CELL_HEAD = struct.Struct(">IIBBHHH")
FULL_ITEM = struct.Struct(">IBffB")
MOVE_ITEM = struct.Struct(">Iff")
GONE_ITEM = struct.Struct(">II")
#: The ``to`` of a departure that left the zone (or the world).
NOWHERE = 0xFFFFFFFF
_HEARTBEAT = struct.Struct(">HIIfI")


# -- header ------------------------------------------------------------------


class Header(NamedTuple):
    """What precedes a datagram's body (a tuple: one is made per datagram)."""

    type: int
    epoch: int
    seq: int
    sender: str
    #: Where the body starts in the signed data.
    body_at: int
    #: The sender's clock when it sealed the datagram, microseconds since 1970.
    sent: int = 0


_HEAD_SIZE = _HEAD.size


def peek_sender(datagram: bytes) -> str | None:
    """The sender id of ``datagram`` without checking anything else, or None."""
    if len(datagram) < _HEAD_SIZE or datagram[:2] != MAGIC:
        return None
    n = datagram[_HEAD_SIZE - 1]
    try:
        return datagram[_HEAD_SIZE : _HEAD_SIZE + n].decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_header(data: bytes) -> Header:
    """The header of a datagram whose MAC was already checked and removed."""
    size = len(data)
    if size > MAX_DATAGRAM - MAC_SIZE:
        raise DatagramError(f"{size} bytes: longer than a datagram of ours")
    if size < _HEAD_SIZE:
        raise DatagramError("datagram is truncated")
    magic, version, kind, epoch, seq, sent, n = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise DatagramError("not an mmo cluster datagram")
    if version != VERSION:
        raise DatagramError(f"datagram version {version}, expected {VERSION}")
    if kind not in TYPES:
        raise DatagramError(f"unknown datagram type {kind}")
    if n == 0:
        raise DatagramError("empty sender id")
    at = _HEAD_SIZE + n
    if at > size:
        raise DatagramError("datagram is truncated")
    try:
        sender = data[_HEAD_SIZE:at].decode("utf-8")
    except UnicodeDecodeError:
        raise DatagramError("a string is not UTF-8") from None
    return Header(kind, epoch, seq, sender, at, sent)


class Sealer:
    """
    Numbers, heads and signs one sender's datagrams; each is stamped with
    ``clock()`` (seconds since 1970: the reactor's ``seconds``, by default
    the host's clock) so that receivers can refuse old recordings.
    """

    def __init__(self, key: bytes, sender: str, epoch: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.clock = clock
        self.sender = pack_str8(sender)[1:]
        if not self.sender:
            raise ValueError("the node id must not be empty")
        self.epoch = epoch
        self.seq = 0
        #: Bytes of header and MAC around every body.
        self.overhead = _HEAD.size + len(self.sender) + MAC_SIZE

    def seal(self, kind: int, body: bytes) -> bytes:
        self.seq = seq = self.seq + 1
        sender = self.sender
        data = _HEAD.pack(MAGIC, VERSION, kind, self.epoch, seq, micros(self.clock()),
                          len(sender)) + sender + body
        mac = keyed(self.key).copy()
        mac.update(data)
        return data + mac.digest()[:MAC_SIZE]


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
        if nm:
            q = p + nm * _MOVE_SIZE
            if q > end:
                raise DatagramError("datagram is truncated")
            moves = list(_iter_moves(data[p:q]))
            p = q
        else:
            moves = []
        if ng:
            q = p + ng * _GONE_SIZE
            if q > end:
                raise DatagramError("datagram is truncated")
            gones = list(_iter_gones(data[p:q]))
            p = q
        else:
            gones = []
        out.append(CellUpdate(zone, cell, seq, keyframe, part, parts, fulls, moves, gones))
    return out, skipped


# -- control group -------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    tcp_port: int
    clients: int
    entities: int
    cell_size: float
    interval_ms: int
    #: Where players reach the node (its ``--advertise`` address).
    address: str
    version: str
    #: The node's WebSocket port for players, 0 if none (after ``version``;
    #: absent from the heartbeats of older nodes).
    websocket_port: int = 0

    def body(self) -> bytes:
        return (_HEARTBEAT.pack(self.tcp_port, self.clients, self.entities, self.cell_size,
                                self.interval_ms) + pack_str8(self.address)
                + pack_str8(self.version) + _U16.pack(self.websocket_port))

    @classmethod
    def read(cls, data: bytes, at: int) -> Heartbeat:
        r = _Reader(data, at)
        port, clients, entities, cell_size, interval = r.unpack(_HEARTBEAT)
        if not (math.isfinite(cell_size) and cell_size > 0):
            raise DatagramError(f"cell size {cell_size} is not a positive number")
        address, version = r.str8(), r.str8()
        ws_port = r.unpack(_U16)[0] if r.left() else 0
        out = cls(port, clients, entities, cell_size, interval, address, version, ws_port)
        r.end()
        return out


#: Metrics kept first when the JSON would not fit in one datagram.
METRICS_FIRST = (
    "node_id", "connected_clients", "events_per_sec", "tick_hz", "tick_rate",
    "tick_ms_p50", "tick_ms_p99", "tick_lag_max_ms", "tick_gap_max_ms",
    "bytes_in_per_sec", "bytes_out_per_sec",
    "cluster_bytes_in_per_sec", "cluster_bytes_out_per_sec", "owned_entities",
    "mirrored_entities", "entities", "cluster_nodes",
)


def _compact(values: dict[str, Any]) -> bytes:
    return json.dumps(values, separators=(",", ":"), sort_keys=True).encode()


def metrics_body(values: dict[str, Any], room: int) -> bytes:
    """
    The metrics as compact JSON, always a whole object: if it is too long,
    nested tables go first, then keys not in :data:`METRICS_FIRST`.
    """
    raw = _compact(values)
    if len(raw) <= room:
        return raw
    flat = {k: v for k, v in values.items() if not isinstance(v, (dict, list))}
    raw = _compact(flat)
    if len(raw) <= room:
        return raw
    order = [k for k in METRICS_FIRST if k in flat]
    order += sorted(k for k in flat if k not in METRICS_FIRST)
    kept: dict[str, Any] = {}
    size = 2  # the braces
    for k in order:
        # '"key":value', and a comma before all but the first
        item = len(_compact({k: flat[k]})) - 2 + (1 if kept else 0)
        if size + item <= room:
            kept[k] = flat[k]
            size += item
    return _compact(kept)


#: Deepest nesting of the metrics' JSON read (the node sends 2: a table in
#: the object).
METRICS_DEPTH = 8


def read_metrics(data: bytes, at: int) -> dict[str, Any]:
    """
    The metrics object of a body: at most :data:`MAX_DATAGRAM` bytes of
    UTF-8 JSON nested at most :data:`METRICS_DEPTH` deep, checked before
    it is parsed; numbers finite, strings without lone surrogates.
    """
    try:
        values = bounded_json.loads(data[at:], MAX_DATAGRAM, METRICS_DEPTH)
    except ValueError as e:
        raise DatagramError(f"metrics: {e}") from None
    if not isinstance(values, dict):
        raise DatagramError("metrics are not a JSON object")
    return values


def decode_body(header: Header, data: bytes) -> Any:
    """The message in a checked datagram's body (see :func:`read_header`)."""
    at = header.body_at
    kind = header.type
    if kind in (CELL_DELTA, CELL_KEYFRAME):
        return read_cells(kind, data, at)[0]
    if kind == HEARTBEAT:
        return Heartbeat.read(data, at)
    if kind == METRICS:
        return read_metrics(data, at)
    if kind == CHAT:
        return ChatLine.read(data, at)
    if kind == WHISPER_RECEIPT:
        return WhisperReceipt.read(data, at)
    if kind == KEYFRAME_REQUEST:
        return read_request(data, at)
    if kind == RESUMED:
        return Resumed.read(data, at)
    if kind == HANDOFF:
        return Handoff.read(data, at)
    if kind == WHERE:
        return Where.read(data, at)
    if kind == HERE:
        return Here.read(data, at)
    if len(data) != at:
        raise DatagramError("a bye has no body")
    return None
