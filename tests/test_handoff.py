"""Crossing a border: the player moves to the region's owner; watchers see one entity walk on."""

from __future__ import annotations

import math
import random

import pytest

from mmo.cluster import codec
from mmo.cluster.auth import MAC_SIZE
from mmo.cluster.mirrors import SUPERSEDED_SECONDS
from mmo.server.handoff import GHOST_SECONDS
from mmo.testing.cluster import FakeCluster
from mmo.testing.node import FakePlayer
from mmo.wire import messages as m

PINS = ["world:0,0=a", "world:1,0=b", "world:0-1,1=c"]


def cluster() -> FakeCluster:
    # 1,000 x 1,000 units of 100-unit cells, regions of 5 cells: a owns the
    # south-west quarter, b the south-east, c the north half.
    c = FakeCluster(["a", "b", "c"], placement="regions", zone=["world:1000x1000"],
                    region_map=PINS, max_speed=1000.0)
    c.step(3)
    for node in c.nodes:
        assert node.placement.ownership.nodes == {"a", "b", "c"}
    return c


def player_at(node, name: str, x: float, y: float) -> FakePlayer:  # type: ignore[no-untyped-def]
    node.store.authenticate(name, "pw", True)
    node.store.save_state(name, {"zone": "world", "x": x, "y": y, "data": {"gold": 7}})
    return FakePlayer(node, name)


def seen(watcher: FakePlayer, name: str) -> list[int]:
    watcher.received()
    return [eid for eid, n in watcher.known.items() if n == name]


def test_a_player_walking_over_a_border_is_handed_on_and_watchers_see_it_walk_on() -> None:
    c = cluster()
    a, b, cn = c.nodes
    walker = player_at(a, "walker", 480.0, 480.0)
    north = player_at(cn, "north", 510.0, 530.0)   # on c, looking at the border
    west = player_at(a, "west", 440.0, 470.0)      # on a, next to the walker
    c.step(5)
    [north_id] = seen(north, "walker")
    [west_id] = seen(west, "walker")
    x, seq, redirect = 480.0, 0, None
    while redirect is None:
        x += 8.0
        seq += 1
        walker.send(m.Move(seq, x, 480.0))
        c.step(1)
        redirect = next((msg for msg in walker.received() if isinstance(msg, m.Redirect)), None)
        assert x < 600, "never handed on"
    assert 525.0 < x <= 533.0, "handed on once past the margin, not before"
    assert walker.session.ended
    assert (redirect.host, redirect.port) == ("127.0.0.1", b.settings.node.tcp)
    assert "walker" not in a.sessions
    c.step(1)
    # The client arrives at b with its token: the entity b already publishes.
    there = FakePlayer(b, "walker", token=redirect.token)
    enter = next(msg for msg in there.log if isinstance(msg, m.EnterWorld))
    assert (enter.x, enter.y) == (x, 480.0)
    assert there.entity.data == {"gold": 7}
    for _ in range(5):
        x += 8.0
        seq += 1
        there.send(m.Move(seq, x, 480.0))
        c.step(1)
    # One entity all along, on either side of the border: no Leave, no new Enter.
    for watcher, eid in ((north, north_id), (west, west_id)):
        watcher.received()
        assert seen(watcher, "walker") == [eid]
        assert not any(isinstance(msg, m.Leave) and eid in msg.entity_ids for msg in watcher.log)
        entered = [e.entity_id for msg in watcher.log if isinstance(msg, m.Enter)
                   for e in msg.entities if e.name == "walker"]
        assert entered == [eid]
    # ... and it is where b says, on c and on a.
    mirror_c = cn.world.entities[north_id]
    mirror_a = a.world.entities[west_id]
    assert (mirror_c.x, mirror_a.x) == (x, x)
    assert mirror_a.owner == "b" and mirror_c.owner == "b"
    assert a.snapshot()["handoffs_out"] == 1 and b.snapshot()["handoffs_arrived"] == 1
    # The walker sees its surroundings on b: the watcher on a is in view again.
    c.step(3)
    assert "west" in there.names_seen()


