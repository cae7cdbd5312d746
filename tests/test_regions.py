"""Regions: geometry, ownership by rendezvous hashing, pins, borders, and their settings."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.python import usage

from mmo.app.tap import Options
from mmo.config import ConfigError
from mmo.testing import node_settings
from mmo.world import ZoneSpec
from mmo.world.grid import Zone
from mmo.world.regions import (
    Ownership,
    RegionLayout,
    RegionPin,
    ZoneRegions,
    block_owner,
    crossed,
    parse_pins,
)


def layout(cells=4, block=2, zones=(("w", 2000, 1500), ("arena", 300, 300))):
    return RegionLayout([ZoneSpec(*z) for z in zones], 100, cells, block)


# -- geometry ------------------------------------------------------------------------


def test_regions_of_a_zone_with_a_partial_last_row_and_column():
    z = ZoneRegions("w", 2050, 1000, 100, 4)
    assert (z.cols, z.rows) == (21, 10)
    assert (z.region_cols, z.region_rows) == (6, 3)
    assert z.cells(5, 2) == (range(20, 21), range(8, 10))
    assert z.bounds(5, 2) == (2000, 800, 2050, 1000)
    assert z.region_at(0, 0) == (0, 0)
    assert z.region_at(399.9, 399.9) == (0, 0)
    assert z.region_at(400, 0) == (1, 0)
    assert z.region_at(2050, 1000) == (5, 2)        # the far edge belongs to the last
    assert z.region_at(-5, 99999) == (0, 2)         # outside: clamped
    assert len(list(z.regions())) == 18


def test_a_zone_smaller_than_a_region_is_one_region():
    z = ZoneRegions("arena", 300, 250, 100, 8)
    assert (z.region_cols, z.region_rows) == (1, 1)
    assert list(z.regions()) == [("arena", 0, 0)]
    assert z.region_at(299, 249) == (0, 0)


def test_every_cell_is_in_exactly_the_region_region_at_names():
    """Regions are whole cells of the zone's own grid, and cover it once."""
    z = ZoneRegions("w", 1234, 777, 100, 3)
    grid = Zone("w", 1234, 777, 100)
    covered: Counter[int] = Counter()
    for _, rx, ry in z.regions():
        cols, rows = z.cells(rx, ry)
        for cy in rows:
            for cx in cols:
                covered[cy * grid.cols + cx] += 1
                x, y = (cx + 0.5) * 100, (cy + 0.5) * 100
                assert grid.cell_at(x, y) == cy * grid.cols + cx
                assert z.region_at(x, y) == (rx, ry)
    assert set(covered.values()) == {1} and len(covered) == grid.cols * grid.rows


def test_region_ids_are_stable_and_compact():
    lay = layout()
    assert lay.region_at("w", 450, 10) == ("w", 1, 0)
    assert lay.block_of(("w", 3, 2)) == ("w", 1, 1)
    assert sorted(lay.regions())[:2] == [("arena", 0, 0), ("w", 0, 0)]
    with pytest.raises(KeyError, match="no zone named 'nope'"):
        lay.region_at("nope", 0, 0)


# -- ownership -----------------------------------------------------------------------


def test_owners_are_the_same_for_every_node_whatever_the_order():
    lay = layout()
    nodes = ["n1", "n2", "n3", "n4"]
    a = Ownership(lay, nodes)
    b = Ownership(lay, list(reversed(nodes)))
    owners = {r: a.owner(r) for r in lay.regions()}
    assert owners == {r: b.owner(r) for r in lay.regions()}
    assert set(owners.values()) <= set(nodes)
    # Fixed for all time: a change of hash would move every region of a live cluster.
    assert [block_owner(("w", bx, 0), {n: 1.0 for n in nodes}) for bx in range(2)] == [
        "n1", "n3"]
    weighted = {"n1": 1.0, "n2": 4.0, "n3": 1.0, "n4": 0.5}
    assert [block_owner(("w", bx, 0), weighted) for bx in range(2)] == ["n2", "n3"]


def test_the_regions_of_a_block_share_an_owner():
    lay = layout(cells=2, block=3, zones=(("w", 6000, 6000),))
    own = Ownership(lay, [f"n{i}" for i in range(8)])
    by_block: dict = {}
    for r in lay.regions():
        by_block.setdefault(lay.block_of(r), set()).add(own.owner(r))
    assert all(len(owners) == 1 for owners in by_block.values())
    assert len({o for owners in by_block.values() for o in owners}) == 8


def test_owner_at_looks_up_the_region_of_a_position():
    lay = layout()
    own = Ownership(lay, ["a", "b", "c"])
    for x, y in [(0, 0), (450, 820), (1999, 1499)]:
        assert own.owner_at("w", x, y) == own.owner(lay.region_at("w", x, y))


node_ids = st.lists(st.text("abcdefgh0123456789-", min_size=1, max_size=8),
                    min_size=1, max_size=8, unique=True)


