"""
The account store's SQL on SQLite and on a real PostgreSQL server, run
inline (no threads, no reactor) through :class:`~mmo.store.InlinePool`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from mmo.interfaces import IAccountStore, LoginRefused
from mmo.store import POSTGRESQL, SQLITE, VERSION, Database, DatabaseAccountStore, InlinePool
from mmo.store.db import prepare
from mmo.store.pool import parse_db, run_sync
from mmo.store.sql import MIGRATIONS, SchemaError, migrate, schema_version
from mmo.wire.messages import ErrorCode


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: Any, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(SQLITE, str(tmp_path / "mmo.sqlite3"), busy_timeout=0.05)
    return Database(POSTGRESQL, request.getfixturevalue("postgresql_db"))


class Stores:
    """Stores of several nodes on one database, sharing one clock."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = Clock()
        self.pools: list[InlinePool] = []

    def open(self, node_id: str = "n1", ttl: float = 15.0) -> DatabaseAccountStore:
        pool = InlinePool(self.db)
        self.pools.append(pool)
        store = DatabaseAccountStore(pool, self.db.dialect, node_id, self.clock,
                                     iterations=1, presence_ttl=ttl)
        result(pool.runInteraction(prepare, self.db.dialect, node_id))
        return store

    def close(self) -> None:
        for pool in self.pools:
            pool.close()


@pytest.fixture
def stores(database: Database) -> Iterator[Stores]:
    s = Stores(database)
    yield s
    s.close()


