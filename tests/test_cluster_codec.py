"""The cluster's datagram codec and authentication, with no I/O."""

from __future__ import annotations

import os
import stat

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
        header, u = open_datagram(data)
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
