"""Sessions, limits and the tick on a Clock with StringTransport."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmo.testing import FakePlayer, make_node
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode


def errors(msgs):
    return [x.code for x in msgs if isinstance(x, m.Error)]


def test_hello_then_login_enters_world():
    node = make_node()
    p = FakePlayer(node, "alice", login=False)
    p.send(m.Hello(m.PROTOCOL_VERSION, "t"))
    welcome = p.expect(m.Welcome)
    assert welcome.node_id == "test-node" and welcome.max_frame == node.limits.max_frame
    p.send(m.Login("alice", "pw"))
    ew = p.expect(m.EnterWorld)
    assert ew.zone == "world" and ew.tick_hz == 10 and ew.aoi == 100
    assert 0 <= ew.x <= ew.zone_width and node.sessions["alice"] is p.session


def test_version_mismatch_gets_error_and_close():
    node = make_node()
    p = FakePlayer(node, "x", login=False)
    p.send(m.Hello(99, "t"))
    assert errors(p.received()) == [ErrorCode.VERSION_MISMATCH]
    assert p.transport.disconnecting


def test_message_before_hello_is_bad_state():
    node = make_node()
    p = FakePlayer(node, "x", login=False)
    p.send(m.Move(1, 1, 1))
    assert errors(p.received()) == [ErrorCode.BAD_STATE]
    assert p.transport.disconnecting


def test_frames_sent_with_login_are_applied_after_it():
    node = make_node()
    p = FakePlayer(node, "x", login=False)
    p.send(m.Hello(), m.Login("x", "pw"), m.Ping(7, 1.5))
    msgs = p.received()
    assert [type(x) for x in msgs] == [m.Welcome, m.EnterWorld, m.Ticket, m.Pong]


def test_wrong_password_and_closed_registration():
    node = make_node(open_registration=False)
    p = FakePlayer(node, "nobody", login=False)
    p.send(m.Hello(), m.Login("nobody", "pw"))
    assert errors(p.received()) == [ErrorCode.REGISTRATION_CLOSED]
    node2 = make_node()
    FakePlayer(node2, "alice", "right").disconnect()
    q = FakePlayer(node2, "alice", login=False)
    q.send(m.Hello(), m.Login("alice", "wrong"))
    assert errors(q.received()) == [ErrorCode.AUTH_FAILED]
    assert q.transport.disconnecting


def test_bad_name_is_refused():
    node = make_node()
    p = FakePlayer(node, "x", login=False)
    p.send(m.Hello(), m.Login("no spaces allowed", "pw"))
    assert errors(p.received()) == [ErrorCode.INVALID]


def test_newest_login_replaces_older_session():
    node = make_node()
    old = FakePlayer(node, "alice")
    new = FakePlayer(node, "alice")
    assert errors(old.received()) == [ErrorCode.NAME_IN_USE]
    assert old.transport.disconnecting
    assert node.sessions["alice"] is new.session
    assert len([e for e in node.world.players() if e.name == "alice"]) == 1


def test_neighbours_see_each_other_and_moves_in_one_write():
    node = make_node(max_speed=1000)
    alice = FakePlayer(node, "alice")
    bob = FakePlayer(node, "bob")
    node.tick()
    assert alice.names_seen() == {"bob"} and bob.names_seen() == {"alice"}
    writes = []
    alice.transport.write = lambda data: writes.append(data)  # type: ignore[method-assign]
    node.clock.advance(1)
    bob.send(m.Move(1, bob.entity.x + 5, bob.entity.y))
    node.tick()
    assert len(writes) == 1
    msgs = alice.decoder.feed(writes[0])
    assert isinstance(msgs[0], m.Tick) and msgs[0].tick == node.tick_number
    moved = [mv for x in msgs if isinstance(x, m.Moves) for mv in x.moves]
    assert (bob.entity_id, bob.entity.x, bob.entity.y) in moved


def test_spawn_center_or_random():
    node = make_node(zone=["w:5000x5000"])
    centre = [node.spawn_point(node.world.default_zone) for _ in range(50)]
    assert all(2450 <= x <= 2550 and 2450 <= y <= 2550 for x, y in centre)
    node = make_node(zone=["w:5000x5000"], spawn="random")
    spread = [node.spawn_point(node.world.default_zone) for _ in range(200)]
    assert all(0 <= x <= 5000 and 0 <= y <= 5000 for x, y in spread)
    assert max(x for x, _ in spread) - min(x for x, _ in spread) > 3000


def test_far_player_is_not_seen():
    node = make_node(zone=["w:5000x5000"])
    alice = FakePlayer(node, "alice")
    bob = FakePlayer(node, "bob")
    node.world.teleport(bob.entity, node.world.zones["w"], 4000, 4000)
    node.tick()
    assert alice.names_seen() == set()


def test_too_fast_move_is_corrected():
    node = make_node()
    p = FakePlayer(node, "alice")
    x, y = p.entity.x, p.entity.y
    node.clock.advance(0.1)
    p.send(m.Move(5, x + 500, y))
    c = p.expect(m.Correction)
    assert (c.seq, c.reason) == (5, m.CorrectionReason.TOO_FAST)
    assert (c.x, c.y) == (struct.unpack(">f", struct.pack(">f", x))[0],
                          struct.unpack(">f", struct.pack(">f", y))[0])
    assert (p.entity.x, p.entity.y) == (x, y)


def test_move_flood_is_rate_limited_with_one_error_per_burst():
    node = make_node(move_rate=10)
    p = FakePlayer(node, "alice")
    x, y = p.entity.x, p.entity.y
    p.send(*[m.Move(i, x, y) for i in range(130)])
    msgs = p.received()
    assert errors(msgs) == [ErrorCode.RATE_LIMITED]
    limited = [c for c in msgs if isinstance(c, m.Correction)]
    # A burst of five seconds' worth (50) passes; one Correction for the 80
    # refused moves after it, not one each.
    assert [(c.seq, c.reason) for c in limited] == [(50, m.CorrectionReason.RATE_LIMITED)]
    assert not p.transport.disconnecting
    assert node.refusals["rate_limited"] == 80


def test_chat_channels():
    node = make_node(zone=["w:5000x5000", "other:500x500"])
    alice = FakePlayer(node, "alice")
    bob = FakePlayer(node, "bob")
    far = FakePlayer(node, "far")
    node.world.teleport(far.entity, node.world.zones["w"], 4500, 4500)
    away = FakePlayer(node, "away")
    node.world.teleport(away.entity, node.world.zones["other"], 10, 10)
    node.tick()
    for p in (alice, bob, far, away):
        p.received()
    alice.send(m.Chat(m.Channel.SAY, "hello near"))
    assert [x.text for x in bob.received() if isinstance(x, m.ChatMessage)] == ["hello near"]
    assert [x.text for x in alice.received() if isinstance(x, m.ChatMessage)] == ["hello near"]
    assert far.received() == [] and away.received() == []
    node.clock.advance(1)
    alice.send(m.Chat(m.Channel.ZONE, "zone"))
    assert any(isinstance(x, m.ChatMessage) for x in far.received())
    assert any(isinstance(x, m.ChatMessage) for x in bob.received())
    assert away.received() == []
    node.clock.advance(1)
    alice.send(m.Chat(m.Channel.WHISPER, "psst", "away"))
    got = away.received()
    assert got == [m.ChatMessage(m.Channel.WHISPER, "alice", "psst")]
    assert bob.received() == []
    node.clock.advance(1)
    alice.send(m.Chat(m.Channel.WHISPER, "psst", "ghost"))
    assert errors(alice.received()) == [ErrorCode.UNKNOWN_PLAYER]
    node.clock.advance(1)
    alice.send(m.Chat(m.Channel.SAY, "x" * 501))
    assert errors(alice.received()) == [ErrorCode.INVALID]


def test_who_and_zone_change():
    node = make_node()
    alice = FakePlayer(node, "alice")
    FakePlayer(node, "bob")
    alice.send(m.Who())
    who = alice.expect(m.WhoReply)
    assert who.total == 2 and [p[0] for p in who.players] == ["alice", "bob"]
    alice.send(m.ChangeZone("arena"))
    assert alice.expect(m.EnterWorld).zone == "arena"
    alice.send(m.ChangeZone("nowhere"))
    assert errors(alice.received()) == [ErrorCode.UNKNOWN_ZONE]


def test_frame_too_large_and_garbage_are_refused():
    node = make_node()
    big = FakePlayer(node, "big")
    big.send_raw(struct.pack(">IB", 10_000_000, m.Chat.TYPE))
    assert errors(big.received()) == [ErrorCode.FRAME_TOO_LARGE]
    assert big.transport.disconnecting
    junk = FakePlayer(node, "junk", login=False)
    junk.send_raw(b"\x00\x00\x00\x05\xeeGARBAGE")
    assert errors(junk.received()) == [ErrorCode.BAD_FRAME]


def test_login_and_idle_timeouts():
    node = make_node(login_timeout=5, idle_timeout=30)
    lazy = FakePlayer(node, "lazy", login=False)
    idle = FakePlayer(node, "idle")
    node.clock.advance(6)
    node.sweep()
    assert errors(lazy.received()) == [ErrorCode.LOGIN_TIMEOUT]
    assert not idle.transport.disconnecting
    node.clock.advance(25)
    node.sweep()
    assert errors(idle.received()) == [ErrorCode.IDLE_TIMEOUT]


def test_connections_per_ip_limit():
    node = make_node(max_per_ip=2)
    FakePlayer(node, "a", host="192.0.2.1", login=False)
    FakePlayer(node, "b", host="192.0.2.1", login=False)
    third = FakePlayer(node, "c", host="192.0.2.1", login=False)
    assert errors(third.received()) == [ErrorCode.TOO_MANY_CONNECTIONS]
    other = FakePlayer(node, "d", host="192.0.2.2", login=False)
    assert other.received() == []


def test_loopback_is_not_capped_unless_the_operator_asks():
    # The seed's load test runs 2,000 bots from this host.
    node = make_node(max_per_ip=2)
    local = [FakePlayer(node, f"l{i}", host="127.0.0.1", login=False) for i in range(5)]
    assert not any(errors(p.received()) for p in local)
    strict = make_node(max_per_ip=2, limit_loopback=True)
    local = [FakePlayer(strict, f"l{i}", host="127.0.0.1", login=False) for i in range(3)]
    assert errors(local[2].received()) == [ErrorCode.TOO_MANY_CONNECTIONS]


def test_slow_reader_gets_nothing_then_resync_then_is_dropped_when_stuck():
    node = make_node(stuck_timeout=5, max_speed=1000)
    alice = FakePlayer(node, "alice")
    bob = FakePlayer(node, "bob")
    node.tick()
    alice.received()
    alice.session.pauseProducing()
    node.clock.advance(0.5)
    bob.send(m.Move(1, bob.entity.x + 1, bob.entity.y))
    carol = FakePlayer(node, "carol")
    node.tick()
    assert alice.received() == []
    alice.session.resumeProducing()
    node.tick()
    msgs = alice.received()
    assert isinstance(msgs[1], m.Resync)
    assert alice.known and set(alice.known.values()) == {"bob", "carol"}
    alice.session.pauseProducing()
    bob.send(m.Chat(m.Channel.SAY, "alice is not reading"))
    assert alice.received() == []
    node.clock.advance(6)
    node.sweep()
    assert errors(alice.received()) == [ErrorCode.SLOW_READER]
    assert alice.transport.disconnecting
    assert carol.names_seen() == {"alice", "bob"}


def test_shutdown_notifies_everyone_and_fires_when_closed():
    node = make_node()
    players = [FakePlayer(node, f"p{i}") for i in range(3)]
    done = node.shutdown("bye")
    for p in players:
        notices = [x for x in p.received() if isinstance(x, m.Notice)]
        assert notices == [m.Notice(m.NoticeKind.SHUTDOWN, "bye")]
        assert p.transport.disconnecting
    assert not done.called
    for p in players:
        p.disconnect()
    assert done.called
    late = FakePlayer(node, "late", login=False)
    assert errors(late.received()) == [ErrorCode.SHUTTING_DOWN]


def test_state_is_saved_on_logout_and_restored_on_login():
    node = make_node(max_speed=1000)
    p = FakePlayer(node, "alice")
    node.clock.advance(1)
    p.send(m.Move(1, 1100.0, 1000.0))
    p.disconnect()
    assert node.store.accounts["alice"].state["x"] == 1100.0
    again = FakePlayer(node, "alice")
    assert next(x for x in again.log if isinstance(x, m.EnterWorld)).x == 1100.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(max_size=64), max_size=12), login=st.booleans())
def test_arbitrary_bytes_never_raise_into_the_reactor(chunks, login):
    node = make_node()
    p = FakePlayer(node, "fuzz", login=login)
    for chunk in chunks:
        p.send_raw(chunk)
    node.tick()
    msgs = p.received()
    # The session either goes on or refused cleanly with an error frame.
    if p.transport.disconnecting:
        assert isinstance(msgs[-1], m.Error)


def test_overload_slows_busy_cells_to_every_other_tick_without_losing_moves():
    node = make_node(max_speed=1000, busy_cell=3)
    watcher = FakePlayer(node, "watcher")
    crowd = [FakePlayer(node, f"c{i}") for i in range(5)]

    def walk(step):
        node.clock.advance(1.0)
        for i, p in enumerate(crowd):
            p.send(m.Move(step, 1040.0 + 10 * i + step, 1050.0))
        node.tick()

    walk(0)  # the crowd gathers in one cell (past the hysteresis, from the spawn)
    assert len({p.entity.cell for p in crowd}) == 1
    watcher.received()
    # Ticks that take their whole budget: the node degrades.
    for _ in range(20):
        node.pacing.observe(0.1)
    assert node.pacing.degraded
    ids = {p.entity_id for p in crowd}
    sent = []
    for step in range(1, 5):
        walk(step)
        moves = [mv for x in watcher.received() if isinstance(x, m.Moves) for mv in x.moves]
        sent.append({eid: (x, y) for eid, x, y in moves if eid in ids})
    # The crowd's cell went out on every other tick only...
    assert [bool(s) for s in sent] in ([True, False, True, False], [False, True, False, True])
    # ...and each time with every mover's newest position.
    for step, got in enumerate(sent, start=1):
        if got:
            assert got == {p.entity_id: (1040.0 + 10 * i + step, 1050.0)
                           for i, p in enumerate(crowd)}
    # The load falls: full rate again.
    for _ in range(20):
        node.pacing.observe(0.0)
    assert not node.pacing.degraded
    assert node.snapshot()["degraded_ticks"] > 0


def test_quiet_cells_keep_full_rate_while_degraded():
    node = make_node(max_speed=1000, busy_cell=3)
    watcher = FakePlayer(node, "watcher")
    walker = FakePlayer(node, "walker")
    node.tick()
    watcher.received()
    for _ in range(20):
        node.pacing.observe(0.1)
    for step in range(1, 5):
        node.clock.advance(1.0)
        walker.send(m.Move(step, walker.entity.x + 1, walker.entity.y))
        node.tick()
        assert any(isinstance(x, m.Moves) for x in watcher.received())
