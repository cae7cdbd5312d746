"""Several cells' records in one datagram, and the tiles of cells that share a group."""

from __future__ import annotations

import time
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmo.cluster import codec
from mmo.cluster.groups import CellGroups, cell_block
from mmo.monitor.listener import zone_groups
from mmo.monitor.model import ClusterModel
from mmo.testing import FakeCluster, FakePlayer
from mmo.wire import messages as m
from mmo.world.grid import Zone, ZoneSpec

KEY = b"k" * 32
ROOM = codec.MAX_DATAGRAM - codec.Sealer(KEY, "node-a", 1).overhead
f32 = st.floats(min_value=0, max_value=100_000, width=32)
ids = st.integers(0, 0xFFFFFFFF)

cell_updates = st.tuples(
    st.sampled_from(["world", "zoné", "w"]), st.integers(0, 5000),
    st.lists(st.tuples(ids, st.integers(0, 1), f32, f32, st.text(max_size=12)), max_size=40),
    st.lists(st.tuples(ids, f32, f32), max_size=120),
    st.lists(st.tuples(ids, ids), max_size=60),
)


def records_of(zone, cell, fulls, moves, gones, seq=1):
    return codec.cell_bodies(zone, cell, seq, [codec.full_item(*f) for f in fulls],
                             [codec.move_item(*mv) for mv in moves], gones, ROOM)


@given(st.lists(cell_updates, min_size=1, max_size=12), st.booleans())
def test_the_records_of_several_cells_round_trip_in_few_datagrams(updates, keyframe):
    kind = codec.CELL_KEYFRAME if keyframe else codec.CELL_DELTA
    records, want = [], []
    for i, (zone, cell, fulls, moves, gones) in enumerate(updates):
        mine = records_of(zone, cell, fulls, moves, gones, seq=100 * i + 1)
        records += mine
        want += [(zone, cell, 100 * i + 1 + j, j, len(mine)) for j in range(len(mine))]
    bodies = codec.pack_records(records, ROOM)
    assert all(len(b) <= ROOM for b in bodies)
    assert b"".join(bodies) == b"".join(records)
    # Greedy: no two neighbouring bodies would have fit in one.
    for a, b in zip(bodies, bodies[1:], strict=False):
        assert len(a) + len(b) > ROOM
    got = []
    for body in bodies:
        got += codec.decode_body(codec.Header(kind, 1, 1, "a", 0), body)
    assert [(u.zone, u.cell, u.seq, u.part, u.parts) for u in got] == want
    assert all(u.keyframe == keyframe for u in got)
    # Every record's items, in order, whoever shares its datagram.
    at = 0
    for zone, cell, fulls, moves, gones in updates:
        n = len(records_of(zone, cell, fulls, moves, gones))
        mine = got[at : at + n]
        at += n
        assert [f for u in mine for f in u.fulls] == [tuple(f) for f in fulls]
        assert [mv for u in mine for mv in u.moves] == [tuple(mv) for mv in moves]
        assert [g for u in mine for g in u.gones] == [tuple(g) for g in gones]
    assert at == len(got)


@given(st.lists(cell_updates, min_size=1, max_size=6), st.data())
def test_records_not_wanted_are_skipped_and_counted(updates, data):
    body = b"".join(records_of(*u)[0] for u in updates if len(records_of(*u)) == 1)
    if not body:
        return
    every, none = codec.read_cells(codec.CELL_DELTA, body, 0)
    assert none == 0
    keep = data.draw(st.sets(st.sampled_from([(u.zone, u.cell) for u in every])))
    got, skipped = codec.read_cells(codec.CELL_DELTA, body, 0, keep.__contains__)
    assert got == [u for u in every if (u.zone, u.cell) in keep]
    assert skipped == len(every) - len(got)


def two_records() -> bytes:
    a = records_of("world", 1, [(1, 0, 1.0, 2.0, "ann")], [(2, 3.0, 4.0)], [(3, 4)])[0]
    b = records_of("world", 2, [], [(5, 6.0, 7.0)], [])[0]
    return a + b


@pytest.mark.parametrize("body", [
    b"",                                    # no record at all
    two_records()[:-1],                     # the last record cut short
    two_records() + b"\x00",                # a byte that is no record
    two_records() + codec.pack_str8("world") + bytes(9),  # a head cut short
    # A record claiming one more move than the body holds.
    two_records()[:-16] + b"\x00\x02" + two_records()[-14:],
])
@pytest.mark.parametrize("wanted", [None, lambda cell: False, lambda cell: True])
def test_malformed_bodies_of_several_records_are_refused_whole(body, wanted):
    with pytest.raises(codec.DatagramError):
        codec.read_cells(codec.CELL_DELTA, body, 0, wanted)


@given(st.binary(max_size=200), st.binary(max_size=60))
def test_skipping_refuses_what_reading_refuses_but_names(prefix, junk):
    """Any bytes: skipping every record gives an error exactly when reading does,
    except for entity names that are not UTF-8 (skipped unread)."""
    body = two_records() + prefix + junk
    try:
        every, _ = codec.read_cells(codec.CELL_DELTA, body, 0)
        read = None
    except codec.DatagramError as e:
        read = str(e)
    try:
        got, skipped = codec.read_cells(codec.CELL_DELTA, body, 0, lambda cell: False)
        skip = None
    except codec.DatagramError as e:
        skip = str(e)
    if read is None:
        assert skip is None and got == [] and skipped == len(every)
    elif read != "a string is not UTF-8":
        assert skip is not None


