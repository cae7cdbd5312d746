"""The monitor's Qt-free half: datagrams in, what is shown out (no sockets, no real time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from twisted.internet.task import Clock

from mmo.cluster import codec
from mmo.cluster.groups import CellGroups, cell_block
from mmo.config import ConfigError, build
from mmo.monitor import present
from mmo.monitor.listener import MonitorService, zone_groups
from mmo.monitor.model import GONE, LIVE, STALE, ClusterModel
from mmo.monitor.settings import MONITOR_SCHEMA, MonitorSettings
from mmo.monitor.text import TextView, render
from mmo.testing import FakeCluster, FakeMulticast, FakePlayer
from mmo.wire import messages as m
from mmo.world.grid import Zone, ZoneSpec

KEY = b"k" * 32
WORLD = ZoneSpec("world", 2000, 2000)


def monitor_settings(**given) -> MonitorSettings:
    """The monitor's settings at their defaults but for ``given``, as ``mmo-monitor`` makes them."""
    return build(MonitorSettings, MONITOR_SCHEMA.resolve(given, None))


class Sender:
    """Datagrams of one fake node, sealed with the cluster's own codec."""

    def __init__(self, node_id: str, key: bytes = KEY, epoch: int = 1) -> None:
        self.sealer = codec.Sealer(key, node_id, epoch)
        self.room = codec.MAX_DATAGRAM - self.sealer.overhead
        self.cell_seq = 0

    def heartbeat(self, clients: int = 0, interval_ms: int = 1000) -> bytes:
        hb = codec.Heartbeat(4000, clients, clients, 100.0, interval_ms, "127.0.0.1", "0.1.0")
        return self.sealer.seal(codec.HEARTBEAT, hb.body())

    def metrics(self, **values: float) -> bytes:
        return self.sealer.seal(codec.METRICS, codec.metrics_body(values, self.room))

    def cell(self, fulls=(), moves=(), gones=(), keyframe=False, zone="world",
             cell=0) -> list[bytes]:
        bodies = codec.cell_bodies(
            zone, cell, self.cell_seq + 1, [codec.full_item(*f) for f in fulls],
            [codec.move_item(*mv) for mv in moves], list(gones), self.room)
        self.cell_seq += len(bodies)
        kind = codec.CELL_KEYFRAME if keyframe else codec.CELL_DELTA
        return [self.sealer.seal(kind, b) for b in bodies]

    def bye(self) -> bytes:
        return self.sealer.seal(codec.BYE, b"")


def feed(model: ClusterModel, datagrams, now: float) -> None:
    if isinstance(datagrams, bytes):
        datagrams = [datagrams]
    for d in datagrams:
        model.datagram_received(d, now)


@pytest.fixture
def model() -> ClusterModel:
    return ClusterModel(WORLD, key=KEY)


def test_heartbeat_and_metrics_make_a_live_row_with_the_metrics_numbers(model):
    a, b = Sender("alpha"), Sender("beta")
    feed(model, [a.heartbeat(clients=3), b.heartbeat(clients=5)], 10.0)
    rows = present.rows(model, 10.0)
    assert [(r.node, r.players, r.state) for r in rows] == [("alpha", 3, LIVE), ("beta", 5, LIVE)]
    feed(model, [a.metrics(connected_clients=4, events_per_sec=120.0, tick_ms_p99=7.5,
                           bytes_out_per_sec=2500.0, cluster_bytes_out_per_sec=500.0),
                 b.metrics(connected_clients=6, events_per_sec=80.0, tick_ms_p99=3.0)], 10.5)
    rows = present.rows(model, 11.0)
    assert rows[0].players == 4 and rows[0].cells()[6] == "7.50"
    assert rows[0].cells()[1] == "127.0.0.1:4000"
    t = present.totals(model)
    assert (t.live, t.players, t.events_per_sec, t.tick_ms_p99) == (2, 10, 200.0, 7.5)
    assert t.bytes_out_per_sec == 3000.0
    assert present.colour_of(model.nodes["alpha"]) != present.colour_of(model.nodes["beta"])


def test_a_silent_node_turns_stale_then_gone_then_is_forgotten(model):
    model.forget_after = 10.0
    a = Sender("alpha")
    feed(model, a.heartbeat(), 100.0)
    model.advance(101.9)
    assert model.nodes["alpha"].state == LIVE
    model.advance(102.0)
    assert model.nodes["alpha"].state == STALE
    assert present.rows(model, 102.0)[0].cells()[-2] == "2s ago"
    model.advance(103.0)
    assert model.nodes["alpha"].state == GONE
    texts = [e.text for e in model.events]
    assert any("stale" in t for t in texts) and any("is gone" in t for t in texts)
    t = present.totals(model)
    assert (t.live, t.stale, t.gone, t.players) == (0, 0, 1, 0)
    model.advance(113.0)
    assert "alpha" not in model.nodes


