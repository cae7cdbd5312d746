"""
The cluster's datagrams, sans-IO: bytes in, messages out, and back.

``docs/CLUSTER.md`` describes every byte.  A datagram is a header (magic,
version, type, the sender's epoch, sequence number and clock, its id), a
body whose layout depends on the type (the cell records: :mod:`.cellcodec`),
and a MAC (:mod:`mmo.cluster.auth`).
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import bounded_json
from .auth import MAC_SIZE, keyed
from .cellcodec import (
    CELL_DELTA,
    CELL_KEYFRAME,
    FULL_ITEM,
    GONE_ITEM,
    MOVE_ITEM,
    NOWHERE,
    CellUpdate,
    cell_bodies,
    cell_bodies_flat,
    full_item,
    move_item,
    pack_records,
    read_cells,
)
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
    "CELL_DELTA", "CELL_KEYFRAME", "FULL_ITEM", "GONE_ITEM", "MOVE_ITEM", "NOWHERE",
    "CellUpdate", "cell_bodies", "cell_bodies_flat", "full_item", "move_item",
    "pack_records", "read_cells",
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
