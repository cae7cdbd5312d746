"""
The real ``twistd -n mmo`` seen from operations: a scrape checked by
promtool, a real Prometheus, sd_notify over a unix socket, and socket
activation through ``systemd-socket-activate``.  Only 127.0.0.1; every wait
has a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TWISTD, Process, WireClient, cluster_args, free_port, wait_until

from mmo.wire import messages as m


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package: "
                    f"{'prometheus' if name in ('promtool', 'prometheus') else 'systemd'})")
    return path


def test_metrics_and_health_of_a_real_node(start_node) -> None:
    node = start_node()
    assert node.http_port is not None
    player = WireClient(node.port)
    player.login("scraped")
    player.send(m.Move(1, 1e9, 1e9))  # out of bounds: corrected and counted

    def scrape() -> str | None:
        code, text = http_get(node.http_port, "/metrics")
        assert code == 200
        return text if "mmo_players 1.0" in text and "mmo_ticks_total 0.0" not in text else None

    text = wait_until(scrape, 10, what="a scrape with the player in it")
    for name in ("mmo_tick_duration_seconds_bucket", "mmo_player_received_bytes_total",
                 "mmo_player_sent_bytes_total", "mmo_player_messages_received_total",
                 "mmo_entity_updates_sent_total", 'mmo_refusals_total{reason="server_full"}',
                 "process_resident_memory_bytes", "mmo_node_info"):
        assert name in text, name
    assert http_get(node.http_port, "/healthz") == (200, "ok\n")
    assert http_get(node.http_port, "/readyz") == (200, "ok\n")
    assert http_get(node.http_port, "/nothing")[0] == 404
    assert "GET /metrics" not in node.output, "scrapes are not access-logged"


def sample(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in an exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in the scrape")


def test_a_node_held_up_shows_the_stall(start_node) -> None:
    node = start_node("--tick-rate", "20")

    def ticking() -> str | None:
        text = http_get(node.http_port, "/metrics")[1]
        return text if sample(text, "mmo_ticks_total") >= 5 else None

    calm = wait_until(ticking, 10, what="a few ticks")
    assert sample(calm, "mmo_tick_gap_recent_max_seconds") < 1.0
    # Freeze the whole process (as a long GC pause or a paused VM would):
    # the tick comes due and cannot run; the node answers nothing meanwhile.
    node.signal(signal.SIGSTOP)
    try:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            http_get(node.http_port, "/metrics", timeout=1.5)
    finally:
        node.signal(signal.SIGCONT)

    def stall_seen() -> str | None:
        text = http_get(node.http_port, "/metrics")[1]
        return text if sample(text, "mmo_tick_gap_recent_max_seconds") >= 1.4 else None

    text = wait_until(stall_seen, 10, what="the stall in /metrics")
    assert sample(text, "mmo_tick_lag_recent_max_seconds") >= 1.3
    assert sample(text, "mmo_tick_gap_max_seconds") >= 1.4
    assert sample(text, "mmo_ticks_skipped_total") >= 25
    assert sample(text, 'mmo_tick_lag_seconds_bucket{le="+Inf"}') \
        > sample(text, 'mmo_tick_lag_seconds_bucket{le="1.0"}')
    # The ticks themselves stayed short: their durations do not show it.
    assert sample(text, "mmo_tick_recent_p99_seconds") < 0.5


def test_promtool_accepts_a_live_scrape(start_node) -> None:
    promtool = tool("promtool")
    node = start_node()
    WireClient(node.port).login("linted")
    code, text = http_get(node.http_port, "/metrics")
    assert code == 200
    result = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr)


def test_http_none_serves_nothing(start_node) -> None:
    node = start_node("--http", "none")
    assert node.http_port is None
    assert "serving metrics" not in node.output


def test_a_real_prometheus_scrapes_a_node(start_node, tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    node = start_node()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: mmo\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{node.http_port}']\n")
    port = free_port()
    server = Process(
        [prometheus, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn"],
        tmp_path, "prometheus")
    try:
        def target_up() -> dict | None:
            try:
                code, body = http_get(port, "/api/v1/targets", timeout=2)
            except OSError:
                return None
            if code != 200:
                return None
            for target in json.loads(body)["data"]["activeTargets"]:
                if target["health"] == "up":
                    return target
            return None

        target = wait_until(target_up, 30, interval=0.2, what="the mmo target up")
        assert target["scrapeUrl"] == f"http://127.0.0.1:{node.http_port}/metrics"
        assert not target["lastError"]
    finally:
        server.stop()


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket in a short temporary directory, as systemd makes."""
    directory = tempfile.mkdtemp(prefix="mmo-notify-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def receive(sock: socket.socket, wanted: str, timeout: float = 10.0) -> list[str]:
    """Datagrams until one has the line ``wanted``; every one received."""
    got: list[str] = []
    sock.settimeout(timeout)
    while True:
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            raise AssertionError(f"no {wanted} within {timeout}s; got {got}") from None
        got.append(data)
        if wanted in data.split("\n"):
            return got


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_sd_notify_ready_watchdog_stopping(start_node, notify_socket, abstract: bool) -> None:
    sock, path = notify_socket
    if abstract:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"mmo-test-{os.getpid()}-{id(sock)}"
        sock.bind(b"\0" + name.encode())
        env_socket = "@" + name
    else:
        env_socket = path
    try:
        node = start_node("--tick-hz", "20", env={
            "NOTIFY_SOCKET": env_socket, "WATCHDOG_USEC": "200000"})
        ready = receive(sock, "READY=1")[-1].split("\n")
        assert f"MAINPID={node.proc.pid}" in ready
        # 0.2 s watchdog: a ping at least every 0.1 s from the 20 Hz tick.
        for _ in range(5):
            assert receive(sock, "WATCHDOG=1", timeout=2.0)
        node.signal(signal.SIGTERM)
        receive(sock, "STOPPING=1", timeout=10.0)
        node.wait(15)
    finally:
        if abstract:
            sock.close()


def test_socket_activation_through_systemd_socket_activate(tmp_path: Path) -> None:
    activate = tool("systemd-socket-activate")
    port = free_port()
    argv = [activate, "--fdname=players", "-l", f"127.0.0.1:{port}",
            TWISTD, "-n", "--pidfile=", "mmo",
            "--listen", "systemd:domain=INET:name=players",
            "--http", "tcp:0:interface=127.0.0.1",
            "--data-dir", str(tmp_path / "data"), "--password-iterations", "1000",
            *cluster_args()]
    proc = Process(argv, tmp_path, "activated")
    try:
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}")
        # The first connection waits in systemd's backlog while the node starts.
        player = WireClient(port, timeout=15)
        enter = player.login("activated")
        assert enter.node_id
        proc.wait_for(r"listening for players on systemd:domain=INET:name=players "
                      rf"\(IPv4Address\(type='TCP', host='127\.0\.0\.1', port={port}\)\)")
        http = int(proc.wait_for(r"serving metrics and health on \S+ \(IPv4Address\("
                                 r"type='TCP', host='[\d.]+', port=(\d+)\)\)").group(1))
        assert http_get(http, "/healthz") == (200, "ok\n")
        player.close()
    finally:
        proc.stop()
