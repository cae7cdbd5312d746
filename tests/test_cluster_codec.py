"""The cluster's datagram codec and authentication, with no I/O."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmo.cluster import codec
from mmo.cluster.auth import (
    ACCEPT,
    REPLAY,
    RESTARTED,
    STALE_EPOCH,
    KeyFileError,
    ReplayWindow,
    load_or_create_key,
    verify,
)

KEY = b"k" * 32
names = st.text(min_size=0, max_size=20)
f32 = st.floats(min_value=0, max_value=100_000, width=32)
ids = st.integers(0, 0xFFFFFFFF)


def open_datagram(data: bytes, key: bytes = KEY):
    signed = verify(key, data)
    assert signed is not None
    header = codec.read_header(signed)
    return header, codec.decode_body(header, signed)


@given(
    fulls=st.lists(st.tuples(ids, st.integers(0, 1), f32, f32, names), max_size=150),
    moves=st.lists(st.tuples(ids, f32, f32), max_size=300),
    gones=st.lists(st.tuples(ids, ids), max_size=300),
    keyframe=st.booleans(),
)
def test_cell_updates_round_trip_and_split_under_the_mtu(fulls, moves, gones, keyframe):
    sealer = codec.Sealer(KEY, "node-a", 7)
    bodies = codec.cell_bodies(
        "world", 42, 10, [codec.full_item(*f) for f in fulls],
        [codec.move_item(*mv) for mv in moves], gones, codec.MAX_DATAGRAM - sealer.overhead)
    got_f, got_m, got_g = [], [], []
    kind = codec.CELL_KEYFRAME if keyframe else codec.CELL_DELTA
    for i, body in enumerate(bodies):
        data = sealer.seal(kind, body)
        assert len(data) <= codec.MAX_DATAGRAM
        header, (u,) = open_datagram(data)
        assert (header.sender, header.epoch, header.type) == ("node-a", 7, kind)
        assert (u.zone, u.cell, u.seq, u.part, u.parts, u.keyframe) == (
            "world", 42, 10 + i, i, len(bodies), keyframe)
        got_f += u.fulls
        got_m += u.moves
        got_g += u.gones
    assert got_f == [tuple(f) for f in fulls]
    assert got_m == [tuple(mv) for mv in moves]
    assert got_g == [tuple(g) for g in gones]


@given(st.binary(max_size=300))
def test_any_bytes_give_a_message_or_a_clean_error(data):
    try:
        header = codec.read_header(data)
        codec.decode_body(header, data)
    except codec.DatagramError:
        pass
    assert verify(KEY, data) is None or len(data) > 16


def test_control_messages_round_trip():
    sealer = codec.Sealer(KEY, "n1", 3)
    room = codec.MAX_DATAGRAM - sealer.overhead
    hb = codec.Heartbeat(4000, 12, 40, 100.0, 1000, "127.0.0.1", "0.1.0")
    assert open_datagram(sealer.seal(codec.HEARTBEAT, hb.body()))[1] == hb
    line = codec.ChatLine(3, 5, 0, "world", "bob", "", "héllo " * 400)
    data = sealer.seal(codec.CHAT, line.body(room))
    assert len(data) <= codec.MAX_DATAGRAM
    got = open_datagram(data)[1]
    assert got.sender == "bob" and line.text.startswith(got.text) and len(got.text) > 100
    r = codec.WhisperReceipt(9, "n1", "bob", "carol")
    assert open_datagram(sealer.seal(codec.WHISPER_RECEIPT, r.body()))[1] == r
    cells = [("world", i) for i in range(400)]
    out = []
    for body in codec.request_bodies(cells, room):
        data = sealer.seal(codec.KEYFRAME_REQUEST, body)
        assert len(data) <= codec.MAX_DATAGRAM
        out += open_datagram(data)[1]
    assert out == cells
    values = {"connected_clients": 3, "refusals": {"x" * 50: 1},
              "big": {str(i): i for i in range(500)}}
    got = open_datagram(sealer.seal(codec.METRICS, codec.metrics_body(values, room)))[1]
    assert got == {"connected_clients": 3}
    assert open_datagram(sealer.seal(codec.BYE, b""))[1] is None
    first, second = (int.from_bytes(sealer.seal(codec.BYE, b"")[12:20], "big") for _ in "ab")
    assert second == first + 1 == sealer.seq


def test_wrong_key_and_tampering_fail_verification():
    data = codec.Sealer(KEY, "n1", 1).seal(codec.BYE, b"")
    assert verify(KEY, data) is not None
    assert verify(b"x" * 32, data) is None
    assert verify(KEY, data[:5] + b"\xff" + data[6:]) is None
    assert verify(KEY, data[:10]) is None


def test_replay_window():
    w = ReplayWindow(window=8)
    assert w.check("a", 5, 10) == ACCEPT
    assert w.check("a", 5, 10) == REPLAY
    assert w.check("a", 5, 12) == ACCEPT
    assert w.check("a", 5, 11) == ACCEPT  # late but new
    assert w.check("a", 5, 11) == REPLAY
    assert w.check("a", 5, 3) == REPLAY  # older than the window
    assert w.check("a", 5, 100) == ACCEPT
    assert w.check("a", 4, 101) == STALE_EPOCH
    assert w.check("a", 6, 1) == RESTARTED
    assert w.check("a", 6, 1) == REPLAY
    assert w.check("b", 1, 1) == ACCEPT


def test_key_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "cluster.key"
    key = load_or_create_key(str(path))
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(str(path)) == key
    path.write_text("not hex")
    with pytest.raises(KeyFileError):
        load_or_create_key(str(path))
    path.write_text("abcd")
    with pytest.raises(KeyFileError):
        load_or_create_key(str(path))


# -- any bytes: a message or the codec's error, with bounded work ---------------------

HB = codec.Heartbeat(4000, 2, 3, 100.0, 1000, "127.0.0.1", "0.1.0")
SAMPLES: dict[int, list[bytes]] = {
    codec.CELL_DELTA: codec.cell_bodies(
        "world", 42, 1, [codec.full_item(1, 0, 10.0, 20.0, "ann"), codec.full_item(2, 1, 5, 5, "")],
        [codec.move_item(3, 1.5, 2.5)], [(4, 43), (5, codec.NOWHERE)], 1000),
    codec.HEARTBEAT: [HB.body()],
    codec.METRICS: [codec.metrics_body({"node_id": "a", "tick": 3, "refusals": {"full": 1},
                                        "tick_ms_p99": 1.5, "list": [1, [2, {"x": None}]]},
                                       1000)],
    codec.CHAT: [codec.ChatLine(0, 7, 0, "world", "bob", "", "hi").body(1000),
                 codec.ChatLine(2, 0, 9, "", "bob", "carol", "psst").body(1000)],
    codec.WHISPER_RECEIPT: [codec.WhisperReceipt(9, "n1", "bob", "carol").body()],
    codec.KEYFRAME_REQUEST: codec.request_bodies([("world", 1), ("other", 2)], 1000),
    codec.BYE: [b""],
    codec.RESUMED: [codec.Resumed(b"12345678", 1_700_000_000, "alice").body()],
    codec.WHERE: [codec.Where(7, "alice").body()],
    codec.HERE: [codec.Here(7, 1_700_000_000.5, 1.5, 2.5, "n1", "alice", "world").body()],
    codec.HANDOFF: [codec.Handoff("n2", "alice", "world", 7, 1.5, 2.5, b'{"hp":3}').body(1000),
                    codec.Handoff("n2", "bob", "world", 8, 1.5, 2.5, None).body(1000)],
}
# The records of several cells in one body.
SAMPLES[codec.CELL_DELTA] += codec.pack_records(
    SAMPLES[codec.CELL_DELTA] + codec.cell_bodies("zoné", 7, 9, [], [codec.move_item(8, 1, 2)],
                                                  [], 1000), 1000)
SAMPLES[codec.CELL_KEYFRAME] = SAMPLES[codec.CELL_DELTA]


def decode_as(kind: int, body: bytes):
    """The body decoder of ``kind``, through the one entry point the opener uses."""
    return codec.decode_body(codec.Header(kind, 1, 1, "a", 0), body)


@st.composite
def damaged_bodies(draw) -> tuple[int, bytes]:
    """A real body of some type, then a few bytes flipped, cut, inserted or overwritten."""
    kind = draw(st.sampled_from(sorted(codec.TYPES)))
    data = bytearray(draw(st.sampled_from(SAMPLES[kind])))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "max"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "max":
            # A count or length at its largest: nothing after it to back it.
            data[at:at + 2] = b"\xff\xff"
    return kind, bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                              max_size=4),
    max_leaves=20)


def message_or_error(decode, data: bytes) -> None:
    try:
        decode(data)
    except codec.DatagramError:
        pass


@given(kind=st.sampled_from(sorted(codec.TYPES)), data=st.binary(max_size=1300))
def test_every_decoder_gives_any_bytes_a_message_or_the_codec_error(kind, data):
    message_or_error(lambda d: decode_as(kind, d), data)
    message_or_error(codec.read_header, data)
    assert codec.peek_sender(data) is None or isinstance(codec.peek_sender(data), str)


@given(damaged_bodies())
def test_every_decoder_gives_damaged_bodies_a_message_or_the_codec_error(case):
    kind, data = case
    message_or_error(lambda d: decode_as(kind, d), data)


@given(json_values, st.integers(0, 900))
def test_metrics_of_any_json_and_any_nesting_give_an_object_or_the_codec_error(value, deep):
    text = json.dumps(value)
    for raw in (text.encode(), ("[" * deep + text + "]" * deep).encode(),
                ('{"a":' * deep + text + "}" * deep).encode()):
        try:
            got = codec.read_metrics(raw, 0)
        except codec.DatagramError:
            continue
        assert isinstance(got, dict)


@pytest.mark.parametrize("raw", [
    b"[" * 1100, b'{"a":' * 200 + b"1" + b"}" * 200, b'{"a":[[[[[[[[[1]]]]]]]]]}',
    b'{"a":NaN}', b'{"a":-Infinity}', b'{"a":1e999}', b'{"a":"\\ud800"}', b"\xff",
    b'{"a":1}' + b" " * 1200, b"[1]", b"",
])
def test_metrics_beyond_the_bounds_are_the_codec_error(raw):
    with pytest.raises(codec.DatagramError):
        codec.read_metrics(raw, 0)


def test_metrics_within_the_bounds_are_read():
    assert codec.read_metrics(b'{"a":{"b":[1,"]]]",{"c":2.5}]}}', 0) == {
        "a": {"b": [1, "]]]", {"c": 2.5}]}}


@pytest.mark.parametrize("kind, body", [
    # Counts at their largest, with no records behind them: refused before any is read.
    (codec.CELL_DELTA, codec.pack_str8("world") + bytes(10) + b"\xff\xff" * 3),
    (codec.KEYFRAME_REQUEST, b"\xff" + codec.pack_str8("world")),
    # A heartbeat whose cell size is not a positive number.
    (codec.HEARTBEAT, codec.Heartbeat(1, 1, 1, float("nan"), 1, "", "").body()),
    (codec.HEARTBEAT, codec.Heartbeat(1, 1, 1, -1.0, 1, "", "").body()),
])
def test_counts_and_values_are_checked_before_anything_is_built(kind, body):
    with pytest.raises(codec.DatagramError):
        decode_as(kind, body)


def test_a_header_longer_than_a_datagram_is_the_codec_error():
    data = codec.Sealer(KEY, "n1", 1).seal(codec.BYE, b"")[:-16] + bytes(2000)
    with pytest.raises(codec.DatagramError, match="longer than a datagram"):
        codec.read_header(data)


def test_the_header_carries_the_senders_clock():
    now = [1_700_000_000.5]
    sealer = codec.Sealer(KEY, "n1", 7, clock=lambda: now[0])
    header, _ = open_datagram(sealer.seal(codec.BYE, b""))
    assert (header.sent, header.epoch, header.seq) == (1_700_000_000_500_000, 7, 1)
    now[0] += 2.25
    assert open_datagram(sealer.seal(codec.BYE, b""))[0].sent == 1_700_000_002_750_000
    assert codec.VERSION == 3 and codec.micros(-1.0) == 0


def test_the_worked_example_of_the_docs_is_what_the_codec_writes():
    doc = (Path(__file__).parent.parent / "docs" / "CLUSTER.md").read_text()
    block = doc.split("<!-- worked example -->")[1].split("```")[1]
    data = bytes.fromhex(" ".join(
        m.group(1) for line in block.splitlines()
        if (m := re.match(r"((?:[0-9a-f]{2} )*[0-9a-f]{2})(?:\s|$)", line))))
    sealer = codec.Sealer(KEY, "n1", 1_700_000_000_000_000, clock=lambda: 1_700_000_000.25)
    assert data == sealer.seal(codec.BYE, b"")
    header, message = open_datagram(data)
    assert (header.type, header.sender, header.sent, message) == (
        codec.BYE, "n1", 1_700_000_000_250_000, None)
