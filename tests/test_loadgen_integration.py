"""The load generator as its users run it, against a real ``twistd -n mmo`` on 127.0.0.1."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request

import pytest
from support import BIN, TWISTD, Process, wait_until

from mmo.loadgen.report import REPORT_FIELDS

LOADGEN = str(BIN / "mmo-loadgen")


def players_on(node) -> float:
    """``mmo_players`` from the node's own /metrics."""
    url = f"http://127.0.0.1:{node.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if re.match(r"mmo_players[ {]", line)]
    assert values, f"no mmo_players in /metrics:\n{text[:2000]}"
    return sum(values)


def run_loadgen(tmp_path, argv, name="loadgen") -> Process:
    return Process(argv, tmp_path, name)


def test_200_bots_for_10_seconds(start_node, tmp_path):
    node = start_node("--max-per-ip", "0")
    report_path = tmp_path / "report.json"
    lg = run_loadgen(tmp_path, [
        LOADGEN, "--host", "127.0.0.1", "--port", str(node.port), "--clients", "200",
        "--rate", "10", "--ramp", "400", "--duration", "10", "--seed", "7",
        "--report", str(report_path)])
    try:
        # The node counts the same players the bots think they are.
        wait_until(lambda: players_on(node) == 200, timeout=15, interval=0.2,
                   what="the node to count 200 players")
        code = lg.wait(40)
    finally:
        lg.stop()
    out = lg.output
    assert code == 0, out[-3000:]
    report = json.loads(report_path.read_text())
    assert set(REPORT_FIELDS) <= set(report)
    assert report["bots"] == {"planned": 200, "started": 200, "connected": 200,
                              "logged_in": 200, "failed": 0}
    assert report["errors"]["total"] == 0, report["errors"]
    assert report["disconnects"]["total"] == 0, report["disconnects"]
    assert report["ok"] and report["seed"] == 7
    for name in ("rtt", "update_age", "connect", "login"):
        s = report["latency_ms"][name]
        assert s["count"] > 0, name
        assert 0 < s["p50"] <= s["p90"] <= s["p99"] <= s["max"] < 1000, (name, s)
    assert report["latency_ms"]["update_age"]["count"] > 200 * 50
    assert report["per_bot"]["updates_per_sec"]["p50"] > 5
    assert report["per_bot"]["entities_seen"]["max"] > 0
    assert report["actions"]["moves_sent"] > 200 * 50
    assert 9 <= report["elapsed_s"] < 20
    # Progress once a second, then the summary.
    assert len(re.findall(r"^\[\s*\d+s\] bots \d+/200 playing", out, re.M)) >= 8
    assert "result: OK" in out
    # Every connection was closed at the end.
    wait_until(lambda: players_on(node) == 0, timeout=10, interval=0.1,
               what="the node to see every bot leave")


@pytest.mark.parametrize("sig, reason", [(signal.SIGTERM, "server_shutdown"),
                                         (signal.SIGKILL, "connection_lost")])
def test_node_dies_mid_run(start_node, tmp_path, sig, reason):
    node = start_node("--max-per-ip", "0", "--shutdown-grace", "0.5")
    report_path = tmp_path / "report.json"
    lg = run_loadgen(tmp_path, [
        TWISTD, "-n", "--pidfile=", "mmo-loadgen", "--port", str(node.port),
        "--clients", "50", "--ramp", "500", "--duration", "60", "--come-back", "off",
        "--report", str(report_path)])
    try:
        wait_until(lambda: players_on(node) == 50, timeout=15, interval=0.1,
                   what="50 players on the node")
        node.signal(sig)
        # It ends by itself long before --duration, with a failing code.
        code = lg.wait(30)
    finally:
        lg.stop()
    assert code != 0, lg.output[-3000:]
    report = json.loads(report_path.read_text())
    assert report["disconnects"]["by_reason"] == {reason: 50}
    assert report["failures"]["by_reason"] == {reason: 50}
    assert not report["ok"] and report["elapsed_s"] < 30


def test_workers_merge_under_twistd(start_node, tmp_path):
    node = start_node("--max-per-ip", "0")
    report_path = tmp_path / "report.json"
    lg = run_loadgen(tmp_path, [
        TWISTD, "-n", "--pidfile=", "mmo-loadgen",
        "--port", str(node.port), "--clients", "40", "--workers", "2",
        "--ramp", "200", "--duration", "3", "--report", str(report_path)])
    try:
        code = lg.wait(40)
    finally:
        lg.stop()
    assert code == 0, lg.output[-3000:]
    report = json.loads(report_path.read_text())
    assert report["workers"] == 2
    assert report["bots"]["logged_in"] == 40 and report["failures"]["total"] == 0
    assert report["latency_ms"]["rtt"]["count"] > 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_interrupted_run_still_reports(start_node, tmp_path, workers):
    node = start_node("--max-per-ip", "0")
    report_path = tmp_path / "report.json"
    lg = run_loadgen(tmp_path, [
        LOADGEN, "--port", str(node.port), "--clients", "20", "--workers", workers,
        "--ramp", "200", "--duration", "120", "--report", str(report_path)])
    try:
        wait_until(lambda: players_on(node) == 20, timeout=15, interval=0.1,
                   what="20 players on the node")
        lg.signal(signal.SIGTERM)
        code = lg.wait(20)
    finally:
        lg.stop()
    assert code == 0, lg.output[-3000:]
    report = json.loads(report_path.read_text())
    assert report["bots"]["logged_in"] == 20 and report["failures"]["total"] == 0
    assert report["elapsed_s"] < 60
    wait_until(lambda: players_on(node) == 0, timeout=10, interval=0.1,
               what="the node to see every bot leave")


def test_no_node_fails_fast(tmp_path):
    from support import free_port

    lg = run_loadgen(tmp_path, [LOADGEN, "--port", str(free_port()), "--clients", "3",
                                "--ramp", "100", "--duration", "30"])
    try:
        code = lg.wait(20)
    finally:
        lg.stop()
    assert code == 1
    assert "failures: 3 (connect_refused 3)" in lg.output


def test_bad_flag_is_a_usage_error():
    out = subprocess.run([LOADGEN, "--targets", "nowhere"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert "is not host:port" in out.stderr
