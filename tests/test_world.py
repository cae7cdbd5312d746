"""Zones, the grid and area of interest, with no I/O."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmo.world import World, ZoneSpec
from mmo.world.grid import Zone


def make_world(**kw):
    return World([ZoneSpec("w", 1000, 1000), ZoneSpec("b", 300, 300)], cell_size=100, **kw)


def step(world):
    world.settle()
    world.update_views()
    out = {eid: (list(v.enters), list(v.leaves)) for eid, v in world.viewers.items()}
    world.end_tick()
    return out


def brute_force_visible(world, viewer_entity):
    """Every other entity in the 3x3 cells around the viewer's cell."""
    zone = viewer_entity.zone
    cx, cy = zone.cell_coords(viewer_entity.cell)
    out = set()
    for e in world.entities.values():
        if e is viewer_entity or e.zone is not zone:
            continue
        ex, ey = zone.cell_coords(e.cell)
        if abs(ex - cx) <= 1 and abs(ey - cy) <= 1:
            out.add(e.id)
    return out


def test_zone_spec_parse():
    assert ZoneSpec.parse("town:200x300") == ZoneSpec("town", 200, 300)
    for bad in ["town", "town:0x10", ":10x10", "t:10", "t:axb", "t:2000000x1"]:
        with pytest.raises(ValueError):
            ZoneSpec.parse(bad)


def test_neighbours_at_corner_and_middle():
    z = Zone("z", 1000, 1000, 100)
    assert len(z.neighbours(0)) == 4
    assert len(z.neighbours(z.cell_at(550, 550))) == 9
    assert z.cell_at(-5, 2000) == z.cell_at(0, 999)


def test_near_players_enter_and_far_player_does_not():
    w = make_world()
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    b = w.spawn("b", zone, 250, 150, view=True)
    far = w.spawn("far", zone, 900, 900, view=True)
    out = step(w)
    assert [e.id for e in out[a.id][0]] == [b.id]
    assert [e.id for e in out[b.id][0]] == [a.id]
    assert out[far.id] == ([], [])


def test_walking_away_gives_leave_and_coming_back_enter():
    w = make_world(max_speed=1000)
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    b = w.spawn("b", zone, 160, 150, view=True)
    step(w)
    leaves, enters = [], []
    for t, x in enumerate((300, 450, 600, 450, 300, 200), start=1):
        assert w.check_move(b, x, 150, now=t) is None
        out = step(w)
        leaves.append(out[a.id][1])
        enters.append([e.id for e in out[a.id][0]])
    # a sees cell columns 0..2: b leaves on reaching x=300 (column 3) and
    # comes back at x=200 (column 2).
    assert leaves == [[b.id], [], [], [], [], []]
    assert enters == [[], [], [], [], [], [b.id]]


def test_a_move_out_of_its_fence_is_listed_and_the_list_lasts_one_tick():
    w = make_world()
    zone = w.zones["w"]
    fenced = w.spawn("fenced", zone, 150, 150)
    free = w.spawn("free", zone, 160, 160)
    fenced.fence = (100.0, 100.0, 300.0, 300.0)
    step(w)
    zone.move(fenced, 290, 150)  # inside its fence, in the next cell
    zone.move(free, 900, 900)    # no fence: never listed
    w.settle()
    assert zone.fenced == []
    w.update_views()
    w.end_tick()
    zone.move(fenced, 310, 150)
    w.settle()
    assert zone.fenced == [fenced]
    w.update_views()
    w.end_tick()
    assert zone.fenced == []
    fenced.fence = None
    zone.move(fenced, 500, 500)
    w.settle()
    assert zone.fenced == []


def test_hysteresis_no_flicker_on_border():
    w = make_world(max_speed=1000)
    zone = w.zones["w"]
    # a sees cells x 0..2 (cell 1 is its centre); b walks along the x=300 border.
    a = w.spawn("a", zone, 150, 150, view=True)
    b = w.spawn("b", zone, 295, 150, view=True)
    step(w)
    assert b.id in a.viewer.visible
    events = []
    for i in range(20):
        x = 295 + (i % 2) * 9  # 295 <-> 304: within the 10-unit margin
        assert w.check_move(b, x, 150, now=i) is None
        out = step(w)
        events += out[a.id][0] + out[a.id][1]
    assert events == []
    assert w.check_move(b, 315, 150, now=100) is None
    out = step(w)
    assert out[a.id][1] == [b.id]


def test_hysteresis_holds_each_axis_on_its_own():
    # A diagonal step far past one edge and just past the other moves the
    # entity one cell over, not two: its cell stays within the hysteresis of
    # its position on both axes.
    w = make_world(max_speed=1000, hysteresis=25)
    zone = w.zones["w"]
    e = w.spawn("e", zone, 450, 450)
    step(w)
    assert zone.cell_coords(e.cell) == (4, 4)
    zone.move(e, 540, 510)  # 40 past x = 500, 10 past y = 500
    step(w)
    assert zone.cell_coords(e.cell) == (5, 4)
    zone.move(e, 540, 530)  # now past the row's edge as well
    step(w)
    assert zone.cell_coords(e.cell) == (5, 5)
    zone.move(e, 480, 490)  # 20 and 10 back: within the hysteresis of (5, 5)
    step(w)
    assert zone.cell_coords(e.cell) == (5, 5)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(-60, 60), st.floats(-60, 60)), max_size=40),
       h=st.sampled_from([0.0, 10.0, 25.0, 49.0]))
