"""
:class:`DatabaseAccountStore`: accounts and player state in SQLite or
PostgreSQL, behind :class:`~mmo.interfaces.IAccountStore`.

Every query runs through ``pool.runInteraction`` (``adbapi``: a thread per
query, never the reactor); password hashes are computed by the ``hasher``
(the node's thread pool).  State writes go through a
:class:`~mmo.store.writer.StateWriter`: batched, and retried while the
database is locked, full or unreachable.

A name plays on one node of the cluster at a time.  Logging in claims the
name in the ``online`` table for this node; the claim is released in the
same transaction that stores the player's last state at logout, so another
node that takes the name over always loads that last state.  A login on
another node while the claim is held by a live node (one whose ``nodes``
row was refreshed within ``presence_ttl`` seconds) is refused with
``NAME_IN_USE``; on the same node the newest login replaces the older
session.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ..interfaces import IAccountStore, INumbers, LoginRefused
from ..wire.messages import ErrorCode, valid_name
from .accounts import Account, Hasher, _inline, hash_password
from .sql import Dialect, migrate
from .writer import StateWriter


def prepare(txn: Any, d: Dialect, node_id: str) -> tuple[int, int]:
    """Startup: migrate, announce this node, drop claims of its last run."""
    versions = migrate(txn, d)
    txn.execute(d.sql("DELETE FROM online WHERE node_id = ?"), (node_id,))
    _touch_node(txn, d, node_id)
    return versions


def _touch_node(txn: Any, d: Dialect, node_id: str) -> None:
    txn.execute(d.sql(
        f"INSERT INTO nodes (node_id, seen_at) VALUES (?, {d.now}) "
        "ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at"), (node_id,))


def encode_data(data: Any) -> str:
    # Extensions may put anything in the record; what JSON cannot hold is
    # stored as its repr rather than losing the whole save.
    return json.dumps(data or {}, separators=(",", ":"), default=repr)


@implementer(IAccountStore, INumbers)
class DatabaseAccountStore:
    """Accounts and player state in a SQL database reached through ``pool``."""

    log = Logger()

    def __init__(self, pool: Any, dialect: Dialect, node_id: str, clock: IReactorTime,
                 iterations: int = 100_000, hasher: Hasher = _inline,
                 presence_ttl: float = 15.0) -> None:
        self.pool = pool
        self.d = dialect
        self.node_id = node_id
        self.clock = clock
        self.iterations = iterations
        self.hasher = hasher
        self.presence_ttl = presence_ttl
        self.writer = StateWriter(clock, self._write_batch)
        #: Names this node holds a claim for in ``online``.
        self.claimed: set[str] = set()
        #: Whether a name is playing on this node now (the node sets it);
        #: a name saved while not playing has its claim released.
        self.is_playing: Callable[[str], bool] = lambda name: False
        self._unavailable_logged_at = -1e9

    # -- accounts ------------------------------------------------------------

    @inlineCallbacks
    def authenticate(self, name: str, password: str, create: bool) -> Any:
        if not valid_name(name):
            raise LoginRefused(ErrorCode.INVALID,
                               "a name is 1 to 24 letters, digits, '_' or '-'")
        try:
            row = yield self.pool.runInteraction(self._credentials, name)
            if row is None:
                if not create:
                    raise LoginRefused(
                        ErrorCode.REGISTRATION_CLOSED,
                        f"no account named {name!r} and registration is closed")
                salt, iterations = os.urandom(16), self.iterations
                digest = yield self.hasher(lambda: hash_password(password, salt, iterations))
                created = yield self.pool.runInteraction(
                    self._create, name, salt, digest, iterations)
                if not created:  # another login created it while we hashed
                    row = yield self.pool.runInteraction(self._credentials, name)
            if row is not None:
                salt, digest, iterations = row
                given = yield self.hasher(lambda: hash_password(password, salt, iterations))
                if not hmac.compare_digest(given, digest):
                    raise LoginRefused(ErrorCode.AUTH_FAILED, "wrong name or password")
        except LoginRefused:
            raise
        except Exception as e:
            raise self._unavailable(e) from None
        state, saved_at = yield self._claimed(name, False)
        return Account(name, salt, digest, iterations, state, saved_at)

    @inlineCallbacks
    def resume(self, name: str) -> Any:
        state, saved_at = yield self._claimed(name, True)
        return Account(name, b"", b"", 0, state, saved_at)

    @inlineCallbacks
    def _claimed(self, name: str, take_over: bool) -> Any:
        """
        Claim ``name`` for this node (``take_over``: even from a live node);
        fire with its saved state and when it was saved (``None``: never).
        """
        try:
            state = yield self.pool.runInteraction(self._claim, name, take_over)
        except LoginRefused:
            raise  # held by a live node
        except Exception as e:
            raise self._unavailable(e) from None
        self.claimed.add(name)
        return state, state.pop("saved_at", None)

    def _unavailable(self, e: Exception) -> LoginRefused:
        """Log ``e`` (once per 10 s); the refusal of a login it stopped."""
        now = self.clock.seconds()
        if now - self._unavailable_logged_at >= 10.0:
            self._unavailable_logged_at = now
            self.log.error("account database unavailable, logins refused: {error}",
                           error=f"{type(e).__name__}: {e}")
        return LoginRefused(ErrorCode.SERVER_FULL,
                            "the account database is unavailable; try again shortly")

    def _credentials(self, txn: Any, name: str) -> tuple[bytes, bytes, int] | None:
        txn.execute(self.d.sql(
            "SELECT salt, digest, iterations FROM accounts WHERE name = ?"), (name,))
        row = txn.fetchone()
        if row is None:
            return None
        return bytes(row[0]), bytes(row[1]), int(row[2])

    def _create(self, txn: Any, name: str, salt: bytes, digest: bytes, iterations: int) -> bool:
        d = self.d
        txn.execute(d.sql(
            "INSERT INTO accounts (name, salt, digest, iterations, created_at) "
            f"VALUES (?, ?, ?, ?, {d.now}) ON CONFLICT (name) DO NOTHING"),
            (name, salt, digest, iterations))
        return txn.rowcount == 1

    def _claim(self, txn: Any, name: str, take_over: bool = False) -> dict[str, Any]:
        d = self.d
        if d.begin_write:
            txn.execute(d.begin_write)
        # Serializes the claims of one name by several nodes (PostgreSQL).
        txn.execute(d.sql("SELECT name FROM accounts WHERE name = ?" + d.for_update), (name,))
        txn.execute(d.sql(
            f"SELECT o.node_id, n.seen_at >= {d.now} - ? FROM online o "
            "LEFT JOIN nodes n ON n.node_id = o.node_id WHERE o.name = ?"),
            (self.presence_ttl, name))
        row = txn.fetchone()
        if row is not None and row[0] != self.node_id and row[1] and not take_over:
            raise LoginRefused(
                ErrorCode.NAME_IN_USE,
                f"{name} is playing on node {row[0]}; log out there first "
                f"(or wait {self.presence_ttl:g}s if that node stopped)")
        txn.execute(d.sql(
            f"INSERT INTO online (name, node_id, since) VALUES (?, ?, {d.now}) "
            "ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, "
            "since = excluded.since"), (name, self.node_id))
        txn.execute(d.sql(
            "SELECT zone, x, y, data, saved_at FROM player_state WHERE name = ?"), (name,))
        state = txn.fetchone()
        if state is None:
            return {}
        try:
            data = json.loads(state[3])
        except ValueError:
            data = {}
        return {"zone": state[0], "x": float(state[1]), "y": float(state[2]),
                "data": data if isinstance(data, dict) else {}, "saved_at": float(state[4])}

    # -- player state --------------------------------------------------------

    def save_state(self, name: str, state: dict) -> Deferred:
        """Queue ``name``'s state (logout); fire once it is committed."""
        return self.writer.put(name, state)

    def save_states(self, states: dict[str, dict[str, Any]]) -> None:
        """Queue many players' states (autosave, shutdown)."""
        self.writer.put_many(states)

    def _write_batch(self, batch: dict[str, dict[str, Any]]) -> Deferred:
        rows = []
        for name, s in batch.items():
            rows.append((name, str(s.get("zone", "")), float(s.get("x", 0.0)),
                         float(s.get("y", 0.0)), encode_data(s.get("data")), name))
        release = [n for n in batch if not self.is_playing(n)]
        d = self.pool.runInteraction(self._store_rows, rows, release)
        d.addCallback(self._released, release)
        return d

    def _store_rows(self, txn: Any, rows: list[tuple], release: list[str]) -> None:
        d = self.d
        if d.begin_write:
            txn.execute(d.begin_write)
        # WHERE EXISTS: a deleted account must not fail everyone's batch.
        txn.executemany(d.sql(
            "INSERT INTO player_state (name, zone, x, y, data, saved_at) "
            f"SELECT ?, ?, ?, ?, ?, {d.now} WHERE EXISTS "
            "(SELECT 1 FROM accounts WHERE name = ?) "
            "ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, x = excluded.x, "
            "y = excluded.y, data = excluded.data, saved_at = excluded.saved_at"), rows)
        if release:
            txn.executemany(d.sql("DELETE FROM online WHERE name = ? AND node_id = ?"),
                            [(n, self.node_id) for n in release])

    def _released(self, _: Any, names: list[str]) -> None:
        for n in names:
            if not self.is_playing(n):
                self.claimed.discard(n)

    # -- presence ------------------------------------------------------------

    def heartbeat(self) -> Deferred:
        """Refresh this node's row; drop claims of names no longer here."""
        stale = [n for n in self.claimed
                 if not self.is_playing(n) and n not in self.writer.pending
                 and n not in self.writer.in_flight]
        d = self.pool.runInteraction(self._heartbeat, stale)
        d.addCallback(self._released, stale)
        return d

    def _heartbeat(self, txn: Any, stale: list[str]) -> None:
        d = self.d
        if d.begin_write:
            txn.execute(d.begin_write)
        _touch_node(txn, d, self.node_id)
        if stale:
            txn.executemany(d.sql("DELETE FROM online WHERE name = ? AND node_id = ?"),
                            [(n, self.node_id) for n in stale])

    def leave(self) -> Deferred:
        """Graceful stop, everything saved: release every claim and the node row."""
        d = self.pool.runInteraction(self._leave)
        d.addCallback(lambda _: self.claimed.clear())
        return d

    def _leave(self, txn: Any) -> None:
        d = self.d
        if d.begin_write:
            txn.execute(d.begin_write)
        txn.execute(d.sql("DELETE FROM online WHERE node_id = ?"), (self.node_id,))
        txn.execute(d.sql("DELETE FROM nodes WHERE node_id = ?"), (self.node_id,))

    def numbers(self) -> dict[str, Any]:
        """Numbers for the metrics (:class:`~mmo.interfaces.INumbers`)."""
        w = self.writer
        return {"db_saved": w.saved, "db_save_batches": w.batches,
                "db_save_errors": w.errors, "db_unsaved": len(w.pending) + len(w.in_flight),
                "db_last_batch_ms": w.last_batch_seconds * 1000}