def test_stale_and_gone_follow_the_heartbeat_interval(model):
    a = Sender("alpha")
    feed(model, a.heartbeat(interval_ms=5000), 0.0)
    model.advance(9.0)
    assert model.nodes["alpha"].state == LIVE
    model.advance(10.0)
    assert model.nodes["alpha"].state == STALE


def test_a_stale_node_heard_again_is_live(model):
    a = Sender("alpha")
    feed(model, a.heartbeat(), 0.0)
    model.advance(2.5)
    feed(model, a.heartbeat(), 2.6)
    model.advance(2.7)
    assert model.nodes["alpha"].state == LIVE
    assert "node alpha is live again" in [e.text for e in model.events]


def test_bye_is_gone_at_once_and_late_datagrams_do_not_revive_it(model):
    a = Sender("alpha")
    feed(model, [a.heartbeat(), *a.cell(fulls=[(1, 0, 10.0, 10.0, "p1")], keyframe=True)], 0.0)
    assert len(model.dots()) == 1
    feed(model, a.bye(), 0.5)
    assert model.nodes["alpha"].state == GONE and model.nodes["alpha"].left
    assert model.dots() == []
    feed(model, a.heartbeat(), 0.6)
    assert model.nodes["alpha"].state == GONE
    # A restart (a new epoch) brings it back.
    again = Sender("alpha", epoch=2)
    feed(model, again.heartbeat(), 5.0)
    assert model.nodes["alpha"].state == LIVE
    assert "node alpha restarted" in [e.text for e in model.events]


def test_forged_and_garbage_datagrams_are_counted_not_shown(model):
    intruder = Sender("mallory", key=b"x" * 32)
    feed(model, [intruder.heartbeat(clients=99), b"garbage", b""], 1.0)
    assert model.nodes == {}
    assert model.counters.auth_failures == 3
    assert present.totals(model).auth_failures == 3
    # One line in the log, not one per datagram.
    assert sum("failed authentication" in e.text for e in model.events) == 1


def test_replays_and_malformed_bodies_are_counted(model):
    a = Sender("alpha")
    hb = a.heartbeat()
    feed(model, [hb, hb], 1.0)
    assert model.counters.replays == 1
    bad = a.sealer.seal(codec.HEARTBEAT, b"\x00\x01")
    feed(model, bad, 1.0)
    assert model.counters.malformed == 1
    assert model.counters.accepted == 1


def test_without_the_key_nothing_is_shown_and_it_is_said():
    model = ClusterModel(WORLD)
    feed(model, Sender("alpha").heartbeat(), 1.0)
    assert model.nodes == {} and model.counters.no_key == 1
    model.set_key(KEY)
    feed(model, Sender("alpha").heartbeat(), 2.0)
    assert "alpha" in model.nodes


def test_cell_updates_draw_dots_coloured_by_owner(model):
    a, b = Sender("alpha"), Sender("beta")
    feed(model, a.cell(fulls=[(1, 0, 10.0, 20.0, "p1"), (2, 0, 30.0, 40.0, "p2")],
                       keyframe=True), 1.0)
    feed(model, b.cell(fulls=[(1, 0, 50.0, 60.0, "q1"), (7, 1, 55.0, 65.0, "npc")],
                       keyframe=True), 1.0)
    by_node = present.dots_by_node(model)
    assert sorted(by_node["alpha"]) == [(10.0, 20.0), (30.0, 40.0)]
    assert by_node["beta"] == [(50.0, 60.0)]
    assert present.dots_by_node(model, npcs=True) == {"beta": [(55.0, 65.0)]}
    t = present.totals(model)
    assert (t.dots, t.npcs) == (3, 1)
    feed(model, a.cell(moves=[(1, 15.0, 25.0)], gones=[(2, codec.NOWHERE)]), 1.1)
    assert present.dots_by_node(model)["alpha"] == [(15.0, 25.0)]
    # Another zone's cells are not on this map.
    feed(model, a.cell(fulls=[(9, 0, 1.0, 1.0, "elsewhere")], zone="arena"), 1.2)
    assert len(present.dots_by_node(model)["alpha"]) == 1
    assert model.counters.other_zones == 1


