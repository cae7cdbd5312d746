"""
The fast paths of the cluster's datagrams against plain versions of the same
rules: same bytes out, same messages, verdicts, errors and mirror state in.
"""

from __future__ import annotations

import hmac
import json
import math
from hashlib import sha256
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mmo.cluster import bounded_json, cellcodec, codec
from mmo.cluster.auth import ReplayWindow, sign, verify
from mmo.cluster.fields import Reader
from mmo.cluster.mirrors import MirrorTable, RemoteNode
from mmo.cluster.opener import OPENED, Opener
from mmo.world.grid import ZoneSpec
from mmo.world.world import World

KEY = b"k" * 32
f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
ids = st.integers(0, 0xFFFFFFFF)
names = st.text(max_size=12)


# -- plain versions ----------------------------------------------------------------


def plain_read_cells(kind: int, data: bytes, at: int) -> list[codec.CellUpdate]:
    """The cell records of a body read field by field with the bounds-checked Reader."""
    r = Reader(data, at)
    if not r.left():
        raise codec.DatagramError("a cell datagram without records")
    out = []
    while r.left():
        out.append(plain_record(kind, r))
    return out


def plain_record(kind: int, r: Reader) -> codec.CellUpdate:
    zone = r.str8()
    cell, seq, part, parts, nf, nm, ng = r.unpack(struct_cell_head)
    if nf * codec.FULL_ITEM.size + nm * codec.MOVE_ITEM.size + ng * codec.GONE_ITEM.size \
            > r.left():
        raise codec.DatagramError("more records than the datagram holds")
    u = codec.CellUpdate(zone, cell, seq, kind == codec.CELL_KEYFRAME, part, parts)
    for _ in range(nf):
        eid, ekind, x, y, n = r.unpack(codec.FULL_ITEM)
        u.fulls.append((eid, ekind, x, y, r.text(n)))
    for _ in range(nm):
        u.moves.append(r.unpack(codec.MOVE_ITEM))
    for _ in range(ng):
        u.gones.append(r.unpack(codec.GONE_ITEM))
    return u


struct_cell_head = cellcodec._CELL_HEAD


def plain_open(state: dict[str, Any], data: bytes) -> tuple[str, Any, Any]:
    """The opener's rules one function after another: (verdict, header, message)."""
    sender = codec.peek_sender(data)
    if sender is not None and sender == state["node_id"]:
        return "looped", None, None
    if len(data) > codec.MAX_DATAGRAM:
        return "auth-failed", None, None
    signed = verify(KEY, data) if sender is not None else None
    if signed is None:
        return "auth-failed", None, None
    try:
        header = codec.read_header(signed)
    except codec.DatagramError as e:
        return "malformed", None, str(e)
    off = (header.sent - codec.micros(state["now"])) / 1e6
    if off > 30 or off < -30 or header.sent < state["started"]:
        return "untimely", header, None
    try:
        message = codec.decode_body(header, signed)
    except codec.DatagramError as e:
        return "malformed", header, str(e)
    verdict = state["replay"].check(header.sender, header.epoch, header.seq)
    if verdict not in OPENED:
        return verdict, header, None
    if header.type == codec.BYE:
        state["replay"].close(header.sender)
    return verdict, header, message


def plain_depth(raw: bytes, limit: int) -> int:
    """Nesting, byte by byte, strings skipped as JSON lexes them."""
    level = deepest = 0
    in_string = escaped = False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in b"[{":
            level += 1
            if level > deepest:
                deepest = level
                if deepest > limit:
                    break
        elif b in b"]}":
            level -= 1
    return deepest


# -- encoding ------------------------------------------------------------------------


@given(
    fulls=st.lists(st.tuples(ids, st.integers(0, 255), f32, f32, names), max_size=80),
    moves=st.lists(st.tuples(ids, f32, f32), max_size=200),
    gones=st.lists(st.tuples(ids, ids), max_size=200),
    seq=ids, room=st.integers(120, 1200),
)
def test_flat_cell_bodies_are_the_bytes_of_cell_bodies(fulls, moves, gones, seq, room):
    full_items = [codec.full_item(*f) for f in fulls]
    flat_moves = [v for mv in moves for v in mv]
    flat_gones = [v for g in gones for v in g]
    assert codec.cell_bodies_flat("zone", 7, seq, full_items, flat_moves, flat_gones, room) \
        == codec.cell_bodies("zone", 7, seq, full_items,
                             [codec.move_item(*mv) for mv in moves], gones, room)


