"""
The seed's "run locally" steps, as its README gives them, and a shutdown
under load: what an operator coming from the seed does first.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from support import BIN, TWISTD, Process, wait_until
from test_floods_integration import metric

LOADGEN = str(BIN / "mmo-loadgen")


def port_free(port: int) -> bool:
    """Whether a listener could take ``port`` (as twistd does, past TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_seeds_steps_with_2000_bots(tmp_path: Path) -> None:
    # The seed's ports, as written; another run using them makes this skip.
    if not port_free(4000):
        pytest.skip("port 4000 is in use on this machine")
    # Step 1, the node with the seed's flags only (its --iface 0.0.0.0 would
    # send multicast out of the default interface: 127.0.0.1 keeps it here).
    node = Process([TWISTD, "-n", "--pidfile=", "mmo", "--tcp", "4000", "--mgroup", "239.255.0.1",
                    "--mport", "30001", "--iface", "127.0.0.1", "--http", "none"],
                   tmp_path, "node")
    try:
        node.wait_for(r"listening for players on tcp:4000", timeout=30)
        # Step 2, verbatim: 2,000 bots from this host, at the defaults.
        report = tmp_path / "report.json"
        lg = Process([LOADGEN, "--host", "127.0.0.1", "--port", "4000", "--clients", "2000",
                      "--rate", "10", "--report", str(report)], tmp_path, "loadgen")
        try:
            code = lg.wait(180)
        finally:
            lg.stop()
        out = json.loads(report.read_text())
        assert code == 0, lg.output[-3000:]
        assert out["bots"]["logged_in"] == 2000 and out["bots"]["failed"] == 0, out["bots"]
        assert out["errors"]["total"] == 0, out["errors"]
    finally:
        node.stop()


def test_sigterm_under_1000_bots_tells_every_one(start_node: Any, tmp_path: Path) -> None:
    node = start_node()
    report = tmp_path / "report.json"
    lg = Process([LOADGEN, "--host", "127.0.0.1", "--port", str(node.port), "--clients", "1000",
                  "--rate", "10", "--ramp", "1000", "--duration", "120",
                  "--come-back", "off", "--report", str(report)], tmp_path, "loadgen")
    try:
        wait_until(lambda: metric(node, "mmo_players") >= 1000, timeout=90, interval=0.2,
                   what="1000 bots in")
        node.signal(signal.SIGTERM)
        assert node.wait(60) == 0
        lg.wait(60)
    finally:
        lg.stop()
    out = json.loads(report.read_text())
    assert out["disconnects"]["by_reason"] == {"server_shutdown": 1000}, out["disconnects"]
    assert "connection_reset" not in json.dumps(out["errors"])
