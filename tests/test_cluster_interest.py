"""The cells a node's players can see, followed from each tick's records alone."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from mmo.cluster.groups import Interest
from mmo.world import World, ZoneSpec


def make_world() -> World:
    return World([ZoneSpec("w", 600, 600), ZoneSpec("b", 200, 200)], cell_size=100,
                 max_speed=10_000)


def tick(world: World, interest: Interest) -> tuple[set, set]:
    """One tick as the node runs it; the cells the interest gained and lost."""
    world.settle()
    world.update_views()
    gained, lost = interest.update(world)
    world.end_tick()
    assert len(gained) == len(set(gained)) and len(lost) == len(set(lost))
    return set(gained), set(lost)


def wanted(world: World) -> Counter:
    """Every cell some viewer sees, counted once per viewer: worked out from scratch."""
    cells: Counter = Counter()
    for v in world.viewers.values():
        e = v.entity
        if e.zone is not None:
            for key in e.zone.neighbours(e.cell):
                cells[(e.zone.name, key)] += 1
    return cells


class CountingViewers(dict):  # type: ignore[type-arg]
    """``World.viewers`` that counts how often all its keys are asked for."""

    keys_asked = 0

    def keys(self):  # type: ignore[no-untyped-def, override]
        self.keys_asked += 1
        return super().keys()


def test_the_world_lists_viewers_that_came_and_went_once_a_reader_asks() -> None:
    w = make_world()
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    assert w.viewers_changed is None, "nothing is kept while nobody reads it"
    interest = Interest()
    tick(w, interest)
    assert w.viewers_changed == []
    b = w.spawn("b", zone, 350, 350, view=True)
    statue = w.spawn("statue", zone, 550, 550)
    w.watch(statue)
    w.watch(statue)      # already watched: no change
    w.unwatch(a)
    w.unwatch(a)         # already not: no change
    w.despawn(b)
    w.despawn(w.spawn("npc", zone, 10, 10))   # never had a viewer
    assert w.viewers_changed == [b.id, statue.id, a.id, b.id]
    tick(w, interest)
    assert w.viewers_changed == []


def test_a_player_taking_over_a_standing_entity_and_leaving_it_changes_the_cells() -> None:
    w = make_world()
    zone = w.zones["w"]
    w.viewers = CountingViewers()
    interest = Interest()
    tick(w, interest)
    statue = w.spawn("statue", zone, 550, 550)
    tick(w, interest)
    tick(w, interest)    # its arrival is long forgotten: it stands still
    w.watch(statue)
    gained, lost = tick(w, interest)
    corner = {("w", key) for key in zone.neighbours(statue.cell)}
    assert gained == corner and lost == set() and set(interest.cells) == corner
    assert tick(w, interest) == (set(), set())
    w.unwatch(statue)
    assert tick(w, interest) == (set(), corner)
    assert not interest.cells and not interest.viewers
    assert w.viewers.keys_asked == 1, "only the first update compares every viewer"


def test_viewers_from_before_the_first_update_are_counted() -> None:
    w = make_world()
    zone = w.zones["w"]
    a = w.spawn("a", zone, 150, 150, view=True)
    w.settle()
    w.end_tick()         # its arrival went unread
    statue = w.spawn("statue", zone, 550, 550)
    w.end_tick()
    w.watch(statue)
    interest = Interest()
    gained, _ = tick(w, interest)
    assert set(interest.viewers) == {a.id, statue.id}
    assert gained == set(wanted(w)) and interest.cells == wanted(w)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_play_keeps_the_interest_equal_to_what_the_viewers_see(seed: int) -> None:
    """Walks, teleports, spawns, despawns, players taking over and leaving
    entities: after every tick the cells are those worked out from scratch,
    and what was gained and lost is the difference."""
    rng = random.Random(seed)
    w = make_world()
    zones = list(w.zones.values())
    ents = [w.spawn(f"e{i}", zones[0], rng.uniform(0, 600), rng.uniform(0, 600),
                    view=rng.random() < 0.5) for i in range(20)]
    interest = Interest()
    before: set = set()
    now = 0.0
    for _ in range(40):
        now += 1.0
        for e in list(ents):
            r = rng.random()
            if r < 0.03:
                w.despawn(e)
                ents.remove(e)
            elif r < 0.06:
                w.teleport(e, rng.choice(zones), rng.uniform(0, 200), rng.uniform(0, 200))
            elif r < 0.12:
                w.watch(e)
            elif r < 0.18:
                w.unwatch(e)
            elif r < 0.7 and e.zone is not None:
                nx, ny = e.zone.clamp(e.x + rng.uniform(-80, 80), e.y + rng.uniform(-80, 80))
                assert w.check_move(e, nx, ny, now) is None
        if rng.random() < 0.3:
            ents.append(w.spawn("new", zones[0], rng.uniform(0, 600), rng.uniform(0, 600),
                                view=rng.random() < 0.5))
        gained, lost = tick(w, interest)
        cells = wanted(w)
        assert interest.cells == cells
        assert interest.viewers == {
            eid: (v.entity.zone.name, v.entity.cell) for eid, v in w.viewers.items()}
        assert gained == set(cells) - before and lost == before - set(cells)
        before = set(cells)
