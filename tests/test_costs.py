"""
What one connection may cost, in memory: the request budget over every
frame kind, reading that stops (and resumes) with backpressure, one
Correction per burst, one Who reply per tick, the replaced session's state.
"""

from __future__ import annotations

import pytest

from mmo.testing import FakePlayer, make_node
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode


def errors(msgs: list[m.Message]) -> list[int]:
    return [x.code for x in msgs if isinstance(x, m.Error)]


def test_a_who_flood_in_one_read_is_answered_as_the_budget_allows():
    node = make_node(request_rate=100, request_burst=200, flood_timeout=3)
    for i in range(50):
        FakePlayer(node, f"p{i}")
    flooder = FakePlayer(node, "flooder")
    flooder.received()
    flooder.send_raw(m.Who().encode() * 50_000)  # 250 kB in one read
    msgs = flooder.received()
    # 200 units of burst (4 went on Hello and Login) at 20 a Who: 9 answered,
    # the rest is not even decoded.
    assert sum(isinstance(x, m.WhoReply) for x in msgs) == 9
    assert errors(msgs) == [ErrorCode.RATE_LIMITED]
    session = flooder.session
    assert flooder.transport.producerState == "paused"  # not read any more
    # At most a budget's worth of frames decoded and held; the rest raw.
    assert 0 < len(session.inbox) <= 201 and session.decoder.buffered > 200_000
    # As the budget refills (100 a second: 5 Who), more is answered...
    node.clock.advance(1.0)
    assert sum(isinstance(x, m.WhoReply) for x in flooder.received()) == 5
    # ...and a flood that goes on past flood_timeout is cut.
    for _ in range(4):
        node.clock.advance(1.0)
        node.sweep()
    assert ErrorCode.RATE_LIMITED in errors(flooder.received())
    assert flooder.transport.disconnecting
    # Everyone else still plays.
    other = FakePlayer(node, "late")
    node.tick()
    assert "p0" in other.names_seen()


def test_a_burst_within_the_budget_is_not_slowed_and_reading_goes_on():
    node = make_node()
    p = FakePlayer(node, "alice")
    p.received()
    p.send(*[m.Ping(i, 0.0) for i in range(300)])
    assert sum(isinstance(x, m.Pong) for x in p.received()) == 300
    assert p.transport.producerState == "producing"
    assert p.session.throttled_since is None


def test_every_frame_kind_counts_against_the_one_budget():
    node = make_node(request_rate=10, request_burst=40)
    p = FakePlayer(node, "alice")  # Hello and Login took 4 of 40
    p.received()
    p.send(m.ChangeZone("arena"))  # 20
    p.send(*[m.Ping(i, 0.0) for i in range(30)])  # 16 fit
    msgs = p.received()
    assert sum(isinstance(x, m.Pong) for x in msgs) == 16
    assert errors(msgs) == [ErrorCode.RATE_LIMITED]
    node.clock.advance(1.0)  # 10 more units: 10 more Pongs, in order
    pongs = [x.token for x in p.received() if isinstance(x, m.Pong)]
    assert pongs == list(range(16, 26))


def test_a_client_that_does_not_read_is_not_read():
    node = make_node()
    p = FakePlayer(node, "alice")
    node.tick()
    p.received()
    p.session.pauseProducing()  # its output buffer passed the bound
    assert p.transport.producerState == "paused"
    p.send(*[m.Ping(i, 0.0) for i in range(5)])  # what the kernel had already
    assert p.received() == []  # no reply queued
    p.session.resumeProducing()
    assert [x.token for x in p.received() if isinstance(x, m.Pong)] == [0, 1, 2, 3, 4]
    assert p.transport.producerState == "producing"
    node.tick()
    assert any(isinstance(x, m.Resync) for x in p.received())


def test_frames_sent_while_a_login_is_checked_wait_in_order():
    node = make_node()
    p = FakePlayer(node, "alice", login=False)
    p.send(m.Hello(), m.Login("alice", "pw"), m.Ping(7, 0.0), m.Who())
    msgs = p.received()
    kinds = [type(x) for x in msgs]
    assert kinds[:4] == [m.Welcome, m.EnterWorld, m.Ticket, m.Pong] and m.WhoReply in kinds


def test_one_correction_per_burst_of_refused_moves():
    node = make_node(max_speed=10)
    p = FakePlayer(node, "alice")
    x, y = p.entity.x, p.entity.y
    node.clock.advance(1.0)
    p.send(*[m.Move(i, x + 500 + i, y) for i in range(20)])  # all too fast
    corrections = [c for c in p.received() if isinstance(c, m.Correction)]
    assert [(c.seq, c.reason) for c in corrections] == [(0, m.CorrectionReason.TOO_FAST)]
    p.send(m.Move(20, x + 1, y))  # accepted: the burst is over
    p.send(m.Move(21, x + 900, y))
    corrections = [c for c in p.received() if isinstance(c, m.Correction)]
    assert [c.seq for c in corrections] == [21]


