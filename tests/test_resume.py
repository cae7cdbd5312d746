"""Resume tokens: sealed, short-lived, good once; a player comes back without its password."""

from __future__ import annotations

import base64

import pytest
from twisted.internet.task import Clock

from mmo.server import tokens
from mmo.server.node import Node
from mmo.server.resume import freshest
from mmo.server.tokens import MAX_TOKEN, TokenBook, TokenRefused
from mmo.store.accounts import MemoryAccountStore
from mmo.testing.cluster import FakeCluster
from mmo.testing.node import TEST_KEY, FakePlayer, make_node, run_ticks
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode

KEY = b"k" * 32


def book(clock: Clock | None = None, key: bytes = KEY, lifetime: float = 60.0) -> TokenBook:
    c = clock or Clock()
    if clock is None:
        c.advance(1_000_000)
    return TokenBook(key, c, lifetime)


def test_a_token_says_who_and_where_and_is_taken_once() -> None:
    b = book()
    t = b.mint("alice", "start", 12.5, 40.25)
    claims = b.take(t)
    assert (claims.name, claims.zone, claims.x, claims.y) == ("alice", "start", 12.5, 40.25)
    with pytest.raises(TokenRefused, match="used already"):
        b.take(t)
    assert b.numbers() == {"resumes": 1, "resumes_refused": 1}


def test_tokens_differ_each_time_and_are_url_safe() -> None:
    b = book()
    one, two = b.mint("a", "z", 1, 1), b.mint("a", "z", 1, 1)
    assert one != two
    assert set(one) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_another_clusters_token_is_refused() -> None:
    clock = Clock()
    t = book(clock, key=b"x" * 32).mint("alice", "start", 1, 2)
    with pytest.raises(TokenRefused, match="not this cluster's"):
        book(clock, key=b"y" * 32).take(t)


def test_a_token_altered_anywhere_is_refused() -> None:
    b = book()
    raw = bytearray(base64.urlsafe_b64decode(b.mint("alice", "start", 1, 2) + "=="))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(bad)).rstrip(b"=").decode()
        with pytest.raises(TokenRefused):
            b.check(text)


def test_a_token_runs_out() -> None:
    clock = Clock()
    clock.advance(1000)
    b = TokenBook(KEY, clock, lifetime=30)
    t = b.mint("alice", "start", 1, 2)
    clock.advance(29)
    b.check(t)
    clock.advance(1.5)
    with pytest.raises(TokenRefused, match="run out"):
        b.take(t)


@pytest.mark.parametrize("text, why", [
    ("", "too short"), ("!!!!", "not base64"), ("A" * (MAX_TOKEN + 1), "too long"),
    ("QUFB", "too short"),
])
def test_malformed_tokens_get_one_line(text: str, why: str) -> None:
    with pytest.raises(TokenRefused, match=why):
        book().take(text)


def test_a_token_spent_on_another_node_is_refused_here() -> None:
    clock = Clock()
    clock.advance(5000)
    here, there = TokenBook(KEY, clock), TokenBook(KEY, clock)
    t = here.mint("alice", "start", 1, 2)
    claims = there.take(t)
    here.spend(claims.nonce, claims.expires)
    with pytest.raises(TokenRefused, match="used already"):
        here.take(t)


def test_spent_nonces_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "MAX_SPENT", 50)
    b = book()
    for i in range(200):
        b.spend(i.to_bytes(8, "big"), b.clock.seconds() + 60)
    assert len(b.spent) == 50
    # ... and the ones whose tokens ran out are forgotten.
    b.clock.advance(61)
    b.check(b.mint("alice", "z", 0, 0))
    assert not b.spent


# -- the node --------------------------------------------------------------------------


class CountingStore(MemoryAccountStore):
    def __init__(self, clock: Clock) -> None:
        super().__init__(iterations=1, clock=clock)
        self.password_checks = 0

    def authenticate(self, name: str, password: str, create: bool):  # type: ignore[no-untyped-def]
        self.password_checks += 1
        return super().authenticate(name, password, create)