def test_a_cell_is_always_within_the_hysteresis_of_its_entity(steps, h):
    w = make_world(max_speed=10_000, hysteresis=h)
    zone = w.zones["w"]
    e = w.spawn("e", zone, 500, 500)
    for dx, dy in steps:
        x, y = zone.clamp(e.x + dx, e.y + dy)
        zone.move(e, x, y)
        step(w)
        cx, cy = zone.cell_coords(e.cell)
        assert cx * 100 - h <= e.x <= (cx + 1) * 100 + h
        assert cy * 100 - h <= e.y <= (cy + 1) * 100 + h


def test_snap_puts_an_entity_in_the_cell_of_its_position_as_a_step_over():
    w = make_world(max_speed=1000, hysteresis=25)
    zone = w.zones["w"]
    a = w.spawn("a", zone, 480, 450, view=True)   # sees cells 3..5 x 3..5
    b = w.spawn("b", zone, 510, 450)
    step(w)
    zone.move(b, 490, 450)   # back over x = 500, within the hysteresis
    step(w)
    assert zone.cell_coords(b.cell) == (5, 4)
    zone.snap(b)
    assert zone.cell_coords(b.cell) == (4, 4)
    out = step(w)
    assert out[a.id] == ([], []), "a sees both cells: no Leave, no Enter"
    assert b.id in a.viewer.visible and b.id in zone.cells[b.cell]
    zone.snap(b)  # already there: nothing recorded
    assert zone.arrived == {} and zone.departed == {}


def test_move_validation():
    w = make_world(max_speed=50)
    zone = w.zones["w"]
    a = w.spawn("a", zone, 500, 500, view=True, now=0.0)
    assert w.check_move(a, 560, 500, now=1.0) is None
    assert w.check_move(a, 700, 500, now=2.0) is not None  # 140 > 50*1.25+1
    assert (a.x, a.y) == (560, 500)
    assert w.check_move(a, 1200, 500, now=10.0).name == "OUT_OF_BOUNDS"
    assert w.check_move(a, float("nan"), 500, now=11.0).name == "INVALID"
    # Standing still does not bank a teleport: the allowance caps at 1 s.
    assert w.check_move(a, 700, 500, now=100.0).name == "TOO_FAST"


def test_moves_arriving_together_are_fine_but_a_steady_cheat_is_not():
    w = make_world(max_speed=50)
    zone = w.zones["w"]
    a = w.spawn("a", zone, 500, 500, view=True, now=0.0)
    # Ten moves of 5 units sent every 0.1 s (50 u/s); the last five are
    # read at once, late, after a stall.
    x = 500.0
    for i in range(10):
        t = 0.1 * (i + 1) if i < 5 else 1.0
        x += 5
        assert w.check_move(a, x, 500, now=t) is None
    # Many tiny moves at twice the speed: the slack is not a free unit a move.
    start, refused = a.x, 0
    for _ in range(200):
        t += 0.01
        if w.check_move(a, a.x + 1.0, 500, now=t) is not None:
            refused += 1
    # In 2 s: at most 2 s of travel at 125 % speed, plus one second banked.
    assert a.x - start <= 62.5 * 2 + 62.5 + 1
    assert refused >= 50


def test_teleport_to_other_zone_leaves_and_enters():
    w = make_world()
    a = w.spawn("a", w.zones["w"], 150, 150, view=True)
    b = w.spawn("b", w.zones["w"], 160, 150, view=True)
    c = w.spawn("c", w.zones["b"], 150, 150, view=True)
    step(w)
    w.teleport(b, w.zones["b"], 140, 140)
    out = step(w)
    assert out[a.id][1] == [b.id]
    assert [e.id for e in out[c.id][0]] == [b.id]
    assert set(out[b.id][1]) == {a.id}
    assert [e.id for e in out[b.id][0]] == [c.id]


def test_teleport_within_the_area_is_leave_then_enter():
    w = make_world()
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    b = w.spawn("b", zone, 160, 150, view=True)
    step(w)
    w.teleport(b, zone, 170, 160)
    out = step(w)
    assert out[a.id][1] == [b.id] and [e.id for e in out[a.id][0]] == [b.id]
    assert b.id in a.viewer.visible


def test_despawn_gives_leave():
    w = make_world()
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    b = w.spawn("b", zone, 160, 150, view=True)
    step(w)
    w.despawn(b)
    out = step(w)
    assert out[a.id][1] == [b.id]
    assert a.viewer.visible == set()


