"""
A read that brings exactly one whole Move or Ping frame takes a short path
in ``PlayerSession.dataReceived`` (no frame decoder); hypothesis checks that
it leaves the node, the session and the output exactly as the general path
does with the same frames (which it takes when each is split over two
reads), moves refused for speed, bounds, rate or budget included.

The tick shares one write among the players of an area who see the same
entities leave and enter; a walk across cells checks that every player's
writes still say exactly what it sees.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmo.testing import FakePlayer, make_node
from mmo.wire import fast
from mmo.wire import messages as m
from mmo.wire.frames import decode_all

coordinate = st.one_of(
    st.floats(min_value=-50, max_value=650, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 500.0]),
)
moves = st.lists(
    st.tuples(st.sampled_from([0.0, 0.001, 0.05, 0.1, 1.0]),  # seconds before it
              coordinate, coordinate, st.booleans(),  # x, y, a tick after it
              st.sampled_from(["move", "move", "move", "ping"])),
    min_size=1, max_size=60,
)


def play(steps: list[tuple[float, float, float, bool, str]], split: bool) -> dict[str, Any]:
    node = make_node(zone=["w:500x500"], extension=[], move_rate=5,
                     request_rate=10, request_burst=20)
    node.rng = random.Random(7)
    player = FakePlayer(node, "p")
    player.received()
    session = player.session
    for seq, (dt, x, y, tick, kind) in enumerate(steps, 1):
        node.clock.advance(dt)
        frame = fast.move_frame(seq, x, y) if kind == "move" else m.Ping(seq, x).encode()
        if split:
            player.send_raw(frame[:1])
            player.send_raw(frame[1:])
        else:
            player.send_raw(frame)
        if tick:
            node.tick()
    e = session.entity
    return {
        "out": player.transport.value(),
        "entity": (e.x, e.y, e.budget, e.last_move) if e else None,
        "budget": (session.budget.tokens, session.budget.stamp),
        "moves": (session.moves.tokens, session.moves.stamp),
        "inbox": list(session.inbox),
        "throttled": session.throttled_since,
        "reading": session._reading,
        "refusals": dict(node.refusals),
        "events": node.events,
        "state": session.state,
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves)
def test_one_move_frame_read_alone_acts_as_the_general_path(steps):
    fast_path = play(steps, split=False)
    general = play(steps, split=True)
    assert repr(fast_path) == repr(general)  # repr: NaN compares equal to itself


def test_the_short_path_is_taken_and_refuses_like_the_general_one():
    """Moves and pings of one read each never reach the frame decoder."""
    node = make_node(zone=["w:500x500"], extension=[])
    player = FakePlayer(node, "p")
    player.received()
    e = player.entity
    x0, y0 = e.x, e.y

    def no_decoder(*args: Any) -> Any:
        raise AssertionError("the frame decoder was used")

    player.session.decoder.feed_frames = no_decoder  # type: ignore[method-assign]
    node.clock.advance(0.5)
    player.send_raw(fast.move_frame(1, x0 + 1, y0))
    assert (e.x, e.y) == (pytest.approx(x0 + 1), pytest.approx(y0))  # float32 on the wire
    player.send_raw(fast.move_frame(2, x0 + 400, y0))  # far too fast
    correction = [msg for msg in player.received() if type(msg).__name__ == "Correction"]
    assert correction and correction[0].seq == 2
    assert node.refusals["invalid"] == 1
    player.send_raw(m.Ping(9, 1.5).encode())
    pong = player.expect(m.Pong)
    assert (pong.token, pong.client_time) == (9, 1.5)


def test_shared_writes_keep_every_view_exact():
    """
    Players walking across cells: what each one's writes say (enters,
    leaves, moves; several share one write) is exactly its view.
    """
    node = make_node(zone=["w:400x400"], extension=[], max_speed=2000, spawn="random")
    node.rng = random.Random(3)
    players = [FakePlayer(node, f"p{i}") for i in range(40)]
    rng = random.Random(5)
    shared_writes = 0
    for _ in range(30):
        node.clock.advance(0.1)
        for seq, p in enumerate(players):
            e = p.entity
            x = min(max(e.x + rng.uniform(-60, 60), 0.0), 400.0)
            y = min(max(e.y + rng.uniform(-60, 60), 0.0), 400.0)
            p.send_raw(fast.move_frame(seq, x, y))
        node.tick()
        writes = Counter(p.transport.value() for p in players)
        shared_writes += sum(
            n - 1 for data, n in writes.items()
            if n > 1 and any(isinstance(msg, (m.Enter, m.Leave)) for msg in decode_all(data)))
        world = node.world
        for p in players:
            p.received()
            v = p.entity.viewer
            assert set(p.known) == v.visible
            assert p.entity_id not in p.known
        for p in players:  # the last Moves each got are where the entities are
            for msg in p.log:
                if isinstance(msg, m.Moves):
                    for eid, _x, _y in msg.moves:
                        assert eid in p.known or eid == p.entity_id
            p.log.clear()
        assert all(eid in world.entities for p in players for eid in p.known)
    assert shared_writes > 0
