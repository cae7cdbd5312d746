"""
``mmo-monitor`` as its users run it: two real nodes, a load generator, and
the monitor offscreen (window) and as text, on 127.0.0.1 and loopback
multicast only.  Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.request

import pytest
from support import BIN, Process, WireClient, cluster_args, wait_until
from test_monitor_regions import counts_of, expected

from mmo.cluster import codec

pytest.importorskip("PyQt5.QtWidgets")
pytest.importorskip("qt5reactor")
pytest.importorskip("pyqtgraph")

MONITOR = str(BIN / "mmo-monitor")
LOADGEN = str(BIN / "mmo-loadgen")
BOTS = 120
OFFSCREEN = {"QT_QPA_PLATFORM": "offscreen"}


def players_on(node) -> int:
    """``mmo_players`` from the node's own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if re.match(r"mmo_players[ {]", line)))


def read_json(path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def send_forged(group: str, port: int) -> None:
    """A datagram signed with another key, sent like a node sends (loopback, TTL 0)."""
    data = codec.Sealer(b"x" * 32, "mallory", 1).seal(
        codec.HEARTBEAT, codec.Heartbeat(4000, 99, 99, 100.0, 1000, "127.0.0.1", "0").body())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        s.sendto(data, (group, port))


def rows_of(shown: dict) -> dict[str, dict]:
    return {n["node"]: n for n in shown["nodes"]}


def test_two_nodes_bots_and_the_monitor(start_node, tmp_path):
    group = cluster_args()
    key = ["--cluster-key-file", str(tmp_path / "cluster.key")]
    common = [*group, *key]
    alpha = start_node(*common, "--node-id", "alpha", "--max-per-ip", "0", name="alpha")
    beta = start_node(*common, "--node-id", "beta", "--max-per-ip", "0", name="beta")
    procs: list[Process] = []
    try:
        procs.append(Process([
            LOADGEN, "--targets", f"127.0.0.1:{alpha.port},127.0.0.1:{beta.port}",
            "--clients", str(BOTS), "--rate", "5", "--ramp", "400", "--duration", "60",
            "--spread", "uniform", "--no-progress"], tmp_path, "loadgen"))
        wait_until(lambda: players_on(alpha) + players_on(beta) == BOTS, timeout=20,
                   interval=0.2, what=f"the nodes to count {BOTS} players")

        shown_path = tmp_path / "shown.json"
        png = tmp_path / "monitor.png"
        window = Process([MONITOR, *common, "--json", str(shown_path)], tmp_path,
                         "monitor", env=OFFSCREEN)
        shot = Process([MONITOR, *common, "--screenshot", str(png), "--after", "5"],
                       tmp_path, "screenshot", env=OFFSCREEN)
        text = Process([MONITOR, *common, "--text", "--duration", "4"], tmp_path, "text")
        procs += [window, shot, text]

        # The table shows both nodes with the player counts the nodes report,
        # and the map one dot per player.
        def agrees() -> dict | None:
            shown = read_json(shown_path)
            if shown is None:
                return None
            rows = rows_of(shown)
            expected = {"alpha": players_on(alpha), "beta": players_on(beta)}
            got = {k: int(v["players"].replace(",", "")) for k, v in rows.items()}
            if got == expected and shown["dots"]["total"] == BOTS \
                    and shown["dots"]["by_node"] == expected:
                return shown
            return None

        shown = wait_until(agrees, timeout=20, interval=0.2,
                           what="the monitor to agree with the nodes")
        assert {r["state"] for r in shown["nodes"]} == {"live"}
        # The regions of the zone, owned as the nodes compute it (the
        # monitor's defaults are the nodes': world:2000x2000, cells of 100).
        owners = counts_of(expected(["alpha", "beta"]))
        assert shown["regions"]["by_node"] == owners
        assert {n: int(r["regions"]) for n, r in rows_of(shown).items()} == owners
        assert shown["regions"]["colours"] == shown["node_colours"]
        assert shown["totals"]["players"] == f"{BOTS:,}"

        # Datagrams failing authentication are counted, not shown.
        send_forged(group[1], int(group[3]))
        shown = wait_until(lambda: (s := read_json(shown_path)) and
                           s["totals"]["auth failures"] != "0" and s,
                           timeout=10, what="the forged datagram to be counted")
        assert set(rows_of(shown)) == {"alpha", "beta"}

        # The screenshot: a PNG of the window's size, showing the same.
        assert shot.wait(30) == 0, shot.output[-3000:]
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        meta = json.loads((tmp_path / "monitor.png.json").read_text())
        size = [int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")]
        assert size == meta["size"] and size[0] > 0 and size[1] > 0
        assert set(rows_of(meta)) == {"alpha", "beta"}
        assert meta["dots"]["total"] > 0

        # The text view prints the same table, then stops by itself.
        assert text.wait(30) == 0, text.output[-3000:]
        out = text.output
        assert re.search(r"^alpha\s+127\.0\.0\.1:\d+\s+\d+", out, re.M), out[-3000:]
        assert re.search(r"^beta\s+127\.0\.0\.1:\d+\s+\d+", out, re.M), out[-3000:]
        assert f"players: {BOTS:,}" in out

        # Kill a node: its row turns stale within the expiry (3 s), then gone.
        beta.proc.kill()
        killed = time.monotonic()
        wait_until(lambda: rows_of(read_json(shown_path) or {"nodes": []})
                   .get("beta", {}).get("state") == "stale",
                   timeout=10, interval=0.05, what="beta to turn stale")
        assert time.monotonic() - killed <= 3.0 + 1.0  # expiry, plus a redraw or two
        shown = wait_until(lambda: (s := read_json(shown_path)) and
                           rows_of(s)["beta"]["state"] == "gone" and s,
                           timeout=10, interval=0.05, what="beta to be gone")
        assert rows_of(shown)["alpha"]["state"] == "live"
        assert set(shown["dots"]["by_node"]) <= {"alpha"}
        assert any("beta is stale" in line for line in shown["events"])
    finally:
        for p in procs:
            p.stop()
        beta.stop()


def test_the_window_needs_no_node_and_exits_after_its_screenshot(tmp_path):
    png = tmp_path / "empty.png"
    mon = Process([MONITOR, *cluster_args(), "--cluster-key-file", str(tmp_path / "none.key"),
                   "--screenshot", str(png), "--after", "1.5", "--width", "900",
                   "--height", "600"], tmp_path, "monitor", env=OFFSCREEN)
    try:
        assert mon.wait(30) == 0, mon.output[-3000:]
    finally:
        mon.stop()
    meta = json.loads((tmp_path / "empty.png.json").read_text())
    assert meta["size"] == [900, 600] and meta["nodes"] == []
    assert any("waiting for the cluster key" in line for line in meta["events"])
    assert not (tmp_path / "none.key").exists()
    assert os.path.getsize(png) > 1000


def test_a_lone_node_puts_its_players_on_the_map(start_node, tmp_path):
    # A node that hears no other node sends no cell to other nodes; the
    # monitors still get a keyframe of its cells each keyframe period.
    common = [*cluster_args(), "--cluster-key-file", str(tmp_path / "cluster.key")]
    alone = start_node(*common, "--node-id", "alone", name="alone")
    client = WireClient(alone.port)
    try:
        client.login("hermit")
        text = Process([MONITOR, *common, "--text", "--duration", "4"], tmp_path, "text")
        try:
            assert text.wait(30) == 0, text.output[-3000:]
        finally:
            text.stop()
        frames = re.findall(r"players: (\d+) .* on map: (\d+)", text.output)
        assert ("1", "1") in frames, text.output[-3000:]
    finally:
        client.close()