def test_the_old_owner_still_publishing_a_handed_player_is_not_believed() -> None:
    # Nobody on a follows the walker after the handoff, so a keeps publishing
    # the entity it handed away (for up to its ghost time) where it stood;
    # c, whose player sees that cell, must keep b's word on where it is.
    c = cluster()
    a, b, cn = c.nodes
    walker = player_at(a, "walker", 495.0, 480.0)
    north = player_at(cn, "north", 540.0, 530.0)
    c.step(3)
    walker.send(m.Move(1, 535.0, 480.0))
    c.step(1)
    redirect = next(msg for msg in walker.received() if isinstance(msg, m.Redirect))
    there = FakePlayer(b, "walker", token=redirect.token)
    for seq in range(1, 8):
        there.send(m.Move(seq, 535.0 + 8.0 * seq, 480.0))
        c.step(1)
    assert a.placement.handoffs.ghosts, "a still holds (and publishes) what it handed away"
    ghost_seconds = 4.0          # below the ghost's 5 s, beyond the cluster's expiry
    assert cn.cluster.expiry < ghost_seconds < GHOST_SECONDS < SUPERSEDED_SECONDS
    c.step(int(ghost_seconds * 10))
    [eid] = seen(north, "walker")
    assert cn.world.entities[eid].x == 535.0 + 8.0 * 7
    assert cn.cluster.whereabouts("walker")[2] == 535.0 + 8.0 * 7


def test_a_player_on_the_border_does_not_bounce() -> None:
    c = cluster()
    a, _, _ = c.nodes
    walker = player_at(a, "walker", 490.0, 200.0)
    seq = 0
    for i in range(40):
        seq += 1
        x = 505.0 + (10.0 if i % 2 else -10.0)   # wanders 15 units either side of x=500
        walker.send(m.Move(seq, x, 200.0))
        c.step(1)
    assert "walker" in a.sessions and a.snapshot()["handoffs_out"] == 0


def test_a_handed_player_whose_client_never_comes_goes_and_is_saved() -> None:
    c = cluster()
    a, b, _ = c.nodes
    walker = player_at(a, "walker", 490.0, 100.0)
    c.step(1)
    walker.send(m.Move(1, 540.0, 100.0))
    c.step(2)
    assert "walker" in b.placement.handoffs.arrivals
    seconds = b.settings.limits.resume_window + 1
    c.step(int(seconds * 10))
    assert "walker" not in b.placement.handoffs.arrivals
    assert not [e for e in b.world.entities.values() if e.name == "walker"]
    assert b.snapshot()["handoffs_unclaimed"] == 1


def test_when_a_node_joins_its_players_move_to_it() -> None:
    c = FakeCluster(["a"], placement="regions", zone=["world:1000x1000"],
                    region_map=PINS)
    (a,) = c.nodes
    walker = player_at(a, "walker", 700.0, 100.0)
    c.step(2)
    c.add("b")
    c.step(3)
    sent = next(msg for msg in walker.received() if isinstance(msg, m.Redirect))
    FakePlayer(c.nodes[1], "walker", token=sent.token)
    assert "walker" in c.nodes[1].sessions and "walker" not in a.sessions