def test_the_who_reply_is_built_once_per_tick_and_shared():
    node = make_node()
    players = [FakePlayer(node, f"p{i}") for i in range(3)]
    built = []
    real = node.world.players

    def counting() -> object:
        built.append(node.tick_number)
        return real()

    node.world.players = counting  # type: ignore[method-assign]
    for p in players:
        p.send(m.Who(), m.Who())
    assert built == [node.tick_number]
    replies = [x for p in players for x in p.received() if isinstance(x, m.WhoReply)]
    assert len(replies) == 6 and all(r == replies[0] for r in replies)
    node.tick()
    players[0].send(m.Who())
    assert len(built) == 2


def test_a_new_login_starts_where_the_replaced_session_stood():
    node = make_node(max_speed=1000)
    old = FakePlayer(node, "alice")
    x, y = old.entity.x, old.entity.y
    node.clock.advance(1.0)
    old.send(m.Move(1, x + 300, y + 200))
    assert not [c for c in old.received() if isinstance(c, m.Correction)]
    new = FakePlayer(node, "alice")  # never saved in between: no logout yet
    enter = next(x for x in new.log if isinstance(x, m.EnterWorld))
    assert (enter.x, enter.y) == (pytest.approx(x + 300, abs=0.01),
                                  pytest.approx(y + 200, abs=0.01))
    assert errors(old.received()) == [ErrorCode.NAME_IN_USE]


def test_a_flood_of_cheap_frames_at_the_refill_rate_is_cut_too():
    node = make_node(request_rate=100, request_burst=200, flood_timeout=3)
    p = FakePlayer(node, "pinger")
    seconds = 0
    while seconds < 6 and not p.transport.disconnecting:
        p.send(*[m.Ping(i, 0.0) for i in range(400)])  # 4 times the rate, every second
        for _ in range(10):
            node.clock.advance(0.1)
            node.sweep()
        seconds += 1
    assert p.transport.disconnecting and seconds <= 5
    assert ErrorCode.RATE_LIMITED in errors(p.received())


def test_a_burst_then_quiet_is_forgiven():
    node = make_node(request_rate=100, request_burst=200, flood_timeout=3)
    p = FakePlayer(node, "bursty")
    p.send(*[m.Ping(i, 0.0) for i in range(300)])  # over, once
    for _ in range(60):
        node.clock.advance(0.1)
        node.sweep()
    assert not p.transport.disconnecting
    assert sum(isinstance(x, m.Pong) for x in p.received()) == 300


def test_names_are_whole_strings_and_whispers_to_bad_names_are_refused():
    node = make_node()
    p = FakePlayer(node, "x", login=False)
    p.send(m.Hello(), m.Login("alice\n", "pw"))
    assert errors(p.received()) == [ErrorCode.INVALID]
    alice = FakePlayer(node, "alice")
    alice.send(m.Chat(m.Channel.WHISPER, "hi", "b" * 300))
    assert errors(alice.received()) == [ErrorCode.UNKNOWN_PLAYER]
    assert not alice.transport.disconnecting


def test_identical_frames_after_a_login_wait_and_each_is_answered_once():
    node = make_node()
    p = FakePlayer(node, "x", login=False)
    ping = m.Ping(5, 0.0)
    p.send(m.Hello(), m.Login("x", "pw"), ping, ping, ping)
    msgs = p.received()
    assert errors(msgs) == []
    assert sum(isinstance(x, m.Pong) for x in msgs) == 3


def test_a_login_that_waited_long_for_its_hash_is_not_idle_at_once():
    from twisted.internet.defer import Deferred

    node = make_node(idle_timeout=5.0, login_timeout=10.0)
    waiting: list[Deferred] = []
    real = node.store.authenticate

    def slow(name, password, create):  # the hash queues for a long while
        d: Deferred = Deferred()
        waiting.append(d)
        d.addCallback(lambda _: real(name, password, create))
        return d

    node.store.authenticate = slow
    p = FakePlayer(node, "alice", login=False)
    p.send(m.Hello(), m.Login("alice", "pw"))
    node.clock.advance(30.0)
    node.sweep()
    waiting[0].callback(None)
    p.expect(m.EnterWorld)
    node.clock.advance(1.0)
    node.sweep()
    assert not p.session.ended, "idle for the time its hash waited"
    node.clock.advance(5.0)
    node.sweep()
    assert p.session.ended