@given(st.binary(min_size=1, max_size=300), st.text(min_size=1, max_size=8))
def test_the_keyed_mac_is_hmac_sha256(data, key):
    raw = key.encode()
    assert sign(raw, data) == data + hmac.digest(raw, data, sha256)[:16]
    assert verify(raw, sign(raw, data)) == data


# -- reading -------------------------------------------------------------------------


def outcome(f: Any, *args: Any) -> Any:
    try:
        return "ok", f(*args)
    except codec.DatagramError as e:
        return "error", str(e)


@st.composite
def cell_bodies(draw: Any) -> bytes:
    """
    Bodies of a few cell records, whole or damaged: cut, extended, a byte
    changed, counts lied about.
    """
    body = b""
    for _ in range(draw(st.integers(1, 3))):
        fulls = draw(st.lists(st.tuples(ids, st.integers(0, 255), f32, f32, names), max_size=5))
        moves = draw(st.lists(st.tuples(ids, f32, f32), max_size=8))
        gones = draw(st.lists(st.tuples(ids, ids), max_size=4))
        body += codec.cell_bodies(draw(st.sampled_from(["w", "zoné", ""])), draw(ids),
                                  draw(ids), [codec.full_item(*f) for f in fulls],
                                  [codec.move_item(*m) for m in moves], gones, 300)[0]
    damage = draw(st.sampled_from(["none", "cut", "extend", "flip"]))
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "extend":
        body += draw(st.binary(min_size=1, max_size=20))
    elif damage == "flip" and body:
        i = draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1:]
    return body


@given(st.one_of(cell_bodies(), st.binary(max_size=120)), st.integers(0, 3),
       st.sampled_from([codec.CELL_DELTA, codec.CELL_KEYFRAME]))
def test_the_cell_reader_gives_the_plain_readers_update_or_error(body, at, kind):
    data = bytes(at) + body
    got = outcome(lambda *a: codec.read_cells(*a)[0], kind, data, at)
    want = outcome(plain_read_cells, kind, data, at)
    if got[0] == "ok" and want[0] == "ok":
        # NaN is not equal to itself: compare the packed records.
        assert repr(got[1]) == repr(want[1])
    else:
        assert got == want


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.binary(max_size=3),
                          st.integers(-40, 40)), max_size=25))
def test_the_opener_gives_the_plain_verdicts(steps):
    """
    Datagrams of two senders and of the opener's own id, some replayed,
    damaged or stamped out of time: the opener and the plain rules agree.
    """
    t = [1_700_000_000.0]
    sealers = [codec.Sealer(KEY, name, 5, lambda: t[0]) for name in ("a", "bb", "me")]
    opener = Opener(KEY, node_id="me", clock=lambda: t[0])
    opener.start()
    state = {"node_id": "me", "now": t[0], "started": opener.started, "replay": ReplayWindow()}
    sent: list[bytes] = []
    for who, what, junk, shift in steps:
        sealer = sealers[who % 3]
        if what == 0 and sent:
            data = sent[shift % len(sent)]
        elif what == 1:
            body = codec.cell_bodies("w", 3, 1, [], [codec.move_item(1, 2.0, 3.0)], [], 900)[0]
            data = sealer.seal(codec.CELL_DELTA, body)
        elif what == 2:
            data = sealer.seal(codec.HEARTBEAT, codec.Heartbeat(1, 2, 3, 100.0, 1000, "h",
                                                                 "v").body())
        elif what == 3:
            data = sealer.seal(codec.BYE, junk)
        elif what == 4:
            data = sealer.seal(codec.CELL_DELTA, junk)
        else:
            data = sealer.seal(codec.CELL_KEYFRAME, b"")
            i = shift % len(data)
            data = data[:i] + junk + data[i + 1:]
        sent.append(data)
        t[0] = 1_700_000_000.0 + shift
        state["now"] = t[0]
        opened = opener.open(data)
        verdict, header, message = plain_open(state, data)
        if verdict == "untimely":
            assert opened.verdict in ("too-old", "too-new", "before-start")
        else:
            assert opened.verdict == verdict
        assert opened.header == header
        if opened.ok:
            assert repr(opened.message) == repr(message)
        elif verdict == "malformed":
            assert opened.why == message