def test_only_cells_others_may_see_are_published() -> None:
    c = cluster()
    a, _, _ = c.nodes
    zone = a.world.zones["world"]
    published = {(cx, cy) for cx in range(10) for cy in range(10)
                 if a.published("world", cy * zone.cols + cx)}
    # a owns cells 0-4 x 0-4; b's land starts at column 5, c's at row 5: a
    # player of theirs is handed to a before the grid (hysteresis 25) puts it
    # in a cell of a's (margin 25), so it sees a's cells next to its land.
    assert a.placement.reach == 1, "the default hysteresis and margin"
    mine = {(cx, cy) for cx in range(5) for cy in range(5)}
    assert {p for p in published if p in mine} == {p for p in mine if p[0] == 4 or p[1] == 4}
    # Deep inside a's land a walker's cell goes out to nobody; near the border it does.
    deep = player_at(a, "deep", 50.0, 50.0)
    edge = player_at(a, "edge", 450.0, 50.0)
    port = c.services[0].transport.port
    port.written.clear()
    for i in range(10):
        deep.send(m.Move(i + 1, 50.0 + i, 50.0))
        edge.send(m.Move(i + 1, 450.0 + i, 50.0))
        c.step(1)
    sent: dict[str, set[int]] = {}
    for data, (group, _port) in port.written:
        if data[3] in (1, 2):  # cell delta, cell keyframe
            signed = data[:-MAC_SIZE]
            sent.setdefault(group, set()).update(
                u.cell for u in codec.decode_body(codec.read_header(signed), signed))
    monitors = c.services[0].metrics_group
    to_nodes = set().union(*(cells for group, cells in sent.items() if group != monitors))
    assert zone.cell_at(50.0, 50.0) not in to_nodes
    assert zone.cell_at(455.0, 50.0) in to_nodes
    # The deep cell's keyframe goes to the monitors alone, once a period.
    assert zone.cell_at(50.0, 50.0) in sent[monitors]
    # Nor are the deep cell's moves recorded for deltas: only who stands there.
    streams = c.services[0].publisher.streams
    deep_stream = streams[("world", deep.entity.cell)]
    edge_stream = streams[("world", edge.entity.cell)]
    assert deep.entity.id in deep_stream.owned and not deep_stream.recent
    assert edge.entity.id in edge_stream.owned and edge.entity.id in edge_stream.recent


def test_cells_that_a_new_node_can_see_are_published_from_its_arrival() -> None:
    # Without c, a owns the north half too, and cell (2, 4) is too far from
    # b's land for anyone else to see: its moves go out to nobody.
    c = FakeCluster(["a", "b"], placement="regions", zone=["world:1000x1000"],
                    region_map=PINS, max_speed=1000.0)
    c.step(3)
    a = c.nodes[0]
    zone = a.world.zones["world"]
    walker = player_at(a, "walker", 250.0, 450.0)
    x = 250.0
    for seq in range(1, 4):
        x += 5.0
        walker.send(m.Move(seq, x, 450.0))
        c.step(1)
    assert not a.published("world", zone.cell_at(x, 450.0))
    # c comes: its land starts on the next row, so the cell is seen from there now.
    cn, _ = c.add("c")
    c.step(3)
    assert a.published("world", zone.cell_at(x, 450.0))
    north = player_at(cn, "north", 250.0, 520.0)
    c.step(3)
    for seq in range(4, 10):
        x += 5.0
        walker.send(m.Move(seq, x, 450.0))
        c.step(2)  # a publishes, c applies
        mirror = cn.world.find_player("walker")
        assert mirror is not None and mirror.owner == "a"
        assert (mirror.x, mirror.y) == (x, 450.0), "every move, not only keyframes"
    assert seen(north, "walker")


