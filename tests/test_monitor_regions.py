"""
The monitor's regions: who owns each region of the shown zone, computed
from the heartbeats it hears exactly as the nodes compute it
(:class:`mmo.world.regions.Ownership`), in the node table and as text.
"""

from __future__ import annotations

import pytest
from test_monitor import KEY, WORLD, Sender, feed, monitor_settings

from mmo.config import ConfigError
from mmo.monitor import present
from mmo.monitor.model import ClusterModel
from mmo.monitor.regions import RegionView
from mmo.monitor.settings import MONITOR_SCHEMA
from mmo.monitor.text import render
from mmo.settings import NODE_SCHEMA, RegionSettings
from mmo.world.regions import Ownership, RegionLayout, RegionPin

#: 2000 x 2000 in cells of 100 and regions of 5 cells: 4 x 4 regions.
SIDE = 500.0


def expected(nodes, regions: RegionSettings = RegionSettings(), zone=WORLD,
             cell_size: float = 100.0) -> list[tuple[tuple[float, float, float, float], str]]:
    """Every region of ``zone`` and its owner, as a node computes them."""
    layout = RegionLayout([zone], cell_size, regions.cells, regions.block)
    ownership = Ownership(layout, nodes, [p for p in regions.pins if p.zone == zone.name])
    z = layout.zone(zone.name)
    return [(z.bounds(rx, ry), ownership.owner((zone.name, rx, ry)))
            for _zone, rx, ry in z.regions()]


def counts_of(owners) -> dict[str, int]:
    out: dict[str, int] = {}
    for _bounds, owner in owners:
        out[owner] = out.get(owner, 0) + 1
    return out


def heartbeats(model: ClusterModel, senders, now: float) -> None:
    feed(model, [s.heartbeat() for s in senders], now)
    model.advance(now)


@pytest.fixture
def model() -> ClusterModel:
    return ClusterModel(WORLD, key=KEY)


def test_one_node_owns_every_region_of_the_zone(model):
    assert model.regions.owners() == [] and model.regions.counts() == {}
    heartbeats(model, [Sender("alpha")], 1.0)
    owners = model.regions.owners()
    assert len(owners) == 16 == model.regions.total
    assert {owner for _b, owner in owners} == {"alpha"}
    assert owners[0][0] == (0.0, 0.0, SIDE, SIDE)
    assert owners[-1][0] == (1500.0, 1500.0, 2000.0, 2000.0)
    assert model.regions.counts() == {"alpha": 16}


def test_a_second_node_takes_the_regions_ownership_gives_it_and_gives_them_back_when_it_expires(
        model):
    a, b = Sender("alpha"), Sender("beta")
    heartbeats(model, [a], 1.0)
    version = model.regions.version
    heartbeats(model, [a, b], 2.0)
    split = expected(["alpha", "beta"])
    assert model.regions.owners() == split
    counts = counts_of(split)
    assert set(counts) == {"alpha", "beta"}  # both own some at these names
    assert model.regions.counts() == counts and sum(counts.values()) == 16
    assert model.regions.version == version + 1
    # Heartbeats that change nothing recompute nothing.
    heartbeats(model, [a, b], 2.5)
    assert model.regions.version == version + 1
    # beta falls silent: stale is still live (the nodes have not expired it) ...
    for t in (3.5, 4.5):
        heartbeats(model, [a], t)
    assert model.nodes["beta"].state == "stale"
    assert model.regions.owners() == split
    # ... gone (3 intervals, as the nodes expire it) gives its regions back.
    heartbeats(model, [a], 5.5)
    assert model.nodes["beta"].state == "gone"
    assert model.regions.counts() == {"alpha": 16}
    assert model.regions.version == version + 2


def test_bye_gives_the_regions_back_at_once(model):
    a, b, c = Sender("alpha"), Sender("beta"), Sender("gamma")
    heartbeats(model, [a, b, c], 1.0)
    assert model.regions.owners() == expected(["alpha", "beta", "gamma"])
    feed(model, c.bye(), 1.2)
    assert model.regions.owners() == expected(["alpha", "beta"])
    assert "gamma" not in model.regions.counts()


def test_only_nodes_with_a_heartbeat_own_regions_as_on_the_nodes(model):
    a, b = Sender("alpha"), Sender("beta")
    heartbeats(model, [a], 1.0)
    feed(model, b.metrics(connected_clients=1), 1.5)
    model.advance(1.5)
    assert "beta" in model.nodes and model.regions.counts() == {"alpha": 16}
    feed(model, b.heartbeat(), 1.6)
    assert model.regions.owners() == expected(["alpha", "beta"])


