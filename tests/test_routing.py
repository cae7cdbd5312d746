"""
Which nodes hear of a handoff: the new owner and the nodes that mirror the
player, on the group of its cell; not every node of the cluster.
"""

from __future__ import annotations

from typing import Any

from mmo.cluster import codec
from mmo.cluster.auth import MAC_SIZE
from mmo.server.handoff import GHOST_SECONDS
from mmo.testing.cluster import FakeCluster, MemoryBus, MemoryTransport
from mmo.testing.node import FakePlayer
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode
from mmo.world.regions import FOLLOW_LIMIT, owners_follow

#: 2,000 x 2,000 units of 100-unit cells, regions of 5 cells (4 x 4): a
#: owns the south-west region, b the one east of it, c the rest of the west
#: half, d the east half, far from the walker.
PINS = ["world:0,0=a", "world:1,0=b", "world:0-1,1-3=c", "world:2-3,0-3=d"]
#: Enough groups for nodes far apart to share few of them (as over Redis).
GROUPS = 4096
#: What every node of the cluster heard of each handoff, resume and
#: keyframe request before (all on the control group).
ROUTED = {codec.KEYFRAME_REQUEST, codec.RESUMED, codec.HANDOFF}


def cluster(**overrides: Any) -> FakeCluster:
    c = FakeCluster(["a", "b", "c", "d"], bus=MemoryBus(), placement="regions",
                    zone=["world:2000x2000"], region_map=PINS, max_speed=1000.0,
                    cell_group_count=GROUPS, **overrides)
    c.step(3)
    for node in c.nodes:
        assert node.placement.ownership.nodes == {"a", "b", "c", "d"}
    return c


def player_at(node: Any, name: str, x: float, y: float, zone: str = "world") -> FakePlayer:
    node.store.authenticate(name, "pw", True)
    node.store.save_state(name, {"zone": zone, "x": x, "y": y, "data": {"gold": 7}})
    return FakePlayer(node, name)


def seen(watcher: FakePlayer, name: str) -> list[int]:
    watcher.received()
    return [eid for eid, n in watcher.known.items() if n == name]


def heard(bus: MemoryBus) -> dict[str, list[int]]:
    """From now on, the types of the datagrams each node receives, by node id."""
    got: dict[str, list[int]] = {}

    def spy(data: bytes, sender: MemoryTransport, receiver: MemoryTransport) -> bool:
        got.setdefault(receiver.source, []).append(data[3])
        return False

    bus.drop = spy
    return got


def sent_kinds(transport: Any) -> list[int]:
    return [data[3] for _, data in transport.sent]


def test_only_the_new_owner_and_the_watchers_nodes_hear_of_a_handoff() -> None:
    c = cluster()
    a, b, cn, d = c.nodes
    walker = player_at(a, "walker", 480.0, 480.0)
    north = player_at(cn, "north", 510.0, 530.0)   # on c, looking at the border
    west = player_at(a, "west", 440.0, 470.0)      # on a, next to the walker
    far = player_at(d, "far", 1800.0, 1800.0)      # on d, far from all this
    c.step(5)
    [north_id] = seen(north, "walker")
    [west_id] = seen(west, "walker")
    assert not b.sessions, "b has no player: nothing of b's sees where the walker goes"
    got = heard(c.bus)  # type: ignore[arg-type]
    x, seq, redirect = 480.0, 0, None
    while redirect is None:
        x += 8.0
        seq += 1
        walker.send(m.Move(seq, x, 480.0))
        c.step(1)
        redirect = next((msg for msg in walker.received() if isinstance(msg, m.Redirect)), None)
        assert x < 600, "never handed on"
    # b heard the Handoff though none of its players sees that cell: it
    # follows every cell of its regions.
    assert "walker" in b.placement.handoffs.arrivals
    assert codec.HANDOFF in got["b"]
    there = FakePlayer(b, "walker", token=redirect.token)
    assert there.entity.data == {"gold": 7}
    for _ in range(5):
        x += 8.0
        seq += 1
        there.send(m.Move(seq, x, 480.0))
        c.step(1)
    # The watchers' nodes heard it too, and their players saw one entity walk on.
    assert codec.HANDOFF in got["c"]
    for watcher, eid in ((north, north_id), (west, west_id)):
        assert seen(watcher, "walker") == [eid]
        assert not any(isinstance(msg, m.Leave) and eid in msg.entity_ids for msg in watcher.log)
    assert cn.world.entities[north_id].x == x and cn.world.entities[north_id].owner == "b"
    # d heard none of it: no Handoff, no Resumed, no keyframe request.
    assert got["d"], "d still hears the cluster (heartbeats, metrics)"
    assert not ROUTED & set(got["d"])
    assert "far" in d.sessions and far.entity.x == 1800.0
    # Nobody was told of the walker's resume at b: a had let it go, and
    # only b takes a token made out to b while b lives.
    assert codec.RESUMED not in sent_kinds(b.cluster.transport)  # type: ignore[union-attr]


