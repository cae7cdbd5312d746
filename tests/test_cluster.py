"""Nodes sharing one world over an in-memory multicast network (no sockets, no time)."""

from __future__ import annotations

import json
import random

import pytest
from twisted.internet.interfaces import IMulticastTransport, IReactorMulticast
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from mmo.cluster import codec
from mmo.cluster.auth import verify
from mmo.cluster.groups import metrics_group
from mmo.testing import FakeCluster, FakeMulticast, FakePlayer
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode

KEY = b"k" * 32
HZ = 10


def Cluster(n: int = 3, **overrides) -> FakeCluster:
    """``n`` nodes in memory, fast players, 1 s keyframes."""
    overrides.setdefault("max_speed", 100_000.0)
    overrides.setdefault("keyframe_interval", 1.0)
    return FakeCluster([f"n{i}" for i in range(n)], key=KEY, **overrides)


def move(p: FakePlayer, x: float, y: float) -> None:
    """Move ``p`` anywhere at once (the speed check allows a second's travel)."""
    p.entity.last_move -= 1.0
    p.send(m.Move(1, x, y))


def positions(p: FakePlayer) -> dict[int, tuple[float, float]]:
    out = {}
    for msg in p.received():
        if isinstance(msg, m.Moves):
            for eid, x, y in msg.moves:
                out[eid] = (x, y)
    return out


def mirror_of(node, name: str):
    e = node.world.find_player(name)
    assert e is not None and e.owner is not None, f"no mirror of {name} on {node.node_id}"
    return e


@pytest.fixture
def three():
    c = Cluster(3)
    players = [FakePlayer(node, name) for node, name in zip(c.nodes, ["alice", "bob", "carol"], strict=True)]
    # All in cell (10, 10), away from its borders.
    for p, (x, y) in zip(players, [(1050, 1050), (1060, 1050), (1050, 1060)], strict=True):
        move(p, x, y)
    c.step(3)
    return c, players


def test_fake_network_provides_the_interfaces():
    net = FakeMulticast()
    verifyObject(IReactorMulticast, net)
    svc = Cluster(1).services[0]
    verifyObject(IMulticastTransport, svc.transport.port)


def test_players_on_three_nodes_see_each_other(three):
    c, (alice, bob, carol) = three
    assert alice.names_seen() == {"bob", "carol"}
    assert bob.names_seen() == {"alice", "carol"}
    assert carol.names_seen() == {"alice", "bob"}
    assert all(len(s.mirrors.nodes) == 2 for s in c.services)
    assert c.net.largest <= codec.MAX_DATAGRAM


def test_moves_arrive_as_deltas_and_match_the_owner(three):
    c, (alice, bob, carol) = three
    alice.received()
    move(bob, 1070, 1055)
    c.step(2)  # bob's node ticks and sends; alice's node applies it next tick
    mirror = mirror_of(c.nodes[0], "bob")
    assert positions(alice)[mirror.id] == pytest.approx((1070, 1055))
    assert (mirror.x, mirror.y) == pytest.approx((bob.entity.x, bob.entity.y))
    # No keyframe was needed: the delta carried it.
    assert c.services[0].mirrors.gaps == 0


def test_a_lone_node_records_no_changes_and_a_newcomer_gets_everything_at_once():
    c = Cluster(1)
    node = c.nodes[0]
    alice, bob = FakePlayer(node, "alice"), FakePlayer(node, "bob")
    move(alice, 1050, 1050)
    move(bob, 1060, 1050)
    c.step(2)
    move(alice, 1070, 1055)
    move(bob, 1150, 1050)  # into the next cell
    c.step(1)
    publisher = c.services[0].publisher
    # Nobody listens: who owns what is kept, and not one change.
    zone = node.world.default_zone
    assert {(cell, eid) for (_z, cell), s in publisher.streams.items() for eid in s.owned} \
        == {(alice.entity.cell, alice.entity.id), (bob.entity.cell, bob.entity.id)}
    assert bob.entity.cell != alice.entity.cell == zone.cell_at(1070, 1055)
    assert not any(s.recent or s.fresh or s.gone_to for s in publisher.streams.values())
    assert publisher.keyframes == 0
    # A second node appears: its player sees both where they stand.
    other, _ = c.add("n1")
    carol = FakePlayer(other, "carol")
    move(carol, 1055, 1060)
    c.step(3)
    assert carol.names_seen() == {"alice", "bob"}
    for p in (alice, bob):
        mirror = mirror_of(other, p.name)
        assert (mirror.x, mirror.y) == pytest.approx((p.entity.x, p.entity.y))
    # And the lone node's deltas start with the audience.
    move(bob, 1160, 1060)
    c.step(2)
    assert (mirror_of(other, "bob").x, mirror_of(other, "bob").y) == pytest.approx((1160, 1060))