class CountingBounds(dict):  # type: ignore[type-arg]
    """A node's player bounds that note whose are looked up."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.looked: list[str] = []

    def get(self, name, default=None):  # type: ignore[no-untyped-def, override]
        self.looked.append(name)
        return super().get(name, default)


def test_a_tick_looks_only_at_the_players_that_moved_and_at_all_when_owners_change() -> None:
    c = cluster()
    a, _, _ = c.nodes
    players = [player_at(a, f"p{i}", 100.0 + 50 * i, 100.0) for i in range(4)]
    c.step(2)
    handoffs = a.placement.handoffs
    handoffs.bounds = bounds = CountingBounds(handoffs.bounds)
    c.step(3)
    assert bounds.looked == [], "nobody moved: nobody is looked at"
    players[2].send(m.Move(1, 210.0, 110.0))
    c.step(1)
    assert bounds.looked == [], "a step inside its cell and bounds: nobody is looked at"
    players[1].send(m.Move(1, 230.0, 100.0))  # into the next cell, past the hysteresis
    c.step(1)
    assert bounds.looked == ["p1"]
    bounds.looked.clear()
    players[3].send(m.Move(1, 540.0, 100.0))  # out of its bounds, into b's land
    c.step(1)
    assert set(bounds.looked) == {"p3"} and "p3" not in a.sessions
    bounds.looked.clear()
    a.nodes_changed(frozenset(a.placement.ownership.nodes))  # the same nodes, told again
    bounds.looked.clear()
    c.step(1)
    assert sorted(bounds.looked) == ["p0", "p1", "p2"]
    bounds.looked.clear()
    c.step(2)
    assert bounds.looked == []
    assert all(f"p{i}" in a.sessions for i in range(3))


def test_a_lone_node_looks_at_nobody_and_hands_on_once_another_joins() -> None:
    c = FakeCluster(["a"], placement="regions", zone=["world:1000x1000"],
                    region_map=PINS, max_speed=1000.0)
    (a,) = c.nodes
    walker = player_at(a, "walker", 100.0, 100.0)
    c.step(2)
    handoffs = a.placement.handoffs
    handoffs.bounds = bounds = CountingBounds(handoffs.bounds)
    # Alone, a owns every region: the walk into what b will own costs no look.
    x = 100.0
    for seq in range(1, 80):
        x += 8.0
        walker.send(m.Move(seq, x, 100.0))
        c.step(1)
    assert bounds.looked == []
    assert "walker" in a.sessions and a.sessions["walker"].entity.x == x
    c.add("b")
    c.step(3)
    sent = next(msg for msg in walker.received() if isinstance(msg, m.Redirect))
    there = FakePlayer(c.nodes[1], "walker", token=sent.token)
    assert "walker" not in a.sessions and (there.entity.x, there.entity.y) == (x, 100.0)


def test_a_player_changing_zone_into_another_nodes_land_is_handed_there() -> None:
    c = FakeCluster(["a", "b"], placement="regions", zone=["world:1000x1000", "cave:200x200"],
                    region_map=["world=a", "cave=b"])
    c.step(3)
    a, b = c.nodes
    walker = player_at(a, "walker", 100.0, 100.0)
    c.step(2)
    walker.send(m.ChangeZone("cave"))   # standing still after, in b's zone
    c.step(1)
    redirect = next(msg for msg in walker.received() if isinstance(msg, m.Redirect))
    assert redirect.port == b.settings.node.tcp
    there = FakePlayer(b, "walker", token=redirect.token)
    assert there.entity.zone.name == "cave" and "walker" not in a.sessions


def test_a_handoff_that_had_to_wait_goes_later_though_the_player_stands_still(
        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    c = cluster()
    a, b, _ = c.nodes
    walker = player_at(a, "walker", 490.0, 100.0)
    c.step(1)
    service = c.services[0]
    monkeypatch.setattr(service, "player_door", lambda node_id: None)  # b not heard of yet
    walker.send(m.Move(1, 540.0, 100.0))
    c.step(3)
    assert "walker" in a.sessions and "walker" in a.placement.handoffs._later
    monkeypatch.undo()
    c.step(10)
    redirect = next(msg for msg in walker.received() if isinstance(msg, m.Redirect))
    assert redirect.port == b.settings.node.tcp
    assert "walker" not in a.sessions and not a.placement.handoffs._later


def test_a_player_back_inside_before_its_handoff_could_go_stays(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    c = cluster()
    a, _, _ = c.nodes
    walker = player_at(a, "walker", 490.0, 100.0)
    c.step(1)
    monkeypatch.setattr(c.services[0], "player_door", lambda node_id: None)
    walker.send(m.Move(1, 540.0, 100.0))
    c.step(1)
    assert "walker" in a.placement.handoffs._later
    walker.send(m.Move(2, 500.0, 100.0))   # within the margin of a's region again
    monkeypatch.undo()
    c.step(15)
    assert "walker" in a.sessions and a.snapshot()["handoffs_out"] == 0
    assert not a.placement.handoffs._later, "a retry that holds nothing back is dropped"
    assert not any(isinstance(msg, m.Redirect) for msg in walker.received())


@pytest.mark.parametrize(("hysteresis", "margin", "reach"),
                         [(25.0, 25.0, 1), (40.0, 25.0, 1), (10.0, 25.0, 2), (10.0, 130.0, 3)])
def test_no_player_sees_a_cell_that_its_owner_does_not_publish(
        hysteresis: float, margin: float, reach: int) -> None:
    # Players of a, b and c wander over the borders at (500, y) and (x, 500),
    # lingering in the margins, handed on and following their Redirects.
    # Every cell a player sees is its node's own or one its owner publishes;
    # with a margin past the hysteresis, some see deeper than one cell.
    c = FakeCluster(["a", "b", "c"], placement="regions", zone=["world:1000x1000"],
                    region_map=PINS, max_speed=1000.0, hysteresis=hysteresis,
                    region_margin=margin)
    c.step(3)
    nodes = {node.node_id: node for node in c.nodes}
    assert {node.placement.reach for node in c.nodes} == {reach}
    rng = random.Random(7)
    walkers = []
    for i in range(36):
        x, y = rng.uniform(350, 650), rng.uniform(350, 650)
        owner = nodes[c.nodes[0].placement.owner_at("world", x, y)]
        walkers.append([player_at(owner, f"w{i}", x, y), rng.uniform(0, 2 * math.pi), 0])
    zone = c.nodes[0].world.zones["world"]
    rc = c.nodes[0].placement.region_cells
    # Each node's land, in cells (the live nodes do not change here).
    land = {me: {(x, y) for x in range(10) for y in range(10)
                 if c.nodes[0].placement.ownership.owner(("world", x // rc, y // rc)) == me}
            for me in nodes}
    deepest = 0
    for _ in range(150):
        for w in walkers:
            player, heading, seq = w
            e = player.entity
            if e is None:
                continue
            # Mostly on, now and then turning, and back towards the borders.
            heading += rng.uniform(-0.6, 0.6)
            if abs(e.x - 500) > 150 or abs(e.y - 500) > 150:
                heading = math.atan2(500 - e.y, 500 - e.x)
            w[1], w[2] = heading, seq + 1
            player.send(m.Move(seq + 1, e.x + 12 * math.cos(heading),
                               e.y + 12 * math.sin(heading)))
        c.step(1)
        for w in walkers:
            redirect = next((msg for msg in w[0].received() if isinstance(msg, m.Redirect)),
                            None)
            if redirect is not None:
                name = w[0].name
                to = next(n for n in c.nodes if name in n.placement.handoffs.arrivals)
                w[0], w[2] = FakePlayer(to, name, token=redirect.token), 0
        for node in c.nodes:
            me = node.node_id
            for session in node.sessions.values():
                e = session.entity
                for key in e.viewer.cells:
                    cx, cy = zone.cell_coords(key)
                    owner = node.placement.ownership.owner(("world", cx // rc, cy // rc))
                    if owner == me:
                        continue
                    assert nodes[owner].published("world", key), (
                        f"{session.name} on {me} sees cell {(cx, cy)} of {owner}, "
                        "which it does not publish")
                    deepest = max(deepest, min(max(abs(cx - x), abs(cy - y))
                                               for x, y in land[me]))
    handed = sum(node.placement.handoffs.handed_out for node in c.nodes)
    assert handed > 20, "the walk crosses borders"
    assert deepest == reach, "some player sees as deep as its node's reach, none deeper"