def test_a_handoff_goes_on_the_group_of_the_players_cell() -> None:
    c = cluster()
    a, b, _, _ = c.nodes
    walker = player_at(a, "walker", 495.0, 480.0)
    c.step(3)
    transport = a.cluster.transport  # type: ignore[union-attr]
    before = len(transport.sent)
    walker.send(m.Move(1, 535.0, 480.0))
    c.step(1)
    handoffs = [(group, data) for group, data in transport.sent[before:]
                if data[3] == codec.HANDOFF]
    zone = a.world.zones["world"]
    cell = zone.cell_at(535.0, 480.0)
    assert [group for group, _ in handoffs] == [a.cluster.groups.group_for("world", cell)]
    assert b.cluster.groups.group_for("world", cell) in b.cluster.transport.joined
    assert ("world", cell) in b.cluster.interest


def test_keyframe_requests_go_on_the_groups_of_their_cells() -> None:
    c = cluster()
    svc = c.services[0]
    cells = [("world", k) for k in range(0, 400, 7)]
    before = len(svc.transport.sent)
    svc.request_keyframes(cells)
    asked: list[tuple[str, int]] = []
    for group, data in svc.transport.sent[before:]:
        assert data[3] == codec.KEYFRAME_REQUEST
        header = codec.read_header(data[:-MAC_SIZE])
        wanted = codec.decode_body(header, data[:-MAC_SIZE])
        assert {svc.groups.group_for(z, k) for z, k in wanted} == {group}
        asked.extend(wanted)
    assert sorted(asked) == sorted(cells)


def test_a_node_follows_every_cell_of_its_regions_as_the_owners_change() -> None:
    # b's pin holds once b is live.
    c = FakeCluster(["a"], bus=MemoryBus(), placement="regions", zone=["world:2000x2000"],
                    cell_group_count=GROUPS, region_map=["world:2-3,0-3=b"])
    (a,) = c.nodes
    svc = c.services[0]
    everything = {("world", k) for k in range(400)}
    c.step(2)
    # Alone, it owns (and follows) the whole zone.
    assert set(svc.interest.cells) == everything and svc.interest.owned == everything
    c.add("b")
    c.step(3)
    b = c.nodes[1]
    east = {("world", y * 20 + x) for y in range(20) for x in range(10, 20)}
    assert b.cluster.interest.owned == east  # type: ignore[union-attr]
    assert svc.interest.owned == everything - east
    # No player on either: what each follows is its land, and its groups.
    for node in c.nodes:
        cl = node.cluster
        wanted = {cl.groups.group_for(z, k) for z, k in cl.interest.cells}  # type: ignore[union-attr]
        assert set(cl.transport.joined) == wanted | {cl.control}  # type: ignore[union-attr]
    # b's players see into a's land: those cells count twice on b, and stay
    # followed by b when the player goes.
    p = player_at(b, "pat", 1020.0, 1020.0)
    c.step(2)
    assert b.cluster.interest.cells[("world", 10 * 20 + 9)] == 1  # type: ignore[union-attr]
    assert b.cluster.interest.cells[("world", 10 * 20 + 10)] == 2  # type: ignore[union-attr]
    p.disconnect()
    c.step(2)
    assert set(b.cluster.interest.cells) == east  # type: ignore[union-attr]
    # b dies: a owns everything again once it expires.
    c.kill(1)
    c.step(int(svc.expiry * 10) + 10)
    assert svc.interest.owned == everything
    assert len(svc.transport.joined) == len(
        {svc.groups.group_for(z, k) for z, k in everything}) + 1


def test_with_connection_placement_a_node_follows_only_what_its_players_see() -> None:
    c = FakeCluster(["a", "b"], bus=MemoryBus(), zone=["world:2000x2000"],
                    cell_group_count=GROUPS)
    c.step(3)
    for svc in c.services:
        assert not svc.interest.owned and not svc.interest.cells
        assert set(svc.transport.joined) == {svc.control}


def test_in_a_zone_too_large_to_follow_handoffs_go_on_the_control_group() -> None:
    assert owners_follow(256, 256) and not owners_follow(257, 256)
    assert FOLLOW_LIMIT == 256 * 256
    # 30,000 units of 100-unit cells: 90,000 cells.
    c = FakeCluster(["a", "b"], bus=MemoryBus(), placement="regions",
                    zone=["big:30000x30000"], region_map=["big:0,0=a", "big:1,0=b"],
                    max_speed=1000.0)
    c.step(3)
    a, b = c.nodes
    assert not a.cluster.interest.owned  # type: ignore[union-attr]
    walker = player_at(a, "walker", 495.0, 480.0, zone="big")
    c.step(2)
    transport = a.cluster.transport  # type: ignore[union-attr]
    before = len(transport.sent)
    walker.send(m.Move(1, 535.0, 480.0))
    c.step(1)
    assert [g for g, data in transport.sent[before:] if data[3] == codec.HANDOFF] \
        == [a.cluster.control]  # type: ignore[union-attr]
    assert "walker" in b.placement.handoffs.arrivals


# -- tokens made out to a node --------------------------------------------------------------