def test_a_player_gets_a_ticket_and_comes_back_with_it_without_its_password() -> None:
    clock = Clock()
    store = CountingStore(clock)
    node = make_node(clock, store=store)
    alice = FakePlayer(node, "alice")
    token = alice.token
    assert token is not None
    alice.entity.zone.move(alice.entity, 321.0, 123.0)
    run_ticks(node)
    alice.disconnect()
    assert store.password_checks == 1
    again = FakePlayer(node, "alice", password="not the password", token=token)
    enter = next(msg for msg in again.log if isinstance(msg, m.EnterWorld))
    assert (enter.x, enter.y) == (321.0, 123.0)
    assert store.password_checks == 1
    assert again.token not in (None, token)
    assert node.snapshot()["resumes"] == 1


def test_a_token_is_good_once() -> None:
    node = make_node()
    alice = FakePlayer(node, "alice")
    token = alice.token
    alice.disconnect()
    FakePlayer(node, "alice", token=token).disconnect()
    third = FakePlayer(node, "alice", token=token, login=False)
    third.send(m.Hello(), m.Resume(token))  # type: ignore[arg-type]
    err = third.expect(m.Error)
    assert err.code == ErrorCode.TOKEN_REFUSED and "used already" in err.text
    assert third.session.ended


def test_a_resume_while_the_old_connection_lives_takes_its_place() -> None:
    node = make_node()
    alice = FakePlayer(node, "alice")
    alice.entity.zone.move(alice.entity, 77.0, 88.0)
    again = FakePlayer(node, "alice", token=alice.token)
    assert alice.session.ended
    assert node.sessions["alice"] is again.session
    assert (again.entity.x, again.entity.y) == (77.0, 88.0)


def test_tickets_are_renewed_before_they_run_out() -> None:
    clock = Clock()
    node = make_node(clock, resume_window=30)
    alice = FakePlayer(node, "alice")
    first = alice.token
    clock.advance(9)
    node.sweep()
    assert alice.token == first
    clock.advance(1.5)
    node.sweep()
    assert alice.token != first


def test_many_players_get_their_tickets_on_time_and_a_forgotten_one_none() -> None:
    clock = Clock()
    node = make_node(clock, resume_window=30)  # a new ticket every 10 s
    players: dict[str, FakePlayer] = {}
    tickets: dict[str, list[float]] = {}
    for step in range(180):  # 45 s, a sweep every quarter of a second
        now = clock.seconds()
        if step % 2 == 0 and step < 80:  # 40 players join, one every half second
            name = f"p{step // 2}"
            players[name] = FakePlayer(node, name)
            tickets[name] = [now]
        if now == 4.0:
            players["p3"].disconnect()  # joined at 1.5; its renewals are forgotten ...
        if now == 6.0:  # ... and it comes back: renewed from now on
            players["p3"] = FakePlayer(node, "p3", token=players["p3"].token)
            tickets["p3"].append(now)
        if now == 15.0:
            node.resumes.forget("p7")  # still playing, but no more tickets
        node.sweep()
        for name, p in players.items():
            tickets[name] += [now for msg in p.received() if isinstance(msg, m.Ticket)]
        clock.advance(0.25)
    for name, times in tickets.items():
        joined = times[0]
        if name == "p3":
            assert times == [1.5, 6.0, 16.0, 26.0, 36.0], name
        elif name == "p7":
            assert times == [3.5, 13.5], name
        else:
            assert times == [t for t in (joined, joined + 10, joined + 20, joined + 30,
                                         joined + 40) if t < 45.0], name
    assert not node.resumes.due.keys() - node.sessions.keys()


def test_a_player_not_draining_gets_its_ticket_once_it_drains() -> None:
    clock = Clock()
    node = make_node(clock, resume_window=9)  # a new ticket every 3 s
    alice = FakePlayer(node, "alice")
    first = alice.token
    alice.session.pauseProducing()  # its output buffer is full (not for long enough to drop it)
    clock.advance(3)
    node.sweep()
    clock.advance(1)
    node.sweep()
    assert not alice.session.ended
    assert alice.token == first
    alice.session.resumeProducing()
    node.sweep()
    assert alice.token != first