def test_pins_and_blocks_are_the_nodes_own():
    regions = RegionSettings(cells=2, block=1, pins=(
        RegionPin("world", "beta", (0, 9), (0, 0)), RegionPin("arena", "alpha")))
    model = ClusterModel(WORLD, key=KEY, regions=regions)
    a, b = Sender("alpha"), Sender("beta")
    heartbeats(model, [a, b], 1.0)
    owners = model.regions.owners()
    assert len(owners) == 100
    assert owners == expected(["alpha", "beta"], regions)
    assert [o for _b, o in owners[:10]] == ["beta"] * 10  # the pinned first row
    # The pinned node gone: its row is hashed among the others.
    feed(model, b.bye(), 1.5)
    assert model.regions.counts() == {"alpha": 100}


def test_region_keys_are_the_nodes_keys_and_pins_of_other_zones_are_left_to_the_nodes():
    for name in ("region_cells", "region_block", "region_map"):
        mine, theirs = MONITOR_SCHEMA.keys[name], NODE_SCHEMA.keys[name]
        assert (mine.default, mine.parse, mine.repeat) == (
            theirs.default, theirs.parse, theirs.repeat)
        assert mine.help.startswith(theirs.help) and "Must be the nodes'" in mine.help
    pins = MONITOR_SCHEMA.check("region_map", ["world:0,0=a arena=b", "world:1-2,3=c"],
                                "--region-map")
    settings = monitor_settings(region_cells=4, region_block=1, region_map=pins)
    regions = settings.regions
    assert (regions.cells, regions.block) == (4, 1)
    assert [str(p) for p in regions.pins] == ["world:0,0=a", "world:1-2,3=c"]
    defaults = monitor_settings().regions
    assert (defaults.cells, defaults.block, defaults.pins) == (5, 2, ())


def test_a_pin_of_regions_the_zone_has_not_is_refused():
    from twisted.python.usage import UsageError

    from mmo.gui.cli import Options

    with pytest.raises(UsageError, match="--region-map: .*has regions 0..3 across"):
        Options().parseOptions(["--text", "--region-map", "world:4,0=a"])
    with pytest.raises(ConfigError, match="region_map"):
        MONITOR_SCHEMA.check("region_map", "world:1,1", "--region-map")
    options = Options()
    options.parseOptions(["--text", "--region-map", "arena:9,9=a", "--region-cells", "2"])
    assert options.settings.regions.pins == ()


def test_a_zone_smaller_than_a_region_is_one_region():
    model = ClusterModel(WORLD.__class__("arena", 300, 200), key=KEY)
    feed(model, Sender("alpha").heartbeat(), 1.0)
    assert model.regions.owners() == [((0.0, 0.0, 300.0, 200.0), "alpha")]


def test_region_view_recomputes_only_when_the_node_set_changes():
    view = RegionView(WORLD, 100.0)
    assert view.nodes_changed(["a"]) and view.version == 1
    assert not view.nodes_changed({"a"}) and view.version == 1
    assert view.nodes_changed(["a", "b"]) and view.owners() == expected(["a", "b"])
    assert view.nodes_changed([]) and view.owners() == [] and view.counts() == {}
    assert view.version == 3


# -- presentation -------------------------------------------------------------------


def test_the_node_table_has_a_regions_column(model):
    a, b = Sender("alpha"), Sender("beta")
    heartbeats(model, [a, b], 1.0)
    counts = counts_of(expected(["alpha", "beta"]))
    column = present.COLUMNS.index("regions")
    assert present.COLUMNS[column + 1:] == ("heard", "state")
    rows = present.rows(model, 1.0)
    assert [(r.node, r.regions, r.cells()[column]) for r in rows] == [
        ("alpha", counts["alpha"], str(counts["alpha"])),
        ("beta", counts["beta"], str(counts["beta"]))]
    assert column in present.NUMERIC
    # A gone node owns none (its row stays a while).
    feed(model, b.bye(), 1.5)
    rows = present.rows(model, 1.5)
    assert [(r.node, r.regions, r.state) for r in rows] == [
        ("alpha", 16, "live"), ("beta", 0, "gone")]
    text = render(model, 1.5, wall=0.0)
    header = next(line for line in text.splitlines() if line.startswith("node "))
    assert " regions " in header
    alpha = next(line for line in text.splitlines() if line.startswith("alpha"))
    # Right-aligned under its header, as the other numbers.
    end = header.index("regions") + len("regions")
    assert alpha[:end].endswith(" 16")


def test_regions_are_drawn_in_their_owners_colours_and_in_the_snapshot(model):
    a, b = Sender("alpha"), Sender("beta")
    heartbeats(model, [a, b], 1.0)
    colours = present.node_colours(model)
    drawn = present.regions(model)
    assert [(bounds, owner) for bounds, owner, _c in drawn] == expected(["alpha", "beta"])
    assert all(colour == colours[owner] for _b, owner, colour in drawn)
    snap = present.snapshot(model, 1.0)
    assert snap["regions"] == {"total": 16, "by_node": counts_of(expected(["alpha", "beta"]))}
