"""The README's demo command runs a cluster, bots and the text view."""

from __future__ import annotations

import json
import re
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
    # Every bot got in, and the text view counted them: 40 bots and the
    # scripted player, less any bot being handed between the nodes at the
    # moment of a frame (it is on neither node's count then).
    report = json.loads((tmp_path / "demo" / "loadgen.json").read_text())
    assert report["bots"]["logged_in"] == 40 and report["bots"]["failed"] == 0
    counts = [int(n) for n in re.findall(r"players: (\d+)", out)]
    assert max(counts) >= 40, counts
    assert "demo: what the scripted player saw last" in out
    assert "demo: stopped" in out