def test_players_coming_and_going_leave_no_pile_of_ticket_times() -> None:
    clock = Clock()
    node = make_node(clock, resume_window=30)
    for i in range(300):
        FakePlayer(node, f"p{i}").disconnect()
    bob = FakePlayer(node, "bob")
    first = bob.token
    resumes = node.resumes
    assert resumes is not None and list(resumes.due) == ["bob"]
    assert len(resumes._queue) <= 2 * len(resumes.due) + 65
    clock.advance(10)
    node.sweep()
    assert bob.token != first


def test_a_node_without_tokens_says_so() -> None:
    node = make_node(key=None)
    other = make_node()
    token = FakePlayer(other, "alice").token
    p = FakePlayer(node, "alice", login=False)
    p.send(m.Hello(), m.Resume(token))  # type: ignore[arg-type]
    err = p.expect(m.Error)
    assert err.code == ErrorCode.TOKEN_REFUSED and "password" in err.text


def resume_on(c: FakeCluster, node: Node, name: str, token: str | None) -> FakePlayer:
    """
    ``name`` comes back on ``node`` of ``c`` with ``token``: in the world once
    the node has asked the others where it was (their answers, and the quarter
    of a second the question waits), not before.
    """
    assert token is not None
    back = FakePlayer(node, name, login=False)
    back.send(m.Hello(), m.Resume(token))
    assert not any(isinstance(msg, m.EnterWorld) for msg in back.received())
    c.step(3)
    back.expect(m.EnterWorld)
    return back


def test_a_token_from_any_node_of_the_cluster_is_taken_once_by_all() -> None:
    c = FakeCluster(["a", "b"])
    a, b = c.nodes
    c.step(2)
    alice = FakePlayer(a, "alice")
    token = alice.token
    # Alice's connection drops without node a noticing; she resumes on b.
    resume_on(c, b, "alice", token)
    assert alice.session.ended, "the newest login wins, on another node too"
    assert "alice" not in a.sessions
    late = FakePlayer(a, "bob", login=False)
    late.send(m.Hello(), m.Resume(token))  # type: ignore[arg-type]
    assert late.expect(m.Error).code == ErrorCode.TOKEN_REFUSED


def test_a_player_resumes_where_the_cluster_last_saw_it() -> None:
    c = FakeCluster(["a", "b"])
    a, b = c.nodes
    watcher = FakePlayer(b, "watcher")
    alice = FakePlayer(a, "alice")
    token = alice.token
    # Alice walks next to the watcher, so that b mirrors her.
    we = watcher.entity
    alice.entity.zone.move(alice.entity, we.x + 10, we.y + 10)
    c.step(3)
    assert "alice" in watcher.names_seen()
    ae = alice.entity
    where = (ae.x, ae.y)
    c.kill(0)  # node a dies with alice on it; her token is older than her walk
    back = resume_on(c, b, "alice", token)
    assert (back.entity.x, back.entity.y) == pytest.approx(where, abs=1e-3)


def test_a_player_resumes_where_another_node_last_saw_it() -> None:
    # a has alice; c watches her; b knows nothing of her. a dies; alice
    # comes back on b, which asks the others and hears from c where she was.
    c = FakeCluster(["a", "b", "c"])
    a, b, cn = c.nodes
    watcher = FakePlayer(cn, "watcher")
    alice = FakePlayer(a, "alice")
    token = alice.token
    we = watcher.entity
    alice.entity.zone.move(alice.entity, we.x + 10, we.y + 10)
    c.step(3)
    assert "alice" in watcher.names_seen()
    assert b.cluster.whereabouts("alice") is None
    where = (alice.entity.x, alice.entity.y)
    c.kill(0)
    back = resume_on(c, b, "alice", token)
    assert (back.entity.x, back.entity.y) == pytest.approx(where, abs=1e-3)
    assert c.services[2].locator.answered == 1


