"""Resume tokens through the real doors: ``twistd mmo``, a socket, a restart."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

from support import BIN, NodeProcess, Process, WireClient, free_port, wait_until

from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode


def _resume(port: int, token: str) -> tuple[WireClient, m.Message]:
    c = WireClient(port)
    c.send(m.Hello(m.PROTOCOL_VERSION, "test"), m.Resume(token))
    return c, c.expect((m.EnterWorld, m.Error))


def test_a_player_comes_back_after_a_restart_with_its_token(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "node")
    try:
        alice = WireClient(node.port)
        enter = alice.login("alice", "s3cret")
        ticket = alice.expect(m.Ticket)
        assert ticket.valid_for == 60 and ticket.token
        x, y = enter.x + 0.5, enter.y - 0.25
        alice.send(m.Move(1, x, y))
        own = alice.expect(m.Moves, lambda msg: any(e == enter.entity_id
                                                    for e, _, _ in msg.moves))
        assert (enter.entity_id, x, y) in own.moves
        # The node stops (SIGTERM): it says so, saves everyone, exits.
        node.signal(signal.SIGTERM)
        assert node.wait(20) == 0
        alice.wait_closed()
    finally:
        node.stop()
    again = NodeProcess(tmp_path / "node", name="node-again")
    try:
        forged = ticket.token[:-2] + ("AA" if not ticket.token.endswith("AA") else "BB")
        bad, msg = _resume(again.port, forged)
        assert isinstance(msg, m.Error) and msg.code == ErrorCode.TOKEN_REFUSED
        bad.wait_closed()
        back, msg = _resume(again.port, ticket.token)
        assert isinstance(msg, m.EnterWorld), msg
        assert (msg.x, msg.y) == (x, y)
        assert back.expect(m.Ticket).token != ticket.token
        # A token is good once.
        twice, msg = _resume(again.port, ticket.token)
        assert isinstance(msg, m.Error) and msg.code == ErrorCode.TOKEN_REFUSED
        assert "used already" in msg.text
        assert "player alice joined" in again.output
    finally:
        again.stop()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


BOTS = 300
LOADGEN = str(BIN / "mmo-loadgen")


def test_a_node_restarted_under_load_gets_every_bot_back_by_token(tmp_path: Path) -> None:
    port = free_port()
    args = ("--listen", f"tcp:{port}:interface=127.0.0.1", "--password-iterations", "20000")
    node = NodeProcess(tmp_path / "node", *args)
    report = tmp_path / "report.json"
    lg = Process([LOADGEN, "--port", str(port), "--clients", str(BOTS), "--ramp", "300",
                  "--duration", "40", "--report", str(report), "--no-progress"],
                 tmp_path, "loadgen")
    again = None
    try:
        wait_until(lambda: metric(node.http_port, "mmo_players") >= BOTS, timeout=30,
                   interval=0.2, what="every bot in")  # type: ignore[arg-type]
        node.signal(signal.SIGTERM)
        assert node.wait(30) == 0
        restarted = time.monotonic()
        again = NodeProcess(tmp_path / "node", *args, name="node-again")
        wait_until(lambda: metric(again.http_port, "mmo_players") >= BOTS, timeout=30,
                   interval=0.1, what="every bot back")  # type: ignore[arg-type,union-attr]
        took = time.monotonic() - restarted
        assert metric(again.http_port, "mmo_resumes_total") == BOTS  # type: ignore[arg-type]
        assert lg.wait(60) == 0, lg.output[-3000:]
    finally:
        lg.stop()
        node.stop()
        if again is not None:
            again.stop()
    out = json.loads(report.read_text())
    moved = out["moves_between_nodes"]
    assert moved["comebacks"] == BOTS and moved["back"] == BOTS and moved["failed"] == 0, moved
    assert out["bots"]["failed"] == 0, out["bots"]
    assert took < 25, took