def test_whether_a_cell_is_seen_elsewhere_is_kept_until_the_live_nodes_change():
    from mmo.cluster.streams import Publisher
    from mmo.world import World, ZoneSpec

    world = World([ZoneSpec("w", 1000, 1000)], cell_size=100)
    e = world.spawn("e", world.zones["w"], 150, 150)
    seen_elsewhere = {"answer": False, "asked": 0}

    def wanted(zone: str, cell: int) -> bool:
        seen_elsewhere["asked"] += 1
        return seen_elsewhere["answer"]

    publisher = Publisher(10)
    stream = None
    for tick in range(1, 4):
        world.settle()
        publisher.observe(world, tick, True, wanted)
        stream = publisher.streams[("w", e.cell)]
        world.update_views()
        world.end_tick()
        world.zones["w"].move(e, 150 + tick, 150)
    assert stream is not None and e.id in stream.owned and not stream.recent
    assert seen_elsewhere["asked"] == 1, "worked out once, not every tick"
    seen_elsewhere["answer"] = True  # the borders moved...
    world.settle()
    publisher.observe(world, 4, True, wanted)
    assert not stream.recent, "...which this node hears of when the live nodes change"
    world.end_tick()
    publisher.forget_shown()
    world.zones["w"].move(e, 160, 150)
    world.settle()
    publisher.observe(world, 5, True, wanted)
    assert stream.recent == {e.id: 5} and seen_elsewhere["asked"] == 2
    # And it goes out.
    assert [cell for _kf, _z, cell, _records, shown in publisher.bodies(5, 1200, wanted)
            if shown] == [e.cell]


def test_walking_away_gives_leave_and_groups_follow_players(three):
    c, (alice, bob, carol) = three
    svc = c.services[1]
    zone = c.nodes[1].world.default_zone
    before = set(svc.joined)
    move(bob, 1900, 1900)
    c.step(3)
    assert "bob" not in alice.names_seen() and "bob" not in carol.names_seen()
    assert any(isinstance(msg, m.Leave) for msg in alice.log)
    wanted = {svc.groups.group_for(zone.name, k) for k in zone.neighbours(bob.entity.cell)}
    wanted.add(svc.control)
    assert set(svc.joined) == wanted
    assert set(svc.transport.port.joined) == wanted
    assert svc.stats.leaves > 0 and before != wanted
    # Coming back: enter again.
    move(bob, 1005, 1005)
    c.step(3)
    assert "bob" in alice.names_seen()


def test_gap_is_counted_and_recovered_from_the_next_keyframe(three):
    c, (alice, bob, carol) = three
    n0 = c.services[0]
    cells = {codec.CELL_DELTA, codec.CELL_KEYFRAME}
    c.net.drop = lambda packet, sender, receiver: (
        receiver is n0.transport.port and packet[3] in cells)
    # Dave arrives on bob's node, in bob's cell, while alice's node hears nothing.
    dave = FakePlayer(c.nodes[1], "dave")
    move(dave, 1062, 1052)
    for x in range(1061, 1065):
        move(bob, x, 1000)
        c.step(1)
    assert "dave" not in alice.names_seen()
    c.net.drop = None
    move(bob, 1066, 1050)
    move(dave, 1063, 1053)
    c.step(1)
    # A gap in the stream; dave's move names an entity never seen: keyframe asked.
    assert n0.mirrors.gaps >= 1 and n0.mirrors.unknown_moves >= 1
    c.step(2)
    assert "dave" in alice.names_seen()
    mirror = mirror_of(c.nodes[0], "bob")
    assert (mirror.x, mirror.y) == pytest.approx((1066, 1050))


