"""
:class:`PersistenceService`: the node's database at startup, autosave,
presence heartbeats, and the last save at shutdown.

It is a child of the node's service, so it stops after the node has told
its clients and closed their sessions (each close already queued that
player's state): it then queues every player still in the world, waits for
the writes with a bound (``save_timeout``), releases this node's claims,
and closes the pool.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..interfaces import IGame
from .db import DatabaseAccountStore, prepare
from .pool import Database, connect, run_sync


class PersistenceService(Service):
    """Keeps the players of ``game`` saved in ``store``."""

    log = Logger()

    def __init__(self, game: IGame, store: DatabaseAccountStore, db: Database | None,
                 clock: Any, autosave: float = 30.0, save_timeout: float = 10.0) -> None:
        self.game = game
        self.store = store
        self.db = db
        self.clock = clock
        self.autosave_interval = autosave
        self.save_timeout = save_timeout
        #: The state last queued for each playing name (to skip unchanged ones).
        self.last_put: dict[str, dict[str, Any]] = {}
        self._saved_at_shutdown: int | None = None
        self._autosave = LoopingCall(self.autosave)
        self._autosave.clock = clock
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = clock
        store.is_playing = game.is_playing

    def shutdown_began(self) -> None:
        """
        The node is telling its players it stops (each leaving player's
        state is queued from now on): the shutdown's count starts here.
        """
        self._saved_at_shutdown = self.store.writer.saved

    def startService(self) -> None:
        if self.db is not None:
            self.open_database(self.db)
        super().startService()
        self._autosave.start(self.autosave_interval, now=False).addErrback(
            lambda f: self.log.failure("autosave stopped", f))
        self._heartbeat.start(self.store.presence_ttl / 3, now=False).addErrback(
            lambda f: self.log.failure("presence heartbeat stopped", f))

    def open_database(self, db: Database) -> None:
        # Before the reactor runs: a database that cannot be used stops the
        # start with one clear line, rather than a node that refuses logins.
        try:
            conn = connect(db)
            try:
                before, after = run_sync(conn, prepare, db.dialect, self.store.node_id)
            finally:
                conn.close()
        except Exception as e:
            raise SystemExit(f"mmo: cannot use database {db.display}: "
                             f"{type(e).__name__}: {e}".strip()) from None
        if before != after:
            self.log.info("database {db}: schema migrated from version {old} to {new}",
                          db=db.display, old=before, new=after)
        self.log.info("accounts and player state in {db} (schema version {v})",
                      db=db.display, v=after)

    def states(self, changed_only: bool) -> dict[str, dict[str, Any]]:
        """The state of every player in the world (only changed ones if asked)."""
        out: dict[str, dict[str, Any]] = {}
        last = self.last_put
        for player in self.game.players():
            name = player.name
            state = player.state()
            if changed_only and last.get(name) == state:
                continue
            out[name] = state
        return out

    def autosave(self) -> None:
        """Queue every changed player's state (written in one batch, off the reactor)."""
        states = self.states(changed_only=True)
        playing = self.game.is_playing
        for name in [n for n in self.last_put if not playing(n)]:
            del self.last_put[name]
        self.last_put.update(states)
        if states:
            self.store.save_states(states)
            self.log.debug("autosave: {n} players changed", n=len(states))

    def heartbeat(self) -> defer.Deferred:
        d = self.store.heartbeat()
        d.addErrback(lambda f: self.log.warn(
            "presence heartbeat failed: {error}", error=f.getErrorMessage()))
        return d

    @defer.inlineCallbacks
    def save_everything(self, timeout: float) -> Any:
        """Queue every player's state; fire with how many are still unsaved after ``timeout``."""
        self.store.save_states(self.states(changed_only=False))
        writer = self.store.writer
        done = writer.flush()
        timer = self.clock.callLater(timeout, done.cancel)
        try:
            yield done
        except defer.CancelledError:
            pass
        else:
            timer.cancel()
        return len(writer.pending) + len(writer.in_flight)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        for loop in (self._autosave, self._heartbeat):
            if loop.running:
                loop.stop()
        writer = self.store.writer
        saved_before = writer.saved if self._saved_at_shutdown is None \
            else self._saved_at_shutdown
        started = time.perf_counter()
        unsaved = yield self.save_everything(self.save_timeout)
        if unsaved:
            self.log.critical(
                "shutdown: {n} players' state could not be saved within {t}s "
                "(last error: {error})", n=unsaved, t=self.save_timeout,
                error=writer.last_error or "none")
        else:
            try:
                yield self._bounded(self.store.leave(), 2.0)
            except Exception as e:
                self.log.warn("could not release this node's claims: {error}", error=e)
        writer.cancel()
        self.log.info("shutdown: {n} player states saved, {u} unsaved ({ms:.0f} ms)",
                      n=writer.saved - saved_before, u=unsaved,
                      ms=(time.perf_counter() - started) * 1000)
        close = getattr(self.store.pool, "close", None)
        if close is not None and self.db is not None:
            close()

    def _bounded(self, d: defer.Deferred, timeout: float) -> defer.Deferred:
        timer = self.clock.callLater(timeout, d.cancel)

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(done)
