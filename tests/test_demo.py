"""The README's demo command runs a cluster, bots and the text view."""

from __future__ import annotations

import subprocess
import sys

from support import free_port


def test_demo_runs_and_stops_by_itself(tmp_path):
    mport = free_port(kind=2)  # SOCK_DGRAM
    run = subprocess.run(
        [sys.executable, "-m", "mmo.demo", "--duration", "8", "--bots", "40", "--npcs", "5",
         "--text", "--mport", str(mport), "--mgroup", "239.255.77.7",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "demo: node demo-1" in out and "demo: node demo-2" in out
    # Each node takes browser players: the page's address is printed.
    assert "demo: play in a browser on node demo-1: http://127.0.0.1:" in out
    assert "/play" in out
    # The text view saw both nodes live with the bots spread over them.
    last = out[out.rindex("mmo monitor"):]
    assert "demo-1" in last and "demo-2" in last and "live" in last
    assert "nodes: 2" in last
    # At some point every bot and the scripted player were in.
    assert "players: 41" in out
    assert "demo: what the scripted player saw last" in out
    assert "demo: stopped" in out