def test_without_requests_the_periodic_keyframe_recovers(three):
    c, (alice, bob, carol) = three
    n0 = c.services[0]
    c.net.drop = lambda packet, sender, receiver: (
        receiver is n0.transport.port and packet[3] == codec.CELL_DELTA)
    dave = FakePlayer(c.nodes[1], "dave")
    move(dave, 1012, 1002)
    c.step(HZ + 2)  # one keyframe interval, only keyframes get through
    assert "dave" in alice.names_seen()


def test_a_stream_going_quiet_sends_its_final_state_at_once(three):
    c, (alice, bob, carol) = three
    n0 = c.services[0]
    stream = c.services[1].publisher.streams[("world", bob.entity.cell)]
    period = c.services[1].publisher.period
    # Start right after bob's cell had its periodic keyframe, so that the
    # next one is far: only the keyframe of a stream going quiet can help.
    while (c.nodes[1].tick_number + 1 + stream.phase) % period != 0:
        c.step(1)
    c.step(1)
    # Every delta to alice's node is lost: the last move and both repeats.
    c.net.drop = lambda packet, sender, receiver: (
        receiver is n0.transport.port and packet[3] == codec.CELL_DELTA)
    move(bob, 1050, 1020)
    c.step(4)  # the move's tick, its two repeats, then the quiet keyframe
    assert (c.nodes[1].tick_number + stream.phase) % period != 0
    mirror = mirror_of(c.nodes[0], "bob")
    assert (mirror.x, mirror.y) == pytest.approx((1050, 1020))


def test_departure_lost_in_transit_is_fixed_by_an_empty_keyframe():
    c = Cluster(2)
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    move(alice, 1000, 1000)
    move(bob, 1010, 1000)
    c.step(3)
    assert "bob" in alice.names_seen()
    n0 = c.services[0]
    c.net.drop = lambda packet, sender, receiver: (
        receiver is n0.transport.port and packet[3] in (codec.CELL_DELTA, codec.CELL_KEYFRAME))
    bob.disconnect()
    c.step(5)
    assert "bob" in alice.names_seen()  # the departure was lost
    c.net.drop = None
    c.step(HZ + 1)  # within one keyframe interval
    assert "bob" not in alice.names_seen()
    assert n0.mirrors.expired_entities == 0


def test_killed_node_expires_after_three_keyframe_intervals(three):
    c, (alice, bob, carol) = three
    c.kill(1)
    c.step(int(2.5 * HZ))
    assert "bob" in alice.names_seen()
    c.step(int(1.0 * HZ))
    assert "bob" not in alice.names_seen() and "bob" not in carol.names_seen()
    assert "n1" not in c.services[0].mirrors.nodes
    assert c.services[0].mirrors.expired_nodes == 1


def test_still_entities_stay_alive_through_keyframes(three):
    c, (alice, bob, carol) = three
    c.step(5 * HZ)
    assert alice.names_seen() == {"bob", "carol"}
    assert c.services[0].mirrors.expired_entities == 0
    assert c.services[1].publisher.keyframes >= 4


def test_clean_stop_says_bye_and_restart_comes_back(three):
    c, (alice, bob, carol) = three
    c.services[1].stopService()
    c.step(2)  # the bye arrives; the next tick tells alice
    assert "bob" not in alice.names_seen()
    node, svc = c.add("n1")
    bob2 = FakePlayer(node, "bob")
    move(bob2, 1000, 1000)
    c.step(3)
    assert "bob" in alice.names_seen()
    assert bob2.names_seen() == {"alice", "carol"}


