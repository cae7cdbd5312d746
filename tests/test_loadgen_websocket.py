"""
Clients over WebSocket (:mod:`mmo.client.websocket`): the game client and
the load generator's bots unchanged inside Autobahn's client framing, in
memory against the node's WebSocket door, then ``mmo-loadgen --transport
ws`` against a real node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support import BIN, Process, wait_until
from twisted.internet.task import Clock
from twisted.test import iosim

from mmo.client.protocol import GameClient
from mmo.client.websocket import WebSocketClient, client_factory
from mmo.server.websocket import WebSocketPlayers
from mmo.testing import FakePlayer, make_node
from mmo.wire import messages as m

LOADGEN = str(BIN / "mmo-loadgen")


def pair(clock: Clock, client: Any) -> tuple[Any, iosim.IOPump, Any]:
    """``client`` inside a WebSocket client, connected in memory to a node's door."""
    node = make_node(clock, websocket=["tcp:4080"])
    server = WebSocketPlayers(node, node.settings.websocket, clock).buildProtocol(None)
    ws = WebSocketClient(client, client_factory("127.0.0.1", 4080, clock))
    pump = iosim.connect(server, iosim.makeFakeServer(server), ws, iosim.makeFakeClient(ws))
    return node, pump, ws


def test_a_game_client_plays_over_websocket() -> None:
    clock = Clock()
    client = GameClient("alice", "pw", clock)
    node, pump, ws = pair(clock, client)
    pump.flush()
    # Hello and Login were written together: two messages, or the node would
    # have refused them.
    assert client.state == "playing" and "alice" in node.sessions
    bob = FakePlayer(node, "bob")
    clock.advance(0.1)
    node.tick()
    pump.flush()
    assert "bob" in {e.name for e in client.entities.values()}
    client.move(client.x + 0.5, client.y)
    client.say("hi bob")
    pump.flush()
    assert m.ChatMessage(m.Channel.SAY, "alice", "hi bob") in bob.received()
    clock.advance(0.1)
    node.tick()
    assert "alice" in bob.names_seen()
    client.close()
    pump.flush()
    assert "alice" not in node.sessions


def test_a_refused_handshake_is_a_failed_connection() -> None:
    clock = Clock()
    failures: list[str] = []
    node = make_node(clock, websocket=["tcp:4080"], allowed_origin=["https://only.example"])
    server = WebSocketPlayers(node, node.settings.websocket, clock).buildProtocol(None)
    client = GameClient("eve", "pw", clock)
    factory = client_factory("127.0.0.1", 4080, clock, origin="https://evil.example")
    ws = WebSocketClient(client, factory, failures.append)
    pump = iosim.connect(server, iosim.makeFakeServer(server), ws, iosim.makeFakeClient(ws))
    pump.flush()
    assert failures == ["websocket_refused"] and client.state == "connecting"
    assert not node.connections


def loadgen(tmp_path: Path, name: str, *args: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / f"{name}.json"
    lg = Process([LOADGEN, "--host", "127.0.0.1", "--ramp", "200", "--seed", "5",
                  "--no-progress", "--name-prefix", name, "--report", str(report), *args],
                 tmp_path, name)
    try:
        code = lg.wait(60)
    finally:
        lg.stop()
    return code, json.loads(report.read_text()), lg.output


def test_websocket_bots_and_tcp_bots_on_one_node(start_node: Any, tmp_path: Path) -> None:
    node = start_node("--websocket", "tcp:0:interface=127.0.0.1", "--max-per-ip", "0")
    common = ("--clients", "30", "--rate", "10", "--duration", "4")
    code, ws, out = loadgen(tmp_path, "ws", "--transport", "ws",
                            "--port", str(node.websocket_port), *common)
    assert code == 0, out[-3000:]
    code, tcp, out = loadgen(tmp_path, "tcp", "--port", str(node.port), *common)
    assert code == 0, out[-3000:]
    for report in (ws, tcp):
        assert report["bots"]["logged_in"] == 30 and report["errors"]["total"] == 0
        assert report["per_bot"]["updates_per_sec"]["p50"] > 5
        assert report["actions"]["moves_sent"] > 30 * 20
        assert report["latency_ms"]["rtt"]["count"] > 0
    assert ws["settings"]["transport"] == "ws" and tcp["settings"]["transport"] == "tcp"
    wait_until(lambda: "player ws0 left" in node.output and "player tcp0 left" in node.output,
               timeout=10, what="the bots to leave")


def test_websocket_bots_at_a_tcp_port_are_told_why(start_node: Any, tmp_path: Path) -> None:
    node = start_node()
    code, report, out = loadgen(tmp_path, "wrong", "--transport", "ws", "--port", str(node.port),
                                "--clients", "2", "--duration", "3")
    assert code == 1
    assert report["failures"]["by_reason"] == {"websocket_refused": 2}
    assert "--websocket ports" in out
