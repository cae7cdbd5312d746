"""Seconds-long runs of the benchmarks: they run end to end."""

from __future__ import annotations

import gc
import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_capacity_benchmark_smoke(tmp_path):
    out = tmp_path / "capacity.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "capacity.py"), "--smoke",
         "--steps", "60", "--seconds", "2", "--workers", "1",
         "--scenarios", "world,baseline,baseline-hub", "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    node, base, hub = results["world"][0], results["baseline"][0], results["baseline_hub"][0]
    for r in (node, base, hub):
        assert r["logged_in"] == 60 and r["failures"] == 0
        assert 0 < r["update_age_ms_p50"] < 1000
        assert r["updates_per_sec"] > 0 and r["server_cpu_pct"] > 0
    assert 0 < node["tick_ms_p99"] < 1000
    assert results["capacity"]["world"] == 60
    assert "| node |" in run.stdout
    # Per core, read off one table: node and baseline per delivered update,
    # the generator per bot and tick, and their ratios.
    (row,) = results["per_core"]
    assert row["bots"] == 60 and row["node_us_per_update"] > 0
    assert row["baseline_us_per_update"] > 0 and row["loadgen_us_per_bot_tick"] > 0
    assert row["baseline_over_node"] == round(
        row["baseline_us_per_update"] / row["node_us_per_update"], 2)
    # And against the baseline that reads as the node does (one epoll hub).
    assert row["baseline_hub_over_node"] == round(
        row["baseline_hub_us_per_update"] / row["node_us_per_update"], 2)
    assert "## per core" in run.stdout