def test_forged_and_replayed_datagrams_change_nothing(three):
    c, (alice, bob, carol) = three
    n0 = c.services[0]
    zone = c.nodes[0].world.default_zone
    cell = bob.entity.cell
    group = n0.groups.group_for(zone.name, cell)
    body = codec.cell_bodies(zone.name, cell, 1, [codec.full_item(77, 0, 1000, 1000, "mallory")],
                             [], [], 1000)[0]
    forged = codec.Sealer(b"x" * 32, "evil", 1).seal(codec.CELL_DELTA, body)
    before = set(c.nodes[0].world.entities)
    port = n0.transport.port_number
    c.net.inject(forged, group, port)
    c.net.inject(b"garbage", group, port)
    c.net.inject(forged[:-1] + bytes([forged[-1] ^ 1]), group, port)
    assert n0.stats.auth_failures == 3
    # A real datagram of bob's node, sent again.
    sent = [d for d, (g, _p) in c.services[1].transport.port.written if g == group]
    c.net.inject(sent[-1], group, port)
    assert n0.stats.replays == 1
    c.step(1)
    assert set(c.nodes[0].world.entities) == before
    assert "mallory" not in alice.names_seen()
    numbers = c.nodes[0].snapshot()
    assert numbers["auth_failures"] == 3 and numbers["datagrams_dropped"] >= 4


def test_own_datagrams_are_ignored_and_strangers_cells_filtered():
    c = Cluster(2)
    c.net.multicast_all = True
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    move(alice, 100, 100)
    move(bob, 1900, 1900)
    c.step(HZ * 2)
    assert alice.names_seen() == set() and bob.names_seen() == set()
    assert c.services[0].stats.looped > 0
    assert c.services[0].mirrors.mirrors == {}


