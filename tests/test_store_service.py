"""
Autosave, shutdown saves and failed-login limits inside a node on a Clock,
with the SQLite store run inline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock

from mmo.interfaces import LoginRefused
from mmo.server.limits import LoginLimiter
from mmo.store import SQLITE, Database, DatabaseAccountStore, InlinePool, PersistenceService
from mmo.store.db import prepare
from mmo.store.writer import StateWriter
from mmo.testing import FakePlayer, make_node
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode


def persistent_node(tmp_path: Path, **settings: Any) -> tuple[Any, PersistenceService, Clock]:
    clock = Clock()
    node = make_node(clock, **settings)
    db = Database(SQLITE, str(tmp_path / "mmo.sqlite3"))
    pool = InlinePool(db)
    pool.runInteraction(prepare, SQLITE, node.node_id)
    node.store = DatabaseAccountStore(pool, SQLITE, node.node_id, clock, iterations=1)
    node.report(node.store)  # as the node service wires it
    service = PersistenceService(node, node.store, None, clock, autosave=5.0)
    service.startService()
    return node, service, clock


def stored(node: Any, name: str) -> tuple[float, float] | None:
    row = node.store.pool.connection.execute(
        "SELECT x, y FROM player_state WHERE name = ?", (name,)).fetchone()
    return None if row is None else (row[0], row[1])


def test_autosave_writes_changed_players_in_one_batch(tmp_path: Path) -> None:
    node, service, clock = persistent_node(tmp_path)
    players = [FakePlayer(node, f"p{i}") for i in range(20)]
    node.tick()
    for p in players:
        p.entity.x, p.entity.y = 10.0, 20.0
    clock.advance(5.0)
    assert node.store.writer.batches == 1 and node.store.writer.saved == 20
    assert stored(node, "p7") == (10.0, 20.0)
    players[3].entity.x = 11.0
    clock.advance(5.0)  # only the one that moved
    assert node.store.writer.batches == 2 and node.store.writer.saved == 21
    clock.advance(5.0)  # nothing changed: nothing written
    assert node.store.writer.batches == 2
    assert node.snapshot()["db_saved"] == 21


def test_logout_saves_and_the_next_login_restores(tmp_path: Path) -> None:
    node, service, clock = persistent_node(tmp_path)
    alice = FakePlayer(node, "alice")
    alice.entity.x, alice.entity.y = 33.0, 44.0
    alice.send(m.Bye())
    alice.disconnect()
    clock.advance(0)
    assert stored(node, "alice") == (33.0, 44.0)
    again = FakePlayer(node, "alice")
    assert (again.entity.x, again.entity.y) == (33.0, 44.0)


def test_shutdown_saves_every_player_before_it_returns(tmp_path: Path) -> None:
    node, service, clock = persistent_node(tmp_path)
    players = [FakePlayer(node, f"p{i}") for i in range(50)]
    for i, p in enumerate(players):
        p.entity.x = float(i)
    d = service.stopService()
    clock.advance(0)
    assert d.called
    assert all(stored(node, f"p{i}") == (float(i), players[i].entity.y) for i in range(50))


def test_shutdown_waits_for_a_failing_database_only_so_long(tmp_path: Path) -> None:
    node, service, clock = persistent_node(tmp_path)
    FakePlayer(node, "alice")
    node.store.writer.write_batch = lambda batch: fail(OSError("disk full"))
    service.save_timeout = 3.0
    d = service.stopService()
    clock.advance(1.0)
    assert not d.called
    clock.advance(2.5)
    assert d.called  # gave up after the bound, with a critical log line


def test_writer_keeps_the_newest_state_when_a_batch_fails() -> None:
    clock = Clock()
    calls: list[dict[str, Any]] = []
    outcomes = [fail(OSError("locked")), succeed(None)]
    w = StateWriter(clock, lambda batch: (calls.append(batch), outcomes.pop(0))[1])
    first = w.put("a", {"x": 1})
    clock.advance(0)
    second = w.put("a", {"x": 2})
    assert not first.called and w.failures == 1
    clock.advance(w.retry_max)
    assert calls[-1] == {"a": {"x": 2}} and first.called and second.called


def refused_with(p: FakePlayer) -> list[int]:
    return [msg.code for msg in p.received() if isinstance(msg, m.Error)]


def test_a_burst_of_failed_logins_is_refused_per_name_and_address() -> None:
    clock = Clock()
    node = make_node(clock, login_failures_per_name=3)
    FakePlayer(node, "alice", "right").disconnect()
    codes = []
    for _ in range(5):
        p = FakePlayer(node, "alice", "wrong", host="10.0.0.9", login=False)
        p.send(m.Hello(), m.Login("alice", "wrong"))
        codes += refused_with(p)
    assert codes == [ErrorCode.AUTH_FAILED] * 3 + [ErrorCode.RATE_LIMITED] * 2
    # From that address even the right password waits for the window...
    p = FakePlayer(node, "alice", "right", host="10.0.0.9", login=False)
    p.send(m.Hello(), m.Login("alice", "right"))
    assert refused_with(p) == [ErrorCode.RATE_LIMITED]
    # ...but the guesser cannot lock the owner out: from an address with no
    # failures, the right password goes in at once.
    FakePlayer(node, "alice", "right", host="10.0.0.1").disconnect()
    clock.advance(60)
    FakePlayer(node, "alice", "right", host="10.0.0.9")  # and then from there too


def test_a_burst_of_failed_logins_is_refused_per_address() -> None:
    clock = Clock()
    node = make_node(clock, login_failures_per_ip=4, open_registration=False)
    codes = []
    for i in range(6):
        p = FakePlayer(node, f"nobody{i}", login=False)
        p.send(m.Hello(), m.Login(f"nobody{i}", "pw"))
        codes += refused_with(p)
    assert codes == [ErrorCode.REGISTRATION_CLOSED] * 4 + [ErrorCode.RATE_LIMITED] * 2
    other = FakePlayer(node, "nobody9", host="10.9.9.9", login=False)
    other.send(m.Hello(), m.Login("nobody9", "pw"))
    assert refused_with(other) == [ErrorCode.REGISTRATION_CLOSED]


def test_limiter_tells_how_long_to_wait_and_forgets_old_keys() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock, per_ip=0, per_name=1, window=30)
    limiter.attempt("ip", "a", lambda: fail(LoginRefused(ErrorCode.AUTH_FAILED, "no")))
    clock.advance(10)
    d = limiter.attempt("ip", "a", lambda: succeed("never"))
    errors: list[Any] = []
    d.addErrback(errors.append)
    assert "try again in 20s" in errors[0].value.text
    clock.advance(20)
    assert limiter.by_name.blocked_for("a@ip", clock.seconds()) == 0
    assert limiter.by_name.failures == {}