def two() -> FakeCluster:
    c = FakeCluster(["a", "b"], bus=MemoryBus(), placement="regions",
                    zone=["world:1000x1000"], region_map=["world:0,0-1=a", "world:1,0-1=b"])
    c.step(3)
    return c


def test_a_redirects_token_is_sent_on_to_its_node_while_it_lives_and_taken_there_once() -> None:
    c = two()
    a, b = c.nodes
    token = a.resumes.book.mint("carol", "world", 700.0, 200.0, for_node="b")  # type: ignore[union-attr]
    p = FakePlayer(a, "carol", login=False)
    p.send(m.Hello(), m.Resume(token))
    sent = p.expect(m.Redirect)
    assert sent.token == token and (sent.host, sent.port) == ("127.0.0.1", b.settings.node.tcp)
    assert a.snapshot()["resumes_sent_on"] == 1 and a.snapshot()["resumes"] == 0
    there = FakePlayer(b, "carol", token=token)
    assert "carol" in b.sessions and there.entity.x == 700.0
    # Taken: at b again, or at a (which sends it on to b), it is refused.
    for node in (b, a):
        late = FakePlayer(node, "mallory", login=False)
        late.send(m.Hello(), m.Resume(token))
        c.step(1)
        msgs = late.received()
        redirect = next((msg for msg in msgs if isinstance(msg, m.Redirect)), None)
        if redirect is not None:
            late = FakePlayer(b, "mallory", login=False)
            late.send(m.Hello(), m.Resume(redirect.token))
            msgs = late.received()
        assert [msg.code for msg in msgs if isinstance(msg, m.Error)] == [ErrorCode.TOKEN_REFUSED]
    assert b.sessions["carol"] is there.session and not there.session.ended


def test_a_login_redirects_resume_still_tells_every_node() -> None:
    # No handoff brought the player: another node may still have a session of it.
    c = two()
    a, b = c.nodes
    a.store.authenticate("dan", "pw", True)
    a.store.save_state("dan", {"zone": "world", "x": 700.0, "y": 200.0})
    first = FakePlayer(a, "dan", login=False)
    first.send(m.Hello(), m.Login("dan", "pw"))
    sent = first.expect(m.Redirect)
    before = len(b.cluster.transport.sent)  # type: ignore[union-attr]
    FakePlayer(b, "dan", token=sent.token)
    resumed = [g for g, data in b.cluster.transport.sent[before:]  # type: ignore[union-attr]
               if data[3] == codec.RESUMED]
    assert resumed == [b.cluster.control]  # type: ignore[union-attr]


def test_once_its_node_is_gone_a_redirects_token_is_taken_anywhere() -> None:
    c = two()
    a, b = c.nodes
    token = b.resumes.book.mint("erin", "world", 700.0, 200.0, for_node="b")  # type: ignore[union-attr]
    c.kill(1)  # b dies before erin gets there
    c.step(int(c.services[0].expiry * 10) + 5)
    assert a.cluster.player_door("b") is None  # type: ignore[union-attr]
    p = FakePlayer(a, "erin", login=False)
    p.send(m.Hello(), m.Resume(token))
    c.step(3)
    p.expect(m.EnterWorld)
    assert "erin" in a.sessions and a.snapshot()["resumes_sent_on"] == 0


def test_a_player_handed_there_and_back_at_once_is_seen_walking_on() -> None:
    # a follows its land, so it keeps the entity it handed to b (as b's
    # mirror) and takes the same one back: under the key the watchers' nodes
    # were told to ignore at the first handoff, less than 10 s ago.
    c = cluster()
    a, b, cn, _ = c.nodes
    walker = player_at(a, "walker", 480.0, 480.0)
    north = player_at(cn, "north", 510.0, 530.0)
    c.step(5)
    [north_id] = seen(north, "walker")
    x, seq, player = 480.0, 0, walker
    for target in (560.0, 440.0):
        step = 8.0 if target > x else -8.0
        while x != target:
            x += step
            seq += 1
            player.send(m.Move(seq, x, 480.0))
            c.step(1)
            redirect = next((msg for msg in player.received()
                             if isinstance(msg, m.Redirect)), None)
            if redirect is not None:
                node = b if player.node is a else a
                player, seq = FakePlayer(node, "walker", token=redirect.token), 0
    assert player.node is a and a.snapshot()["handoffs_out"] == 1
    c.step(int(cn.cluster.expiry * 10) + 5)  # type: ignore[union-attr]
    assert seen(north, "walker") == [north_id]
    assert not any(isinstance(msg, m.Leave) and north_id in msg.entity_ids for msg in north.log)
    assert cn.world.entities[north_id].x == 440.0
    # Past the ghost time of the first handoff: a's player keeps the entity
    # a took back (no longer a ghost of a's), and b's ghost went.
    c.step(int(GHOST_SECONDS * 10))
    e = a.sessions["walker"].entity
    assert e is not None and a.world.entities.get(e.id) is e and (e.x, e.owner) == (440.0, None)
    assert not [e for e in b.world.entities.values() if e.name == "walker"]
    assert seen(north, "walker") == [north_id]
