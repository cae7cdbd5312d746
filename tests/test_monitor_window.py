"""The monitor's window, offscreen, drawn from a model fed with datagrams (no reactor)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PyQt5.QtWidgets")
pytest.importorskip("pyqtgraph")

from test_monitor import KEY, WORLD, Sender, feed, monitor_settings  # noqa: E402

from mmo.gui.window import MonitorWindow  # noqa: E402
from mmo.monitor import present  # noqa: E402
from mmo.monitor.model import ClusterModel  # noqa: E402


@pytest.fixture(scope="module")
def app():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


@pytest.fixture
def window(app):
    model = ClusterModel(WORLD, key=KEY)
    w = MonitorWindow(model, monitor_settings(width=1200, height=800))
    w.show()
    yield w
    w.close()


def populate(model: ClusterModel, now: float = 10.0) -> tuple[Sender, Sender]:
    a, b = Sender("alpha"), Sender("beta")
    for t in (now - 1, now):
        feed(model, [a.heartbeat(clients=3), b.heartbeat(clients=2),
                     a.metrics(connected_clients=3, events_per_sec=30.0, tick_ms_p99=4.0),
                     b.metrics(connected_clients=2, events_per_sec=20.0, tick_ms_p99=6.0)], t)
        model.advance(t)
    feed(model, a.cell(fulls=[(i, 0, 100.0 * i, 50.0, f"a{i}") for i in range(1, 4)],
                       keyframe=True), now)
    feed(model, b.cell(fulls=[(1, 0, 500.0, 500.0, "b1"), (2, 0, 600.0, 500.0, "b2"),
                              (9, 1, 700.0, 700.0, "npc")], keyframe=True, cell=55), now)
    return a, b


def test_window_shows_totals_table_map_charts_and_log(window):
    populate(window.model)
    window.refresh(10.0)
    shown = window.shown()
    assert shown["size"] == [1200, 800]
    assert shown["platform"] == "offscreen"
    assert shown["totals"]["nodes"] == "2"
    assert shown["totals"]["players"] == "5"
    assert shown["totals"]["on map"] == "5 +1 NPCs"
    assert [(n["node"], n["players"], n["state"]) for n in shown["nodes"]] == [
        ("alpha", "3", "live"), ("beta", "2", "live")]
    assert shown["nodes"][1]["p99 ms"] == "6.00"
    assert shown["dots"] == {"total": 5, "by_node": {"alpha": 3, "beta": 2}, "npcs": 1}
    assert shown["charts"]["players"] > 0
    assert any("node alpha appeared" in line for line in shown["events"])
    assert "0 failed authentication" in shown["status"]
    live_bg = present.STATE_COLOURS["live"][1]
    assert shown["row_colours"] == [live_bg, live_bg]


def test_rows_change_colour_as_nodes_go_stale_and_gone(window):
    a, _b = populate(window.model)
    feed(window.model, a.heartbeat(clients=3), 12.0)
    window.model.advance(12.0)
    window.refresh(12.0)
    shown = window.shown()
    assert [(n["node"], n["state"]) for n in shown["nodes"]] == [
        ("alpha", "live"), ("beta", "stale")]
    assert shown["row_colours"][1] == present.STATE_COLOURS["stale"][1]
    assert shown["totals"]["nodes"] == "1 +1 stale"
    feed(window.model, [a.heartbeat(clients=3), *a.cell(
        fulls=[(i, 0, 100.0 * i, 50.0, f"a{i}") for i in range(1, 4)], keyframe=True)], 13.0)
    window.model.advance(13.5)
    window.refresh(13.5)
    shown = window.shown()
    assert shown["nodes"][1]["state"] == "gone"
    assert shown["row_colours"][1] == present.STATE_COLOURS["gone"][1]
    assert shown["dots"]["by_node"] == {"alpha": 3}
    assert any("beta is gone" in line for line in shown["events"])


def test_failed_authentication_is_counted_not_shown(window):
    populate(window.model)
    feed(window.model, Sender("mallory", key=b"x" * 32).heartbeat(clients=99), 10.0)
    window.refresh(10.0)
    shown = window.shown()
    assert shown["totals"]["auth failures"] == "1"
    assert "mallory" not in {n["node"] for n in shown["nodes"]}
    assert "1 failed authentication" in shown["status"]


def test_window_grabs_to_a_png_of_its_size(window, tmp_path):
    populate(window.model)
    window.refresh(10.0)
    path = tmp_path / "w.png"
    assert window.grab().save(str(path), "PNG")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 800)


def test_regions_are_drawn_under_the_dots_in_their_owners_colours(window):
    from test_monitor_regions import expected

    a, b = populate(window.model)
    window.refresh(10.0)
    drawn = window.map.drawn_regions()
    colours = present.node_colours(window.model)
    want: dict[str, list] = {}
    for bounds, owner in expected(["alpha", "beta"]):
        want.setdefault(owner, []).append(bounds)
    assert {owner: sorted(r["rects"]) for owner, r in drawn.items()} == {
        owner: sorted(rects) for owner, rects in want.items()}
    for owner, r in drawn.items():
        assert r["colour"] == r["border"] == colours[owner]
        assert r["alpha"] == present.REGION_ALPHA
    assert window.map.regions["alpha"].zValue() < min(i.zValue() for i in window.map.items.values())
    shown = window.shown()
    assert shown["regions"]["total"] == 16
    assert shown["regions"]["by_node"] == {o: len(r) for o, r in want.items()}
    assert {n["node"]: n["regions"] for n in shown["nodes"]} == {
        o: str(len(r)) for o, r in want.items()}

    # Redrawn only when owners change: the same items while they do not.
    items = dict(window.map.regions)
    feed(window.model, [a.heartbeat(clients=3), b.heartbeat(clients=2)], 10.5)
    window.model.advance(10.5)
    window.refresh(10.5)
    assert window.map.regions == items
    feed(window.model, b.bye(), 11.0)
    window.refresh(11.0)
    drawn = window.map.drawn_regions()
    assert list(drawn) == ["alpha"] and len(drawn["alpha"]["rects"]) == 16
    assert all(item not in window.map.getPlotItem().items for item in items.values())
