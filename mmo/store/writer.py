"""
Write-behind for player state: saves are coalesced into batches, written
off the reactor, and retried until the database takes them.

A save never fails from the caller's point of view: when the database is
locked, full or gone, the batch goes back into the queue (the newest state
of each player wins), one line is logged, and the write is tried again with
a growing delay.  Nothing here blocks the reactor or raises into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

#: One queued save: the state and the Deferreds waiting for it to be stored.
Entry = tuple[dict[str, Any], list[Deferred]]
WriteBatch = Callable[[dict[str, dict[str, Any]]], Deferred]


class StateWriter:
    """
    Queue of unsaved player states, written by ``write_batch`` (which gets
    ``{name: state}`` and fires when all of it is committed).
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, write_batch: WriteBatch,
                 max_batch: int = 2000, retry_max: float = 30.0) -> None:
        self.clock = clock
        self.write_batch = write_batch
        self.max_batch = max_batch
        self.retry_max = retry_max
        self.pending: dict[str, Entry] = {}
        self.in_flight: dict[str, Entry] = {}
        self.failures = 0
        self.saved = 0
        self.batches = 0
        self.errors = 0
        self.last_batch_seconds = 0.0
        self.last_error = ""
        self._call: Any = None
        self._call_at = 0.0
        self._idle_waiters: list[Deferred] = []

    @property
    def busy(self) -> bool:
        return bool(self.pending or self.in_flight)

    def put(self, name: str, state: dict[str, Any]) -> Deferred:
        """Queue ``state`` as ``name``'s newest; fire when it is stored."""
        d: Deferred = Deferred()
        old = self.pending.get(name)
        waiters = old[1] if old is not None else []
        waiters.append(d)
        self.pending[name] = (state, waiters)
        if not self.failures:
            self._schedule(0.0)
        return d

    def put_many(self, states: dict[str, dict[str, Any]]) -> None:
        """Queue many states (autosave, shutdown) with no Deferreds."""
        for name, state in states.items():
            old = self.pending.get(name)
            self.pending[name] = (state, old[1] if old is not None else [])
        if states:
            self._schedule(0.0)

    def flush(self) -> Deferred:
        """Write now (even while backing off); fire when nothing is unsaved."""
        d: Deferred = Deferred()
        if not self.busy:
            d.callback(None)
            return d
        self._idle_waiters.append(d)
        if not self.in_flight:
            self._schedule(0.0, force=True)
        return d

    def _schedule(self, delay: float, force: bool = False) -> None:
        if self.in_flight:
            return  # _written or _failed schedules what comes next
        at = self.clock.seconds() + delay
        if self._call is not None and self._call.active():
            if not force and self._call_at <= at:
                return
            self._call.cancel()
        self._call_at = at
        self._call = self.clock.callLater(delay, self._write)

    def _write(self) -> None:
        self._call = None
        if not self.pending:
            self._fire_idle()
            return
        names = list(self.pending)[: self.max_batch]
        self.in_flight = {n: self.pending.pop(n) for n in names}
        batch = {n: entry[0] for n, entry in self.in_flight.items()}
        started = time.perf_counter()
        d = maybeDeferred(self.write_batch, batch)
        d.addCallbacks(self._written, self._failed, callbackArgs=(started,))
        d.addErrback(lambda f: self.log.failure("state writer bug", f))

    def _written(self, _: Any, started: float) -> None:
        batch, self.in_flight = self.in_flight, {}
        self.last_batch_seconds = time.perf_counter() - started
        self.batches += 1
        self.saved += len(batch)
        if self.failures:
            self.log.info("player state saves work again after {n} failed tries",
                          n=self.failures)
        self.failures = 0
        for _state, waiters in batch.values():
            for d in waiters:
                d.callback(None)
        if self.pending:
            self._schedule(0.0)
        else:
            self._fire_idle()

    def _failed(self, f: Failure) -> None:
        batch, self.in_flight = self.in_flight, {}
        self.failures += 1
        self.errors += 1
        self.last_error = f.getErrorMessage()
        delay = min(self.retry_max, 0.25 * 2 ** min(self.failures, 16))
        # One line per failure streak step, not one per player.
        self.log.error(
            "cannot save {n} players' state ({error}); {unsaved} unsaved, "
            "retrying in {delay:.2f}s (try {tries})",
            n=len(batch), error=f.getErrorMessage() or f.type.__name__,
            unsaved=len(batch) + len(self.pending), delay=delay, tries=self.failures)
        # Back into the queue, behind any newer state of the same player.
        for name, (state, waiters) in batch.items():
            newer = self.pending.get(name)
            if newer is None:
                self.pending[name] = (state, waiters)
            else:
                newer[1][:0] = waiters
        self._schedule(delay)

    def _fire_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)

    def cancel(self) -> None:
        """Stop retrying (the process is leaving)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