def test_transport_benchmark_smoke(tmp_path):
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        pytest.skip("redis-server and redis-benchmark are not installed (Debian: redis-server)")
    pytest.importorskip("txredisapi", reason="pip install 'mmo[redis]'")
    out = tmp_path / "transport.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "transport.py"), "--seconds", "0.5",
         "--sizes", "200", "--rates", "1000", "--receivers", "1", "--ceiling", "20000",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {(r["transport"], r["rate"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {("redis", "max"), ("multicast", "max"), ("redis", 1000),
                         ("multicast", 1000), ("redis, C clients", "max")}
    for kind in ("redis", "multicast"):
        fixed = rows[(kind, 1000)]
        assert fixed["received_per_sec"] > 500 and fixed["sender_cpu_pct"] > 0
        assert 0 < fixed["delay_ms_p50"] < 1000
        assert rows[(kind, "max")]["received_per_sec"] > 1000
    assert rows[("redis", 1000)]["redis_cpu_pct"] is not None
    assert "| redis |" in run.stdout


def test_websocket_benchmark_smoke(tmp_path):
    out = tmp_path / "websocket.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "websocket.py"), "--bots", "40",
         "--seconds", "2", "--rounds", "1", "--workers", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [p["transport"] for p in results["phases"]] == ["tcp", "ws"]
    for phase in results["phases"]:
        assert phase["logged_in"] == 40 and phase["failures"] == 0
        assert phase["updates_per_sec"] > 0 and phase["cpu_us_per_update"] > 0
    assert results["summary"]["ws_vs_tcp"] > 0
    assert "| ws | 0 | 40 |" in run.stdout


def test_scaling_benchmark_smoke(tmp_path):
    out = tmp_path / "scaling.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--smoke",
         "--region-cells", "1", "--region-block", "1", "--out", str(out),
         "--placements", "today,alone,regions,pinned"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = {(r["nodes"], r["placement"]): r for r in results["rows"]}
    assert set(rows) == {(n, p) for n in (1, 2, 4) for p in ("today", "alone", "regions", "pinned")}
    for r in rows.values():
        assert r["ticks"] > 0 and r["cpu_ms_per_tick_mean"] > 0
        assert r["players"] == 30 * r["nodes"]
    # Regions: every player on its region's owner (and players did cross borders).
    assert all(r.get("misplaced", 0) == 0 for r in rows.values())
    assert rows[(4, "regions")]["handoffs_per_tick"] > 0
    # A handed-over player's arrival is the new node's cost, counted in its tick's.
    assert 0 < rows[(4, "regions")]["arrival_ms"] < rows[(4, "regions")]["cpu_ms_per_tick_mean"]
    assert rows[(1, "regions")]["arrival_ms"] == 0
    # The collector's time is counted apart, for every placement.
    assert all(r["gc_ms"] >= 0 for r in rows.values())
    # Pinned: each of the four nodes owns a quarter of the zone, so each has players.
    assert rows[(4, "pinned")]["players_per_node_max"] < 60
    assert rows[(4, "pinned")]["mirrored_per_node"] > 0
    # Today, a node of four mirrors most of the others' players.
    assert rows[(4, "today")]["mirrored_per_node"] > rows[(4, "regions")]["mirrored_per_node"]
    for placement in ("today", "regions"):
        assert results["ratios"][placement]["1"] == 1.0
        assert results["ratios"][placement]["4"] > 0
    assert "| regions | 1.0 |" in run.stdout and "| today | 1.0 |" in run.stdout
    assert "hand a player crossing a border over themselves" in run.stdout
    # The control: N lone nodes side by side, each costing what a node alone costs,
    # and every placement's cost over it at the same N.
    assert rows[(4, "alone")]["mirrored_per_node"] == 0
    assert rows[(4, "alone")]["players_per_node_max"] == 30
    assert results["over_alone"]["regions"]["4"] == rows[(4, "regions")]["over_alone"] > 0
    assert "| regions | " in run.stdout.split("lone nodes' in this process")[1]


def test_timeparts_times_the_named_functions_inside_a_benchmark(tmp_path):
    run = subprocess.run(
        [sys.executable, "-P", str(ROOT / "benchmarks" / "timeparts.py"),
         "mmo.server.handoff:Handoffs.tick,mmo.cluster.streams:Publisher.observe",
         str(ROOT / "benchmarks" / "scaling.py"), "--smoke", "--nodes", "1,2",
         "--placements", "pinned", "--out", str(tmp_path / "scaling.json")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ticks = json.loads((tmp_path / "scaling.json").read_text())["rows"]
    node_ticks = sum(r["nodes"] * r["ticks"] for r in ticks)
    for name in ("Handoffs.tick", "Publisher.observe"):
        [line] = [x for x in run.stderr.splitlines() if x.startswith(name + ":")]
        calls = int(line.split(": ")[1].split(" calls")[0])
        assert calls >= node_ticks, line  # every node's tick, warm-up included
        assert "median of the second half" in line


def test_ownership_shapes_smoke():
    # The pinned rectangles of 4 nodes of 300: a border share, larger with
    # a reach of two cells than with the default settings' one.
    found = {}
    for reach in ("1", "2"):
        run = subprocess.run(
            [sys.executable, "-P", str(ROOT / "benchmarks" / "ownership_shapes.py"),
             "--nodes", "4", "--players", "300", "--no-moves", "--reach", reach],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        [row] = [x for x in run.stdout.splitlines() if "| pinned |" in x]
        found[reach] = float(row.split("|")[6])
    assert 0 < found["1"] < found["2"] <= 1


def from_benchmarks(name):
    """
    A module of benchmarks/, imported by path, and everything it added to
    sys.path taken away after: benchmarks/ holds a websocket.py that would
    hide the library of that name.
    """
    bench = str(ROOT / "benchmarks")
    path, modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, bench)
    try:
        module = importlib.import_module(name)
    finally:
        sys.path[:] = path
        for added in set(sys.modules) - modules:
            if getattr(sys.modules[added], "__file__", "") and \
                    str(sys.modules[added].__file__).startswith(bench):
                del sys.modules[added]
    assert bench not in sys.path
    return module


def test_scalings_clock_counts_the_collectors_time_apart():
    clock = from_benchmarks("scaling").CollectorClock()
    gc.collect()
    gc.callbacks.append(clock.observe)
    try:
        # Cycles only the collector frees, many of them: a collection that takes time.
        for _ in range(5):
            garbage = [[] for _ in range(200_000)]
            for i in range(len(garbage)):
                garbage[i - 1].append(garbage[i])  # a ring
            del garbage
            before, spent = clock(), clock.spent
            freed = gc.collect()
            assert freed >= 200_000 and clock.spent > spent
            # What the collection took is in spent, not in the clock's time.
            assert clock() - before < clock.spent - spent
    finally:
        gc.callbacks.remove(clock.observe)


@pytest.mark.parametrize("placement", ["pinned", "alone"])
def test_scaling_calls_only_the_nodes_work_of_the_measured_ticks_through_node_call(
        monkeypatch, placement):
    scaling = from_benchmarks("scaling")
    called = []

    def recording(f, *args, **kwargs):
        called.append(getattr(f, "__name__", repr(f)))
        return f(*args, **kwargs)

    monkeypatch.setattr(scaling, "node_call", recording)
    nodes, ticks = 2, 3
    if placement == "alone":
        r = scaling.run_alone(nodes, 20, ticks, 2, 60.0, 1, 1, 1, 4096)
    else:
        r = scaling.run(nodes, 20, placement, ticks, 2, 60.0, 1, 1, 1, 4096)
    assert r["ticks"] == ticks
    # Each node's input and tick, once a measured tick: none of the warm-up's.
    assert called.count("_feed") == called.count("tick") == nodes * ticks
    assert set(called) <= {"_feed", "tick", "flush", "_receive", "FakePlayer", "dataReceived"}


def test_the_pinned_layout_cuts_the_zone_into_equal_rectangles():
    grid_pins = from_benchmarks("scaling").grid_pins
    ids = [f"n{i}" for i in range(16)]
    # 76 cells cut in four both ways: regions of 19 cells, one each.
    side, pins = grid_pins(16, 76, ids)
    assert side == 19 and pins[0] == "w:0-0,0-0=n0" and pins[-1] == "w:3-3,3-3=n15"
    # 30 cells do not cut in four: one-cell regions, rectangles of 7 or 8 cells a side.
    side, pins = grid_pins(16, 30, ids)
    assert side == 1 and pins[:2] == ["w:0-7,0-7=n0", "w:8-14,0-7=n1"]
    assert grid_pins(2, 30, ids)[1] == ["w:0-0,0-1=n0", "w:1-1,0-1=n1"]
    with pytest.raises(SystemExit, match="power of two"):
        grid_pins(3, 30, ids)


@pytest.mark.parametrize("hub", [True, False])
def test_node_cost_benchmark_smoke(tmp_path, hub):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "node_cost.py"), "30", "3",
         *([] if hub else ["--no-hub"])],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = re.search(r"30 players, 3 ticks, hub (on|off): ([\d.]+) µs CPU a player and tick "
                      r"\(node and players\), ([\d.]+) entity updates a player and tick; "
                      r"30 sessions", run.stdout)
    assert found, run.stdout
    assert found.group(1) == ("on" if hub else "off")
    # Every player walks in view of the others (a zone of 300 x 300 for 30).
    assert float(found.group(2)) > 0 and float(found.group(3)) > 5