def test_a_keyframe_removes_what_it_does_not_list_and_silence_expires_dots(model):
    a = Sender("alpha")
    feed(model, a.cell(fulls=[(1, 0, 10.0, 20.0, "p1"), (2, 0, 30.0, 40.0, "p2")],
                       keyframe=True), 1.0)
    feed(model, a.cell(fulls=[(2, 0, 31.0, 41.0, "p2")], keyframe=True), 2.0)
    assert present.dots_by_node(model) == {"alpha": [(31.0, 41.0)]}
    model.advance(4.9)
    assert len(model.dots()) == 1
    model.advance(5.1)
    assert model.dots() == []


def test_charts_sample_each_second_per_node_and_in_total(model):
    a, b = Sender("alpha"), Sender("beta")
    for second in range(5):
        now = 10.0 + second
        feed(model, [a.heartbeat(), a.metrics(connected_clients=second, tick_ms_p99=2.0),
                     b.heartbeat(), b.metrics(connected_clients=10, tick_ms_p99=9.0)], now)
        model.advance(now)
        model.advance(now + 0.5)  # within the second: no new sample
    players = present.series(model, "players", 14.0)
    assert players["alpha"] == ([-4.0, -3.0, -2.0, -1.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert players["total"][1] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert present.series(model, "tick_ms_p99", 14.0)["total"][1] == [9.0] * 5


def test_human_numbers():
    assert present.human_bytes(999) == "999 B"
    assert present.human_bytes(1234) == "1.23 kB"
    assert present.human_bytes(123456) == "123 kB"
    assert present.human_bytes(2_500_000) == "2.5 MB"
    assert present.human_number(1234567.0) == "1,234,567"
    assert present.human_number(2.5) == "2.5"


def test_text_view_prints_the_same_numbers_and_writes_json(model, tmp_path):
    a = Sender("alpha")
    feed(model, [a.heartbeat(), a.metrics(connected_clients=42, events_per_sec=1234.0),
                 *a.cell(fulls=[(1, 0, 10.0, 20.0, "p1")], keyframe=True)], 1.0)
    text = render(model, 1.0)
    assert "players: 42" in text and "alpha" in text and "1,234" in text
    assert "map: alpha 1" in text
    out: list[str] = []
    path = tmp_path / "shown.json"
    view = TextView(model, out.append, json_path=str(path), clear=False)
    view(1.0)
    view(1.5)  # at most once a second
    assert len(out) == 1
    shown = json.loads(path.read_text())
    assert shown["nodes"][0]["players"] == 42
    assert shown["dots"]["total"] == 1


def test_the_text_view_keeps_its_note_under_the_title_at_each_redraw(model):
    out: list[str] = []
    view = TextView(model, out.append, clear=True, note="no window: no X display")
    view(1.0)
    view(2.0)
    assert len(out) == 2
    for screen in out:
        assert screen.startswith("\x1b[H\x1b[2J")
        assert screen.splitlines()[1] == "no window: no X display"
    assert "no window" not in render(model, 1.0)


def test_zone_groups_are_the_zone_cells_groups():
    groups = CellGroups(cell_block("239.255.0.1", "auto", 16))
    small = Zone("arena", 300, 300, 100.0)
    expected = {groups.group_for("arena", c) for c in range(9)}
    assert set(zone_groups(groups, small)) == expected
    big = Zone("world", 2000, 2000, 100.0)
    assert zone_groups(groups, big) == groups.groups


# -- the listener against real node services on an in-memory network -------------


class Network(FakeCluster):
    """Two nodes with players and a monitor, on one Clock and one FakeMulticast."""

    def __init__(self, ids: tuple[str, ...] = ("alpha", "beta"), **overrides) -> None:
        super().__init__(list(ids), key=KEY, max_speed=100_000.0, **overrides)
        settings = monitor_settings()
        self.model = ClusterModel(settings.zone, key=KEY)
        self.monitor = MonitorService(self.model, settings, self.clock, self.net)
        self.redraws: list[float] = []
        self.monitor.views.append(self.redraws.append)
        self.monitor.startService()

    def run(self, seconds: float) -> None:
        self.step(round(seconds * 10))


def test_monitor_shows_nodes_players_and_dots_of_real_node_services():
    n = Network()
    # The control group, the metrics group (which nodes do not join) and the cells'.
    assert n.monitor.port.joined == {"239.255.0.1", "239.255.0.18", *n.monitor.groups.groups}
    players = [FakePlayer(n.nodes[0], f"a{i}") for i in range(3)]
    players += [FakePlayer(n.nodes[1], f"b{i}") for i in range(2)]
    n.run(3.0)
    assert n.model.nodes["alpha"].metrics["connected_clients"] == 3
    assert n.model.nodes["beta"].metrics["connected_clients"] == 2
    rows = {r.node: r for r in present.rows(n.model, n.clock.seconds())}
    assert {k: (r.players, r.state) for k, r in rows.items()} == {
        "alpha": (3, LIVE), "beta": (2, LIVE)}
    assert {k: len(v) for k, v in present.dots_by_node(n.model).items()} == {
        "alpha": 3, "beta": 2}
    assert n.redraws, "views are told to redraw"
    n.kill(0)
    n.run(2.1)
    assert n.model.nodes["alpha"].state == STALE
    n.run(1.0)
    assert n.model.nodes["alpha"].state == GONE
    assert {k: len(v) for k, v in present.dots_by_node(n.model).items()} == {"beta": 2}
    assert len(players) == 5


def deep_inside(node) -> list[tuple[float, float]]:
    """The middles of the cells of ``node``'s land that no other node's players can see."""
    zone = node.world.default_zone
    found = []
    for key in range(zone.cols * zone.rows):
        cx, cy = zone.cell_coords(key)
        x, y = (cx + 0.5) * zone.cell_size, (cy + 0.5) * zone.cell_size
        if node.placement.owner_at(zone.name, x, y) == node.node_id \
                and not node.placement.published(zone, key):
            found.append((x, y))
    return found


@pytest.mark.parametrize("ids", [("alpha", "beta"), ("alpha",)])
def test_the_map_shows_players_that_no_other_node_sees(ids):
    # With regions a node sends its neighbours only the cells their players
    # can see; the others go to the monitors alone, once a keyframe period
    # (and all of them from a node alone).
    n = Network(ids, placement="regions")
    n.run(1.0)
    owner = n.nodes[0]
    inside = deep_inside(owner)
    assert len(inside) >= 2, f"{owner.node_id} has no land out of the others' sight"
    (x, y), there = inside[0], inside[-1]
    owner.store.authenticate("hermit", "pw", True)
    owner.store.save_state("hermit", {"zone": "world", "x": x, "y": y})
    p = FakePlayer(owner, "hermit")
    n.run(3.0)
    assert p.entity is not None and (p.entity.x, p.entity.y) == (x, y)
    assert (x, y) in present.dots_by_node(n.model)[owner.node_id]
    others = [s for s in n.services if s.node_id != owner.node_id]
    assert all(not s.mirrors.players for s in others), "the other nodes were sent nothing of it"
    sent = n.services[n.nodes.index(owner)].publisher.monitor_keyframes
    assert sent > 0
    # It stays on the map: a keyframe each period, well inside the expiry.
    n.run(5.0)
    assert (x, y) in present.dots_by_node(n.model)[owner.node_id]
    assert n.services[n.nodes.index(owner)].publisher.monitor_keyframes > sent
    # Walking to another such cell: the old cell's next keyframe lists
    # nobody, the new one's lists it.
    p.entity.last_move -= 1.0
    p.send(m.Move(2, *there))
    n.run(1.5)
    assert present.dots_by_node(n.model)[owner.node_id] == [there]


def test_monitor_sends_nothing_and_nodes_do_not_see_it():
    n = Network()
    n.run(2.0)
    assert n.monitor.port.written == []
    assert "monitor" not in str(n.services[0].mirrors.nodes)
    assert set(n.services[0].mirrors.nodes) == {"beta"}


def test_the_key_file_is_waited_for_never_created(tmp_path):
    clock, net = Clock(), FakeMulticast()
    path = tmp_path / "cluster.key"
    settings = monitor_settings(cluster_key_file=str(path))
    model = ClusterModel(settings.zone)
    svc = MonitorService(model, settings, clock, net)
    svc.startService()
    clock.advance(3)
    assert not path.exists() and model.key is None
    assert sum("waiting for the cluster key" in e.text for e in model.events) == 1
    path.write_text(KEY.hex() + "\n")
    clock.advance(1)
    assert model.key == KEY
    svc.stopService()


def test_move_is_applied_through_the_node():
    # The monitor reads what the node publishes after a move.
    n = Network()
    p = FakePlayer(n.nodes[0], "walker")
    FakePlayer(n.nodes[1], "watcher")
    n.run(1.0)
    p.entity.last_move -= 1.0
    p.send(m.Move(1, 777.0, 555.0))
    n.run(1.0)
    assert (777.0, 555.0) in present.dots_by_node(n.model)["alpha"]


def test_settings_have_a_field_per_key_and_come_typed_from_the_options(tmp_path):
    from dataclasses import FrozenInstanceError, fields

    from mmo.gui.cli import Options

    assert [f.name for f in fields(MonitorSettings)] == list(MONITOR_SCHEMA.keys)
    config = tmp_path / "monitor.toml"
    config.write_text('mport = 30555\nzone = "arena:500x400"\n')
    options = Options()
    options.parseOptions(["--config", str(config), "--width", "1000", "--text",
                          "--cell-group-base", "239.255.9.1"])
    settings = options.settings
    assert isinstance(settings, MonitorSettings)
    assert (settings.mport, settings.zone, settings.width, settings.text) == (
        30555, ZoneSpec("arena", 500, 400), 1000, True)
    assert (settings.cell_group_base, settings.height) == ("239.255.9.1", 920)
    assert options.checked["mport"] == 30555
    with pytest.raises(FrozenInstanceError):
        settings.mport = 1  # type: ignore[misc]


def test_a_screenshot_needs_the_window():
    from twisted.python.usage import UsageError

    from mmo.gui.cli import Options

    with pytest.raises(UsageError, match="--screenshot needs the window"):
        Options().parseOptions(["--text", "--screenshot", "shot.png"])
    with pytest.raises(ConfigError):
        MONITOR_SCHEMA.check("cell_group_base", "10.0.0.1", "--cell-group-base")


def test_the_monitor_imports_nothing_of_the_server(tmp_path):
    code = ("import sys, mmo.monitor.listener, mmo.monitor.text, mmo.monitor.settings, "
            "mmo.gui.cli; "
            "bad = [m for m in sys.modules if m.startswith('mmo.server')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=tmp_path)


def test_nothing_qt_is_imported_by_the_node_the_loadgen_or_the_text_view(tmp_path):
    code = ("import sys, mmo.app.tap, mmo.loadgen.tap, mmo.monitor.listener, "
            "mmo.monitor.text, mmo.gui.cli; "
            "bad = [m for m in sys.modules if m.startswith(('PyQt5', 'pyqtgraph', "
            "'qt5reactor'))]; "
            "assert not bad, bad; "
            "assert 'twisted.internet.reactor' not in sys.modules")
    # Not from the source tree: mmo.gui is gui/ there, installed as mmo/gui.
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=tmp_path)


def test_metrics_too_long_for_a_datagram_stay_json_with_the_seed_keys_first():
    # A busy node's metrics outgrow one datagram: they must still decode.
    values = {f"counter_{i:03d}": 123456789 + i for i in range(200)}
    values.update(node_id="alpha", connected_clients=400, events_per_sec=4426.5,
                  tick_hz=10.0, tick_ms_p99=31.125, refusals={"full": 1})
    s = Sender("alpha")
    data = s.sealer.seal(codec.METRICS, codec.metrics_body(values, s.room))
    assert len(data) <= codec.MAX_DATAGRAM
    model = ClusterModel(WORLD, key=KEY)
    feed(model, [s.heartbeat(), data], 1.0)
    assert model.counters.malformed == 0
    shown = model.nodes["alpha"].metrics
    assert shown is not None and len(shown) > 20
    for k in ("node_id", "connected_clients", "events_per_sec", "tick_hz", "tick_ms_p99"):
        assert shown[k] == values[k]
    assert present.rows(model, 1.0)[0].players == 400


def test_malformed_datagrams_are_said_once_per_burst(model):
    a = Sender("alpha")
    feed(model, [a.sealer.seal(codec.HEARTBEAT, b"\x00") for _ in range(20)], 1.0)
    assert model.counters.malformed == 20
    assert sum("could not be read" in e.text for e in model.events) == 1


def test_a_recording_played_to_a_monitor_started_after_it_is_refused_and_said_once():
    now = [1_700_000_000.0]
    sealer = codec.Sealer(KEY, "alpha", 1, clock=lambda: now[0])
    hb = codec.Heartbeat(4000, 1, 1, 100.0, 1000, "127.0.0.1", "0.1.0")
    recorded = [sealer.seal(codec.HEARTBEAT, hb.body()) for _ in range(5)]
    now[0] += 1.0
    model = ClusterModel(WORLD, key=KEY)
    model.opener.start(lambda: now[0])
    feed(model, recorded, 0.0)
    assert model.nodes == {} and model.counters.untimely == 5
    assert model.counters.replays == 5 and model.counters.accepted == 0
    said = [e.text for e in model.events if "clock stamp" in e.text]
    assert len(said) == 1 and "alpha" in said[0] and "before this reader started" in said[0]
    # What the node sends now is read.
    feed(model, sealer.seal(codec.HEARTBEAT, hb.body()), 1.0)
    assert model.nodes["alpha"].state == LIVE