def test_placed_and_moved_to_another_cell_of_the_area_in_one_tick_enters():
    # A player's first move often comes in the tick it logged in: placed in
    # one cell of a's area, it settles in another of the same area.
    w = make_world(max_speed=100_000)
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    step(w)
    b = w.spawn("b", zone, 160, 150, view=True)
    assert w.check_move(b, 250, 150, now=1.0) is None
    out = step(w)
    assert [e.id for e in out[a.id][0]] == [b.id] and b.id in a.viewer.visible
    assert [e.id for e in out[b.id][0]] == [a.id]
    # Placed in the area and moved out of it in the tick: nothing to see.
    c = w.spawn("c", zone, 160, 160)
    assert w.check_move(c, 650, 150, now=2.0) is None
    assert step(w)[a.id] == ([], [])
    assert c.id not in a.viewer.visible


def test_spawn_and_despawn_in_one_tick_is_invisible():
    w = make_world()
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    step(w)
    b = w.spawn("b", zone, 160, 150)
    w.despawn(b)
    assert step(w)[a.id] == ([], [])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_walk_views_match_brute_force(seed):
    """After every tick each viewer sees exactly the 3x3 area, and replaying
    its enters and leaves gives the same set (what a client reconstructs)."""
    random_walk(seed, [ZoneSpec("w", 600, 600), ZoneSpec("b", 200, 200)])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_town_no_wider_than_a_view_is_seen_whole(seed):
    """A crowd walking over the cells of zones no wider than a view (2 x 2
    cells, and a strip 2 cells high): every cell's area is the same cells,
    and views stay exact while players cross cells, come and go."""
    random_walk(seed, [ZoneSpec("t", 200, 200), ZoneSpec("s", 600, 200)])


def random_walk(seed: int, specs: list[ZoneSpec]) -> None:
    rng = random.Random(seed)
    w = World(specs, cell_size=100, max_speed=10_000)
    zones = list(w.zones.values())
    width, height = specs[0].width, specs[0].height
    ents = [w.spawn(f"p{i}", zones[0], rng.uniform(0, width), rng.uniform(0, height),
                    view=True) for i in range(25)]
    client_view = {e.id: set() for e in ents}
    now = 0.0
    for _ in range(40):
        now += 1.0
        for e in list(ents):
            r = rng.random()
            if r < 0.03:
                w.despawn(e)
                ents.remove(e)
                client_view.pop(e.id)
            elif r < 0.06:
                w.teleport(e, rng.choice(zones), rng.uniform(0, 200), rng.uniform(0, 200))
            elif r < 0.8 and e.zone is not None:
                nx, ny = e.zone.clamp(e.x + rng.uniform(-80, 80), e.y + rng.uniform(-80, 80))
                assert w.check_move(e, nx, ny, now) is None
        if rng.random() < 0.3:
            n = w.spawn("new", zones[0], rng.uniform(0, width), rng.uniform(0, height),
                        view=True)
            ents.append(n)
            client_view[n.id] = set()
        out = step(w)
        for e in ents:
            enters, leaves = out[e.id]
            view = client_view[e.id]
            view.difference_update(leaves)
            view.update(x.id for x in enters)
            assert e.viewer.visible == brute_force_visible(w, e)
            assert view == e.viewer.visible


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_resyncs_and_changes_of_area_match_brute_force(seed):
    """Viewers asking for a full view, changing cell or zone or standing in
    the same area, in one tick: a full view leaves all it saw and enters all
    it sees; the others' enters and leaves replay to what they see."""
    rng = random.Random(seed)
    w = World([ZoneSpec("w", 600, 600), ZoneSpec("b", 200, 200)], cell_size=100,
              max_speed=10_000)
    zones = list(w.zones.values())
    ents = [w.spawn(f"p{i}", zones[0], rng.uniform(0, 600), rng.uniform(0, 600),
                    view=True) for i in range(20)]
    client_view = {e.id: set() for e in ents}
    now = 0.0
    for _ in range(30):
        now += 1.0
        resynced = set()
        for e in ents:
            r = rng.random()
            if r < 0.1:
                e.viewer.resync = True
                resynced.add(e.id)
            if r < 0.15:
                w.teleport(e, rng.choice(zones), rng.uniform(0, 200), rng.uniform(0, 200))
            elif r < 0.8:
                nx, ny = e.zone.clamp(e.x + rng.uniform(-80, 80), e.y + rng.uniform(-80, 80))
                assert w.check_move(e, nx, ny, now) is None
        seen_before = {e.id: set(e.viewer.visible) for e in ents}
        out = step(w)
        for e in ents:
            enters, leaves = out[e.id]
            view = client_view[e.id]
            if e.id in resynced:
                assert set(leaves) == seen_before[e.id]
                view.clear()
            else:
                view.difference_update(leaves)
            view.update(x.id for x in enters)
            assert e.viewer.visible == brute_force_visible(w, e)
            assert view == e.viewer.visible
            e.viewer.resync = False   # as the node does once it has sent the full view
