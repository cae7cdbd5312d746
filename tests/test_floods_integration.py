"""
Floods over a real socket against ``twistd -n mmo`` while 200 bots play:
one client sending one frame kind as fast as it can (and reading nothing,
or everything) must not hold the node up for the others, nor grow its
memory. Measured against a quiet run of the same node and bots.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support import BIN, Process, WireClient, wait_until

from mmo.wire import messages as m

LOADGEN = str(BIN / "mmo-loadgen")
BOTS = 200
SECONDS = 10
#: Milliseconds of noise allowed over the quiet run, whatever the ratio: half
#: a 10 Hz tick, for a shared machine (unprotected, a Who flood took the
#: bots' update age p99 to 18 s and the node to 0.23 ticks a second).
SLACK_MS = 50.0
#: The flood kinds: what the flooder sends, after logging in (or not).
FLOODS: dict[str, tuple[bool, bytes]] = {
    "who": (True, m.Who().encode()),
    "ping": (True, m.Ping(1, 0.0).encode()),
    "change_zone": (True, m.ChangeZone("arena").encode()),
    "move": (True, m.Move(1, 10.0, 10.0).encode()),
    "chat": (True, m.Chat(m.Channel.SAY, "spam").encode()),
    "login_before_play": (False, m.Hello().encode() + m.Login("flood", "pw").encode() * 64),
}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metric(node: Any, name: str) -> float:
    url = f"http://127.0.0.1:{node.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}")


class Flooder(threading.Thread):
    """Sends ``chunk`` as fast as the socket takes it until ``stop``; reads and drops."""

    def __init__(self, port: int, login: bool, frame: bytes, read: bool = True) -> None:
        super().__init__(daemon=True)
        self.port, self.login, self.read = port, login, read
        self.chunk = frame * max(1, 65536 // len(frame))
        self.stop = threading.Event()
        self.sent = 0
        self.connections = 0

    def connect(self) -> socket.socket:
        self.connections += 1
        if self.login:
            c = WireClient(self.port)
            c.login(f"flooder{self.connections}")
            sock = c.sock
        else:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        return sock

    def run(self) -> None:
        sock = self.connect()
        while not self.stop.is_set():
            want_read = [sock] if self.read else []
            readable, writable, _ = select.select(want_read, [sock], [], 0.1)
            try:
                if readable and not sock.recv(1 << 20):
                    raise ConnectionResetError
                if writable:
                    self.sent += sock.send(self.chunk)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                sock.close()
                if self.stop.is_set():
                    break
                sock = self.connect()
        sock.close()


def run_bots(node: Any, tmp_path: Path, name: str, flood: Flooder | None) -> dict[str, Any]:
    report = tmp_path / f"{name}.json"
    lg = Process([LOADGEN, "--host", "127.0.0.1", "--port", str(node.port),
                  "--clients", str(BOTS), "--rate", "10", "--ramp", "1000",
                  "--duration", str(SECONDS + 2), "--seed", "3", "--report", str(report)],
                 tmp_path, name)
    try:
        wait_until(lambda: metric(node, "mmo_players") >= BOTS, timeout=20, interval=0.1,
                   what="the bots to log in")
        rss_before = rss_kb(node.proc.pid)
        if flood is not None:
            flood.start()
        code = lg.wait(SECONDS + 30)
        rss_after = rss_kb(node.proc.pid)
    finally:
        if flood is not None:
            flood.stop.set()
            flood.join(10)
        lg.stop()
    assert code == 0, lg.output[-3000:]
    out = json.loads(report.read_text())
    return {
        "update_age_p99": out["latency_ms"]["update_age"]["p99"],
        "tick_p99": metric(node, "mmo_tick_recent_p99_seconds") * 1000,
        "rss_growth_mb": (rss_after - rss_before) / 1024,
        "errors": out["errors"]["total"],
        "disconnects": out["disconnects"]["total"],
    }


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from support import NodeProcess

    tmp = tmp_path_factory.mktemp("quiet")
    node = NodeProcess(tmp / "node", "--zone", "world:1000x1000", "--zone", "arena:500x500")
    try:
        return run_bots(node, tmp, "quiet", None)
    finally:
        node.stop()


@pytest.mark.parametrize("kind", list(FLOODS))
def test_a_flood_of_one_frame_kind_does_not_hold_up_the_others(
        kind: str, quiet: dict[str, Any], start_node: Any, tmp_path: Path) -> None:
    node = start_node("--zone", "world:1000x1000", "--zone", "arena:500x500")
    login, frame = FLOODS[kind]
    flood = Flooder(node.port, login, frame)
    seen = run_bots(node, tmp_path, kind, flood)
    print(f"{kind}: {seen} (quiet: {quiet}); flooder sent {flood.sent} bytes "
          f"over {flood.connections} connections")
    assert flood.sent > 100_000, "the flood did not flood"
    assert seen["errors"] == 0 and seen["disconnects"] == 0, seen
    # 1.5 times the quiet run's, or SLACK_MS more, whichever is larger.
    assert seen["update_age_p99"] <= max(1.5 * quiet["update_age_p99"],
                                         quiet["update_age_p99"] + SLACK_MS), (seen, quiet)
    assert seen["tick_p99"] <= max(1.5 * quiet["tick_p99"], quiet["tick_p99"] + SLACK_MS), (
        seen, quiet)
    assert seen["rss_growth_mb"] < 20, seen


def test_a_who_flood_that_never_reads_is_cut_by_the_stuck_timeout(start_node: Any) -> None:
    node = start_node()
    rss_before = rss_kb(node.proc.pid)
    c = WireClient(node.port)
    c.login("never-reads")
    c.sock.setblocking(False)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    chunk = m.Who().encode() * 10_000
    started = time.monotonic()
    sent = 0
    closed_after = None
    while time.monotonic() - started < 60:
        _, writable, _ = select.select([], [c.sock], [], 0.2)
        try:
            if writable:
                sent += c.sock.send(chunk)
        except BlockingIOError:
            continue
        except OSError:
            closed_after = time.monotonic() - started
            break
        if metric(node, "mmo_connections") == 0:
            closed_after = time.monotonic() - started
            break
    rss_growth_mb = (rss_kb(node.proc.pid) - rss_before) / 1024
    print(f"sent {sent} bytes; closed after {closed_after}s; RSS +{rss_growth_mb:.1f} MB")
    assert closed_after is not None and closed_after < 10 + 5, closed_after
    assert rss_growth_mb < 20
    c.close()