@settings(max_examples=60, deadline=None)
@given(nodes=node_ids, new=st.text("xyz", min_size=1, max_size=3),
       weights=st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=9, max_size=9),
       weighted=st.booleans())
def test_a_node_joining_takes_only_what_it_wins_and_leaving_gives_only_its_own(
        nodes, new, weights, weighted):
    lay = layout(cells=2, block=2, zones=(("w", 3000, 2000), ("arena", 300, 300)))
    pins = [RegionPin("arena", nodes[0]), RegionPin("w", new, (0, 1), (0, 0))]
    before = {n: (weights[i] if weighted else 1.0) for i, n in enumerate(nodes)}
    after = {**before, new: weights[-1] if weighted else 1.0}
    own = Ownership(lay, before, pins)
    old = {r: own.owner(r) for r in lay.regions()}
    moved = own.update(after)
    joined = {r: own.owner(r) for r in lay.regions()}
    # Joining: a region either stays or goes to the newcomer.
    assert all(joined[r] in (old[r], new) for r in old)
    assert moved == {r: (old[r], joined[r]) for r in old if joined[r] != old[r]}
    # Leaving again: only the leaver's regions move, and each back where it was.
    own.update(before)
    assert {r: own.owner(r) for r in lay.regions()} == old


@settings(max_examples=40, deadline=None)
@given(nodes=node_ids.filter(lambda n: len(n) >= 2), data=st.data())
def test_removing_a_node_moves_only_that_nodes_regions(nodes, data):
    lay = layout(cells=2, block=2, zones=(("w", 3000, 2000),))
    gone = data.draw(st.sampled_from(nodes))
    own = Ownership(lay, nodes)
    old = {r: own.owner(r) for r in lay.regions()}
    own.update([n for n in nodes if n != gone])
    for r in lay.regions():
        if old[r] != gone:
            assert own.owner(r) == old[r]
        else:
            assert own.owner(r) != gone


@pytest.mark.parametrize("n", [2, 5, 16])
def test_each_node_gets_about_its_share(n):
    lay = RegionLayout([ZoneSpec("w", 40000, 40000)], 100, 4, 2)   # 2,500 blocks
    nodes = [f"node-{i}" for i in range(n)]
    shares = Ownership(lay, nodes).shares()
    total = sum(shares.values())
    for node in nodes:
        assert shares[node] / total == pytest.approx(1 / n, rel=0.25), shares


def test_weights_give_proportional_shares():
    lay = RegionLayout([ZoneSpec("w", 40000, 40000)], 100, 4, 2)
    shares = Ownership(lay, {"big": 3.0, "small": 1.0}).shares()
    assert shares["big"] / (shares["big"] + shares["small"]) == pytest.approx(0.75, abs=0.04)


def test_bad_node_sets():
    lay = layout()
    with pytest.raises(ValueError, match="no live node"):
        Ownership(lay, [])
    with pytest.raises(ValueError, match="weights are positive"):
        Ownership(lay, {"a": 0.0})


def test_update_with_the_same_nodes_recomputes_nothing():
    own = Ownership(layout(), ["a", "b"])
    own.owner(("w", 0, 0))
    cached = own._regions
    assert own.update(["b", "a"]) == {}
    assert own._regions is cached


# -- pins ----------------------------------------------------------------------------


def test_pins_win_while_their_node_is_live_then_fall_back_to_hashing():
    lay = layout()
    pins = parse_pins("w:0-1,0=alpha; w:0,0=beta arena=beta")
    own = Ownership(lay, ["alpha", "beta", "gamma"], pins)
    assert own.owner(("w", 0, 0)) == own.owner(("w", 1, 0)) == "alpha"
    assert own.owner(("arena", 0, 0)) == "beta"
    moved = own.update(["beta", "gamma"])
    # alpha is down: its first region goes to the standby pin, the other is hashed.
    assert own.owner(("w", 0, 0)) == "beta"
    assert own.owner(("w", 1, 0)) == block_owner(lay.block_of(("w", 1, 0)),
                                                 {"beta": 1.0, "gamma": 1.0})
    assert moved[("w", 0, 0)] == ("alpha", "beta")
    # Every pinned node down: hashing among the live ones.
    own.update(["gamma"])
    assert {own.owner(r) for r in lay.regions()} == {"gamma"}
    own.update(["alpha", "beta", "gamma"])
    assert own.owner(("w", 0, 0)) == "alpha" and own.owner(("arena", 0, 0)) == "beta"


@pytest.mark.parametrize("text, pin", [
    ("world=a", RegionPin("world", "a")),
    ("world:3,4=node-7", RegionPin("world", "node-7", (3, 3), (4, 4))),
    (" world:0-2, 1-5 = n ", RegionPin("world", "n", (0, 2), (1, 5))),
])
def test_pin_forms(text, pin):
    assert RegionPin.parse(text) == pin
    assert RegionPin.parse(str(pin)) == pin