def test_a_sender_id_running_into_the_mac_is_malformed_without_a_header():
    """The id's length says more than the signed part holds: the MAC's bytes are no id."""
    t = 1_700_000_000.0
    opener = Opener(KEY, node_id="me", clock=lambda: t)
    for seq in range(1, 200):
        signed = codec.HEAD.pack(codec.MAGIC, codec.VERSION, codec.HEARTBEAT, 1, seq,
                                 codec.micros(t), 2) + b"a"
        data = sign(KEY, signed)
        if data[len(signed)] < 0x80:  # "a" and the MAC's first byte read as an id
            break
    opened = opener.open(data)
    assert (opened.verdict, opened.header, opened.why) == ("malformed", None,
                                                          "datagram is truncated")


# -- JSON ---------------------------------------------------------------------------


@given(st.one_of(st.binary(max_size=60),
                 st.lists(st.sampled_from([b'"', b"\\", b"[", b"]", b"{", b"}", b"a", b":"]),
                          max_size=40).map(b"".join)),
       st.integers(0, 10))
def test_depth_is_the_byte_by_byte_nesting(raw, limit):
    assert bounded_json.depth(raw, limit) == plain_depth(raw, limit)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def plain_loads(raw: bytes) -> Any:
    """The bounded reader's rules with a walk over the whole value."""
    def plain(v: Any) -> bool:
        if isinstance(v, str):
            try:
                v.encode()
            except UnicodeEncodeError:
                return False
            return True
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, dict):
            return all(plain(k) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return True
    if len(raw) > 1200 or plain_depth(raw, 8) > 8:
        return "error"
    try:
        def no(name: str) -> Any:
            raise ValueError(name)
        value = json.loads(raw.decode(), parse_constant=no)
    except ValueError:
        return "error"
    return value if plain(value) else "error"


@given(json_values)
def test_bounded_json_reads_what_the_plain_rules_read(value):
    for raw in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"), json.dumps(value).replace("1", "1e999").encode(),
            json.dumps(value).replace("a", "\\ud800").encode()):
        try:
            got = bounded_json.loads(raw, 1200, 8)
        except ValueError:
            got = "error"
        assert repr(got) == repr(plain_loads(raw))


# -- applying ----------------------------------------------------------------------------


coords = st.one_of(st.floats(-50, 1050, width=32), st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -0.0, 1000.0]))


@given(st.lists(st.tuples(st.integers(1, 6), coords, coords), max_size=30))
def test_moves_place_mirrors_clamped_and_refuse_what_is_not_finite(moves):
    world = World([ZoneSpec.parse("w:1000x1000")], 100.0)
    table = MirrorTable(world, 10.0)
    node = RemoteNode("n", 1, 0.0)
    fulls = [(i, 0, 10.0 * i, 10.0 * i, f"p{i}") for i in range(1, 5)]
    table.apply(node, codec.CellUpdate("w", 0, 1, True, 0, 1, fulls), 0.0)
    where = {eid: (x, y) for eid, _k, x, y, _n in fulls}
    rejected = unknown = 0
    for seq, (eid, x, y) in enumerate(moves, start=2):
        table.apply(node, codec.CellUpdate("w", 0, seq, moves=[(eid, x, y)]), 1.0)
        if eid not in where:
            unknown += 1
        elif not (math.isfinite(x) and math.isfinite(y)):
            rejected += 1
        else:
            where[eid] = (min(max(x, 0.0), 1000.0), min(max(y, 0.0), 1000.0))
    assert (table.rejected_records, table.unknown_moves) == (rejected, unknown)
    for eid, (x, y) in where.items():
        e = table.find("n", eid)
        assert e is not None and (e.x, e.y) == (x, y)