def test_the_freshest_position_wins() -> None:
    clock = Clock()
    clock.advance(10_000)
    b = TokenBook(KEY, clock, lifetime=60)
    claims = b.check(b.mint("alice", "start", 1.0, 1.0))  # issued at 10,000
    saved = {"zone": "start", "x": 5.0, "y": 5.0, "data": {"hp": 3}}
    assert freshest(claims, 60, saved, 9_990.0, None) == (
        {"zone": "start", "x": 1.0, "y": 1.0, "data": {"hp": 3}}, "its token")
    assert freshest(claims, 60, saved, 10_001.0, None)[0]["x"] == 5.0
    heard = (10_002.0, "start", 9.0, 9.5)
    assert freshest(claims, 60, saved, 10_001.0, heard) == (
        {"zone": "start", "x": 9.0, "y": 9.5, "data": {"hp": 3}}, "the cluster")
    assert freshest(claims, 60, {}, None, None)[0]["x"] == 1.0


def test_tokens_of_the_test_key_are_checked_with_it() -> None:
    node = make_node()
    t = FakePlayer(node, "alice").token
    assert t is not None
    TokenBook(TEST_KEY, node.clock).check(t)


# -- placement: the owner of the region plays the player --------------------------------


def _regions_cluster() -> FakeCluster:
    # A 2,000-unit zone of 100-unit cells: 4 x 4 regions of 5 cells, one per block.
    c = FakeCluster(["a", "b"], placement="regions", region_block=1,
                    zone=["world:2000x2000"], spawn="random")
    c.step(2)
    for node in c.nodes:
        assert node.placement.ownership.nodes == {"a", "b"}
    return c


def _spot_owned_by(node, owner: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for rx in range(4):
        for ry in range(4):
            x, y = rx * 500 + 250, ry * 500 + 250
            if node.placement.owner_at("world", x, y) == owner:
                return x, y
    raise AssertionError(f"{owner} owns no region")


def test_a_login_on_the_wrong_node_is_sent_to_the_owner_and_taken_there() -> None:
    c = _regions_cluster()
    a, b = c.nodes
    x, y = _spot_owned_by(a, "b")
    # Alice's account, saved standing in b's land.
    a.store.authenticate("alice", "pw", True)
    a.store.save_state("alice", {"zone": "world", "x": x, "y": y})
    again = FakePlayer(a, "alice", login=False)
    again.send(m.Hello(), m.Login("alice", "pw"))
    sent = again.expect(m.Redirect)
    assert (sent.host, sent.port) == ("127.0.0.1", b.settings.node.tcp)
    assert again.session.ended and "alice" not in a.sessions
    there = FakePlayer(b, "alice", token=sent.token)
    assert (there.entity.x, there.entity.y) == (x, y)
    assert a.snapshot()["redirects"] >= 1


def test_a_player_sent_by_a_redirect_stays_even_if_the_views_differ() -> None:
    c = _regions_cluster()
    a, b = c.nodes
    x, y = _spot_owned_by(a, "a")
    # b is told a stale node set in which it owns everything ...
    b.nodes_changed(frozenset({"b"}))
    token = a.resumes.book.mint("carol", "world", x, y, for_node="b")
    # ... a's Redirect made out to b is taken by b, not bounced back.
    FakePlayer(b, "carol", token=token)
    assert "carol" in b.sessions


def test_a_resume_at_a_node_that_does_not_own_the_spot_is_sent_on() -> None:
    c = _regions_cluster()
    a, b = c.nodes
    x, y = _spot_owned_by(a, "a")
    token = b.resumes.book.mint("dave", "world", x, y)  # a Ticket's token: for no node
    p = FakePlayer(b, "dave", login=False)
    p.send(m.Hello(), m.Resume(token))
    c.step(3)  # b asks the others where dave was, first
    sent = p.expect(m.Redirect)
    FakePlayer(a, "dave", token=sent.token)
    assert "dave" in a.sessions


def test_with_connection_placement_nobody_is_sent_anywhere() -> None:
    c = FakeCluster(["a", "b"], zone=["world:2000x2000"])
    c.step(2)
    a, _ = c.nodes
    x, y = _spot_owned_by(a, "b")
    p = FakePlayer(a, "erin")
    p.entity.zone.move(p.entity, x, y)
    p.disconnect()
    FakePlayer(a, "erin")
    assert "erin" in a.sessions and a.snapshot()["redirects"] == 0