def test_a_crowded_cell_is_split_under_the_mtu():
    c = Cluster(2, max_per_ip=0)
    alice = FakePlayer(c.nodes[0], "alice")
    move(alice, 1000, 1000)
    crowd = [FakePlayer(c.nodes[1], f"bot-{i:03d}-with-a-long-name") for i in range(200)]
    for i, p in enumerate(crowd):
        move(p, 1001 + (i % 40), 1001 + i // 40)
    c.step(3)
    assert len(alice.names_seen()) == 200
    assert c.net.largest <= codec.MAX_DATAGRAM
    c.step(2 * HZ)  # keyframes of 200 entities, in parts, keep them all
    assert len(alice.names_seen()) == 200
    assert c.services[0].mirrors.expired_entities == 0


def test_zone_global_say_and_whisper_cross_nodes(three):
    c, (alice, bob, carol) = three
    for p in (alice, bob, carol):
        p.received()

    def lines(p):
        return [(x.channel, x.sender, x.text) for x in p.received() if isinstance(x, m.ChatMessage)]

    bob.send(m.Chat(m.Channel.GLOBAL, "hello all"))
    c.step(1)
    assert (m.Channel.GLOBAL, "bob", "hello all") in lines(alice)
    assert (m.Channel.GLOBAL, "bob", "hello all") in lines(carol)
    bob.send(m.Chat(m.Channel.SAY, "psst nearby"))
    bob.send(m.Chat(m.Channel.ZONE, "zone line"))
    c.step(1)
    got = lines(alice)
    assert (m.Channel.SAY, "bob", "psst nearby") in got
    assert (m.Channel.ZONE, "bob", "zone line") in got
    lines(carol)
    bob.send(m.Chat(m.Channel.WHISPER, "secret", "carol"))
    c.step(1)
    assert lines(carol) == [(m.Channel.WHISPER, "bob", "secret")]
    assert lines(alice) == []
    assert (m.Channel.WHISPER, "to carol", "secret") in lines(bob)
    bob.send(m.Chat(m.Channel.WHISPER, "hello?", "nobody"))
    c.step(HZ + 2)
    assert any(isinstance(x, m.Error) and x.code == ErrorCode.UNKNOWN_PLAYER
               for x in bob.received())


def test_metrics_datagram_has_the_seed_keys_and_goes_only_to_the_metrics_group():
    c = Cluster(2)
    FakePlayer(c.nodes[0], "alice")
    c.step(2 * HZ)
    svc = c.services[0]
    # The address after the cell block: monitors join it, nodes do not.
    assert svc.metrics_group == "239.255.0.18"
    assert svc.metrics_group not in svc.joined
    assert c.services[1].metrics_group not in c.services[1].joined
    found = []
    for data, (group, _port) in svc.transport.port.written:
        if data[3] == codec.METRICS:
            assert group == svc.metrics_group
            signed = verify(KEY, data)
            found.append(codec.decode_body(codec.read_header(signed), signed))
    # Sent every second, and never opened by the other node.
    assert len(found) >= 2
    assert c.services[1].opener.counts.get("accept", 0) > 0
    assert all(node.metrics is None for node in c.services[1].mirrors.nodes.values())
    values = found[-1]
    for key in ("connected_clients", "events_per_sec", "tick_hz", "tick_ms_p50", "tick_ms_p99",
                "bytes_in_per_sec", "bytes_out_per_sec", "owned_entities", "mirrored_entities",
                "datagrams_sent", "datagrams_received", "datagrams_dropped", "gaps",
                "auth_failures"):
        assert key in values, key
    assert values["connected_clients"] == 1 and values["tick_hz"] == pytest.approx(HZ, rel=0.2)
    assert len(json.dumps(values, separators=(",", ":"))) < codec.MAX_DATAGRAM


def test_loss_converges_within_a_keyframe_interval_after_movement_stops():
    c = Cluster(3, testing_drop_received=0.2)
    rng = random.Random(5)
    players = [FakePlayer(node, f"p{i}-{j}") for i, node in enumerate(c.nodes) for j in range(5)]
    for p in players:
        move(p, 1000 + rng.uniform(-150, 150), 1000 + rng.uniform(-150, 150))
    for _ in range(30):
        for p in players:
            e = p.entity
            move(p, e.x + rng.uniform(-20, 20), e.y + rng.uniform(-20, 20))
        c.step(1)
    c.step(HZ + 2)
    for node, svc in zip(c.nodes, c.services, strict=True):
        expected = {
            p.name: (p.entity.x, p.entity.y) for p in players
            if p.node is not node and (p.entity.zone.name, p.entity.cell) in svc.interest
        }
        actual = {mi.entity.name: (mi.entity.x, mi.entity.y) for mi in svc.mirrors.mirrors.values()}
        assert actual.keys() == expected.keys()
        for name, xy in expected.items():
            assert actual[name] == pytest.approx(xy, abs=0.01)
    assert sum(s.stats.dropped_on_purpose for s in c.services) > 0


def test_malformed_datagrams_are_logged_once_per_burst():
    c = Cluster(2)
    svc = c.services[0]
    bad = codec.Sealer(KEY, "n9", 1, clock=c.clock.seconds)
    with capturedLogs() as events:
        for _ in range(50):
            c.net.inject(bad.seal(codec.HEARTBEAT, b"\x00"), svc.control, svc.settings.mport)
        c.clock.advance(11)
        c.net.inject(bad.seal(codec.HEARTBEAT, b"\x00"), svc.control, svc.settings.mport)
    assert svc.stats.malformed == 51
    lines = [e for e in events
             if e.get("log_source") is svc and "could not be read" in str(e.get("what", ""))]
    # The first at once, then the rest of the burst in one line.
    assert [e["n"] for e in lines] == [1, 50]
    assert lines[0]["sender"] == "n9" and "truncated" in lines[0]["why"]


def test_the_metrics_group_is_after_the_cell_block_unless_set_and_never_a_node_group():
    assert metrics_group("239.255.0.1", "auto", 16, "auto") == "239.255.0.18"
    assert metrics_group("239.255.0.1", "239.255.1.0", 64, "auto") == "239.255.1.64"
    assert metrics_group("239.255.0.1", "auto", 16, "239.255.9.9") == "239.255.9.9"
    with pytest.raises(ValueError, match="control group or a cell group"):
        metrics_group("239.255.0.1", "auto", 16, "239.255.0.5")
    with pytest.raises(ValueError, match="control group or a cell group"):
        metrics_group("239.255.0.1", "auto", 16, "239.255.0.1")
    with pytest.raises(ValueError, match="is not multicast: set it"):
        metrics_group("239.255.255.200", "auto", 55, "auto")
    # A node told so stops with one line, not a traceback.
    with pytest.raises(SystemExit, match="mmo: the metrics group 239.255.0.3 is the control"):
        Cluster(1, metrics_group="239.255.0.3")