def result(d: Any) -> Any:
    """The result of a Deferred that has fired (raise its failure)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def refusal(d: Any) -> int:
    with pytest.raises(LoginRefused) as info:
        result(d)
    return info.value.code


def test_store_provides_the_interface(stores: Stores) -> None:
    assert verifyObject(IAccountStore, stores.open())


def test_schema_is_created_and_migrating_again_changes_nothing(stores: Stores) -> None:
    stores.open()
    pool = stores.pools[0]
    d = stores.db.dialect
    assert result(pool.runInteraction(schema_version, d)) == VERSION
    assert result(pool.runInteraction(migrate, d)) == (VERSION, VERSION)


def test_an_old_schema_is_migrated_and_keeps_its_data(database: Database) -> None:
    pool = InlinePool(database)
    try:
        d = database.dialect
        assert result(pool.runInteraction(migrate, d, 1)) == (0, 1)

        def old_account(txn: Any) -> None:
            txn.execute(d.sql("INSERT INTO accounts VALUES (?, ?, ?, ?, 0)"),
                        ("old", b"s", b"d", 1))

        result(pool.runInteraction(old_account))
        assert result(pool.runInteraction(migrate, d)) == (1, len(MIGRATIONS))

        def names(txn: Any) -> list[str]:
            txn.execute("SELECT name FROM accounts")
            return [r[0] for r in txn.fetchall()]

        assert result(pool.runInteraction(names)) == ["old"]
    finally:
        pool.close()


def test_a_newer_schema_is_refused(database: Database) -> None:
    pool = InlinePool(database)
    try:
        d = database.dialect
        result(pool.runInteraction(migrate, d))

        def bump(txn: Any) -> None:
            txn.execute("UPDATE schema_version SET version = version + 1")

        result(pool.runInteraction(bump))
        with pytest.raises(SchemaError, match="upgrade mmo"):
            result(pool.runInteraction(migrate, d))
    finally:
        pool.close()


def test_register_log_in_wrong_password_and_closed_registration(stores: Stores) -> None:
    store = stores.open()
    account = result(store.authenticate("alice", "pw", True))
    assert account.name == "alice" and account.state == {}
    assert result(store.authenticate("alice", "pw", False)).name == "alice"
    assert refusal(store.authenticate("alice", "nope", True)) == ErrorCode.AUTH_FAILED
    assert refusal(store.authenticate("bob", "pw", False)) == ErrorCode.REGISTRATION_CLOSED
    assert refusal(store.authenticate("bad name!", "pw", True)) == ErrorCode.INVALID


def test_passwords_are_salted_slow_hashes(stores: Stores) -> None:
    store = stores.open()
    result(store.authenticate("alice", "pw", True))
    result(store.authenticate("bob", "pw", True))

    def rows(txn: Any) -> list[tuple]:
        txn.execute("SELECT salt, digest, iterations FROM accounts ORDER BY name")
        return [(bytes(s), bytes(dg), i) for s, dg, i in txn.fetchall()]

    (salt_a, digest_a, _), (salt_b, digest_b, _) = result(
        stores.pools[0].runInteraction(rows))
    assert salt_a != salt_b and digest_a != digest_b
    assert b"pw" not in digest_a


def test_state_saved_at_logout_is_loaded_at_the_next_login(stores: Stores) -> None:
    store = stores.open()
    result(store.authenticate("alice", "pw", True))
    state = {"zone": "arena", "x": 12.5, "y": 99.25, "data": {"gold": 7, "tags": ["a"]}}
    saved = store.save_state("alice", state)
    stores.clock.advance(0)
    assert result(saved) is None
    again = stores.open("n2")  # another node, or this one after a restart
    assert result(again.authenticate("alice", "pw", False)).state == state


def test_a_batch_saves_many_players_in_one_transaction(stores: Stores) -> None:
    store = stores.open()
    names = [f"p{i}" for i in range(300)]
    for n in names:
        result(store.authenticate(n, "pw", True))
    pool = stores.pools[0]
    before = pool.interactions
    store.save_states({n: {"zone": "world", "x": i, "y": i + 0.5, "data": {}}
                       for i, n in enumerate(names)})
    stores.clock.advance(0)
    assert pool.interactions == before + 1
    assert store.writer.saved == 300 and not store.writer.busy
    loaded = result(stores.open("n2").authenticate("p299", "pw", False))
    assert (loaded.state["x"], loaded.state["y"]) == (299.0, 299.5)


def test_a_name_playing_on_a_live_node_is_refused_elsewhere(stores: Stores) -> None:
    a, b = stores.open("A"), stores.open("B")
    a.is_playing = lambda name: name == "alice"
    result(a.authenticate("alice", "pw", True))
    d = b.authenticate("alice", "pw", False)
    with pytest.raises(LoginRefused) as info:
        result(d)
    assert info.value.code == ErrorCode.NAME_IN_USE and "node A" in info.value.text
    # The same node: the newest login wins (the node replaces the session).
    assert result(a.authenticate("alice", "pw", False)).name == "alice"
    # Logout on A stores the state and releases the name in one transaction.
    a.is_playing = lambda name: False
    a.save_state("alice", {"zone": "world", "x": 5.0, "y": 6.0, "data": {}})
    stores.clock.advance(0)
    assert result(b.authenticate("alice", "pw", False)).state["x"] == 5.0


def test_a_silent_node_loses_its_claims_after_the_ttl(stores: Stores) -> None:
    a, b = stores.open("A", ttl=15), stores.open("B", ttl=15)
    result(a.authenticate("alice", "pw", True))
    assert refusal(b.authenticate("alice", "pw", False)) == ErrorCode.NAME_IN_USE

    def age(txn: Any) -> None:  # A was killed 20 seconds ago
        txn.execute(stores.db.dialect.sql("UPDATE nodes SET seen_at = seen_at - 20 "
                                          "WHERE node_id = ?"), ("A",))

    result(stores.pools[0].runInteraction(age))
    assert result(b.authenticate("alice", "pw", False)).name == "alice"


def test_a_restarted_node_drops_the_claims_of_its_last_run(stores: Stores) -> None:
    a = stores.open("A")
    result(a.authenticate("alice", "pw", True))
    stores.open("A")  # the same node id starts again after kill -9
    assert result(stores.open("B").authenticate("alice", "pw", False)).name == "alice"


def test_heartbeat_releases_abandoned_claims_and_leave_releases_all(stores: Stores) -> None:
    a, b = stores.open("A"), stores.open("B")
    result(a.authenticate("alice", "pw", True))  # the client went away mid-login
    result(a.authenticate("bob", "pw", True))
    a.is_playing = lambda name: name == "bob"
    result(a.heartbeat())
    assert a.claimed == {"bob"}
    assert result(b.authenticate("alice", "pw", False)).name == "alice"
    assert refusal(b.authenticate("bob", "pw", False)) == ErrorCode.NAME_IN_USE
    result(a.leave())
    assert result(b.authenticate("bob", "pw", False)).name == "bob"


def test_unreadable_extension_data_does_not_fail_the_save(stores: Stores) -> None:
    store = stores.open()
    result(store.authenticate("alice", "pw", True))
    store.save_state("alice", {"zone": "world", "x": 1, "y": 2, "data": {"o": object()}})
    stores.clock.advance(0)
    assert store.writer.saved == 1 and store.writer.errors == 0


def test_database_unavailable_refuses_logins_clearly(stores: Stores) -> None:
    store = stores.open()
    stores.pools[0].connection.close()
    assert refusal(store.authenticate("alice", "pw", True)) == ErrorCode.SERVER_FULL


# -- SQLite failures: a locked database, a full disk -------------------------


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> Iterator[Stores]:
    s = Stores(Database(SQLITE, str(tmp_path / "mmo.sqlite3"), busy_timeout=0.05))
    yield s
    s.close()


def test_a_locked_database_is_logged_and_retried(sqlite_stores: Stores) -> None:
    store = sqlite_stores.open()
    result(store.authenticate("alice", "pw", True))
    other = sqlite3.connect(sqlite_stores.db.target, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    saved = store.save_state("alice", {"zone": "world", "x": 3.0, "y": 4.0, "data": {}})
    sqlite_stores.clock.advance(0)
    w = store.writer
    assert w.failures == 1 and "locked" in w.last_error and "alice" in w.pending
    assert not saved.called
    # A newer state queued while failing replaces the older one.
    store.save_states({"alice": {"zone": "world", "x": 8.0, "y": 9.0, "data": {}}})
    sqlite_stores.clock.advance(10)
    assert w.failures == 2
    other.execute("ROLLBACK")
    other.close()
    sqlite_stores.clock.advance(60)
    assert saved.called and not w.busy and w.failures == 0
    state = result(sqlite_stores.open("n2").authenticate("alice", "pw", False)).state
    assert (state["x"], state["y"]) == (8.0, 9.0)


def test_a_full_disk_is_logged_and_retried(sqlite_stores: Stores) -> None:
    store = sqlite_stores.open()
    result(store.authenticate("alice", "pw", True))
    conn = sqlite_stores.pools[0].connection
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    big = {"zone": "world", "x": 1.0, "y": 2.0, "data": {"blob": "x" * 200_000}}
    store.save_state("alice", big)
    sqlite_stores.clock.advance(0)
    assert store.writer.failures == 1 and "full" in store.writer.last_error
    conn.execute("PRAGMA max_page_count=1073741823")  # space again
    sqlite_stores.clock.advance(60)
    assert not store.writer.busy and store.writer.saved == 1


# -- the --db value ----------------------------------------------------------


def test_db_setting() -> None:
    assert parse_db("", "/var/lib/mmo") == Database(SQLITE, "/var/lib/mmo/mmo.sqlite3")
    assert parse_db("sqlite:/tmp/x.db", "d").target == "/tmp/x.db"
    assert parse_db("sqlite:///tmp/x.db", "d").target == "/tmp/x.db"
    pg = parse_db("postgresql://mmo:secret@db.example/mmo", "d")
    assert pg.dialect is POSTGRESQL and pg.display == "postgresql://mmo@db.example/mmo"
    with pytest.raises(ValueError):
        parse_db("mysql://x", "d")


def test_run_sync_rolls_back_a_failed_interaction(tmp_path: Path) -> None:
    db = Database(SQLITE, str(tmp_path / "x.sqlite3"))
    pool = InlinePool(db)
    result(pool.runInteraction(migrate, SQLITE))

    def half(txn: Any) -> None:
        txn.execute("INSERT INTO accounts VALUES ('a', x'00', x'00', 1, 0)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_sync(pool.connection, half)
    assert pool.connection.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0
    pool.close()