def test_a_receiver_applies_only_the_cells_it_follows_of_a_mixed_datagram():
    c = FakeCluster(["n0"], key=KEY, max_speed=100_000.0, keyframe_interval=1.0)
    alice = FakePlayer(c.nodes[0], "alice")
    alice.entity.last_move -= 1.0
    alice.send(m.Move(1, 1050, 1050))
    c.step(2)
    svc = c.services[0]
    zone = c.nodes[0].world.default_zone
    near, far = alice.entity.cell, zone.cell_at(1950, 1950)
    assert (zone.name, near) in svc.interest and (zone.name, far) not in svc.interest
    body = b"".join([
        codec.cell_bodies(zone.name, far, 1, [codec.full_item(8, 0, 1950, 1950, "trudy")],
                          [], [], ROOM)[0],
        codec.cell_bodies(zone.name, near, 1, [codec.full_item(7, 0, 1040, 1040, "mallory")],
                          [], [], ROOM)[0],
    ])
    sealer = codec.Sealer(KEY, "n9", 5, clock=c.clock.seconds)
    before = svc.stats.filtered
    c.net.inject(sealer.seal(codec.CELL_KEYFRAME, body), svc.groups.group_for(zone.name, near),
                 svc.transport.port_number)
    c.step(1)
    names = {e.name for e in c.nodes[0].world.entities.values() if e.owner == "n9"}
    assert names == {"mallory"}
    assert svc.stats.filtered == before + 1
    assert "mallory" in alice.names_seen() and "trudy" not in alice.names_seen()
    assert c.nodes[0].snapshot()["filtered"] == before + 1


def test_nodes_send_the_records_of_several_cells_in_one_datagram():
    c = FakeCluster(["n0", "n1"], key=KEY, max_speed=100_000.0, keyframe_interval=1.0,
                    cell_group_tile=3)
    watcher = FakePlayer(c.nodes[0], "watcher")
    watcher.entity.last_move -= 1.0
    watcher.send(m.Move(1, 1050, 1050))
    walkers = [FakePlayer(c.nodes[1], f"w{i}") for i in range(9)]
    for i, p in enumerate(walkers):
        p.entity.last_move -= 1.0
        p.send(m.Move(1, 950 + 100 * (i % 3), 950 + 100 * (i // 3)))
    c.step(3)
    assert len({p.entity.cell for p in walkers}) == 9
    written = [d for d, _ in c.services[1].transport.port.written
               if d[3] in (codec.CELL_DELTA, codec.CELL_KEYFRAME)]
    most = max(len(codec.decode_body(codec.read_header(d[:-16]), d[:-16])) for d in written)
    assert most >= 2
    assert {p.name for p in walkers} <= watcher.names_seen()


# -- tiles ------------------------------------------------------------------------------

BLOCK = cell_block("239.255.0.1", "auto", 16)


def test_a_tile_of_one_cell_is_the_old_mapping():
    groups = CellGroups(BLOCK)
    tiled = CellGroups(BLOCK, 1, lambda zone: 20)
    for zone in ("world", "arena", "zoné"):
        for cell in range(0, 5000, 7):
            old = BLOCK[zlib.crc32(f"{zone}\x00{cell}".encode()) % 16]
            assert groups.group_for(zone, cell) == old == tiled.group_for(zone, cell)


@pytest.mark.parametrize("tile", [2, 3])
def test_the_cells_of_a_tile_share_a_group(tile):
    cols, rows = 21, 13
    groups = CellGroups(BLOCK, tile, lambda zone: cols)
    by_tile: dict[tuple[int, int], set[str]] = {}
    for key in range(cols * rows):
        row, col = divmod(key, cols)
        by_tile.setdefault((row // tile, col // tile), set()).add(groups.group_for("world", key))
        number = (row // tile) * -(-cols // tile) + col // tile
        assert groups.tile_of("world", key) == number
        assert groups.group_for("world", key) == BLOCK[
            zlib.crc32(f"world\x00{number}".encode()) % 16]
    assert all(len(g) == 1 for g in by_tile.values())
    assert len(by_tile) == -(-cols // tile) * -(-rows // tile)
    # The tiles still spread over the block.
    assert len(set().union(*by_tile.values())) > 8


def test_the_monitor_agrees_with_the_nodes_on_tiles():
    arena = Zone("arena", 600, 600, 100.0)
    groups = CellGroups(BLOCK, 2, lambda name: arena.cols)
    wanted = {groups.group_for("arena", c) for c in range(36)}
    assert set(zone_groups(groups, arena)) == wanted
    assert len(wanted) <= 9  # 9 tiles of 2 x 2 cells


def test_the_monitor_reads_datagrams_of_several_records():
    model = ClusterModel(ZoneSpec("world", 2000, 2000), key=KEY)
    sealer = codec.Sealer(KEY, "n1", 7)
    body = codec.pack_records(
        records_of("world", 1, [(1, 0, 150.0, 50.0, "ann")], [], [])
        + records_of("other", 2, [(2, 0, 10.0, 10.0, "bob")], [], [])
        + records_of("world", 45, [(3, 0, 550.0, 250.0, "cid")], [], []), ROOM)
    assert len(body) == 1
    model.datagram_received(sealer.seal(codec.CELL_KEYFRAME, body[0]), time.time())
    assert model.counters.cell_updates == 3 and model.counters.other_zones == 1
    assert sorted(e.name for e in model.world.entities.values()) == ["ann", "cid"]