@pytest.mark.parametrize("text, words", [
    ("world:0,0", "names no node id"),
    ("world:0,0=", "names no node id"),
    ("world:0=a", "is not ZONE=NODE"),
    ("world:x,1=a", "is not ZONE=NODE"),
    ("world:3-1,0=a", "from low to high"),
    ("world:0,0=a b", "names no node id"),
])
def test_bad_pins(text, words):
    with pytest.raises(ValueError, match=words):
        RegionPin.parse(text)


def test_pins_of_unknown_zones_or_regions_are_refused():
    lay = layout()
    with pytest.raises(ValueError, match="no zone named 'nope'"):
        Ownership(lay, ["a"], [RegionPin("nope", "a")])
    with pytest.raises(ValueError, match="regions 0..4 across and 0..3 down"):
        Ownership(lay, ["a"], [RegionPin("w", "a", (5, 5), (0, 0))])


# -- borders -------------------------------------------------------------------------


def test_a_player_changes_region_only_past_the_margin():
    lay = layout()          # regions of 400 units
    here = ("w", 1, 1)      # x 400..800, y 400..800
    assert crossed(lay, here, 600, 600, 25) is None
    assert crossed(lay, here, 810, 600, 25) is None         # 10 past the edge
    assert crossed(lay, here, 825, 600, 25) is None         # exactly the margin
    assert crossed(lay, here, 826, 600, 25) == ("w", 2, 1)
    assert crossed(lay, here, 380, 380, 25) is None
    assert crossed(lay, here, 374, 380, 25) == ("w", 0, 0)
    assert crossed(lay, here, 500, 826, 0) == ("w", 1, 2)


def test_walking_along_a_border_does_not_bounce():
    lay = layout()
    rng = random.Random(3)
    current = lay.region_at("w", 399, 600)
    changes = 0
    for _ in range(2000):
        x = 400 + rng.uniform(-20, 20)              # back and forth across x = 400
        y = rng.uniform(410, 790)
        new = crossed(lay, current, x, y, 25)
        if new is not None:
            current, changes = new, changes + 1
    assert changes == 0
    # With no margin the same walk would have changed owner nearly every step.
    flips = sum(crossed(lay, ("w", 0, 1), 400 + d, 600, 0) is not None for d in (1, 5, 10))
    assert flips == 3


# -- settings ------------------------------------------------------------------------


def test_region_settings_defaults_and_reach():
    s = node_settings()
    assert (s.regions.cells, s.regions.block, s.regions.margin, s.regions.pins) == (5, 2, 25.0, ())
    lay = s.regions.layout(s.node)
    # The default arena (500 x 500) is one region; the world (2000 x 2000) 4 x 4.
    assert [(z.region_cols, z.region_rows) for z in lay.zones.values()] == [(4, 4), (1, 1)]


def test_region_map_from_flags_and_from_a_toml_table(tmp_path):
    opts = Options()
    opts.parseOptions(["--region-map", "world:0,0=a", "--region-map", "arena=b c:0,0=d",
                       "--zone", "world:2000x2000", "--zone", "arena:500x500",
                       "--zone", "c:100x100", "--region-cells", "4"])
    assert [str(p) for p in opts.settings.regions.pins] == [
        "world:0,0=a", "arena=b", "c:0,0=d"]
    conf = tmp_path / "r.toml"
    conf.write_text('region_margin = 10\n[region_map]\n"world:1-2,0" = "a"\narena = "b"\n')
    opts = Options()
    opts.parseOptions(["--config", str(conf)])
    assert opts.settings.regions.margin == 10.0
    assert [str(p) for p in opts.settings.regions.pins] == ["world:1-2,0=a", "arena=b"]


@pytest.mark.parametrize("argv, words", [
    (["--region-cells", "0"], "--region-cells.*at least 1"),
    (["--region-block", "x"], "--region-block"),
    (["--region-margin", "-1"], "--region-margin.*at least 0"),
    (["--region-margin", "500"], "must be less than a region's side"),
    (["--region-map", "world:0,0"], "names no node id"),
    (["--region-map", "moon=a"], "no zone named 'moon'"),
    (["--region-map", "world:9,0=a"], "has regions 0..3 across"),
])
def test_bad_region_values_are_one_line_errors(argv, words):
    with pytest.raises(usage.UsageError, match=words) as e:
        Options().parseOptions(argv)
    assert "\n" not in str(e.value)


def test_bad_region_map_in_a_file(tmp_path):
    conf = tmp_path / "r.toml"
    conf.write_text('[region_map]\n"world:0,0" = 3\n')
    with pytest.raises(usage.UsageError, match="bad value for 'region_map'.*names no node"):
        Options().parseOptions(["--config", str(conf)])
    with pytest.raises(ConfigError, match="no zone named"):
        node_settings(region_map=["nowhere=a"])
