"""Resume tokens through the real doors: ``twistd mmo``, a socket, a restart."""

from __future__ import annotations

import signal
from pathlib import Path

from support import NodeProcess, WireClient

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
