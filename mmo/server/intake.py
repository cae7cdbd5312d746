"""
A connection's intake: the session's states, and reading its socket only
while what it brings can be used.

:class:`ReadControl` is the part of :class:`~mmo.server.session.PlayerSession`
that starts and stops reading: a client over its request budget is not read
until the budget refills (one timer, woken when a quarter of the burst is
back); one whose output is backed up, or whose unread frames wait (a login
being checked), is not read either; a closing one is read and dropped, so
that the close never resets.
"""

from __future__ import annotations

from typing import Any

from . import fastwrite
from .limits import COSTS

HELLO, LOGIN, AUTHENTICATING, PLAYING, CLOSED = range(5)

#: Unread bytes held for a connection (its decoder's buffer) past which it
#: is not read until they are used (while a login is checked, say).
READ_AHEAD = 64 * 1024

_COST = COSTS.get


class ReadControl:
    """Starting and stopping a session's reads (mixed into the session)."""

    # Provided by the session.
    state: int
    node: Any
    budget: Any
    inbox: Any
    decoder: Any
    transport: Any
    throttled_since: float | None
    closing_since: float | None
    paused_since: float | None
    _refill: Any
    _reading: bool

    def _rate_limited(self, now: float, what: str) -> None:
        raise NotImplementedError

    def _process(self, now: float) -> None:
        raise NotImplementedError

    def _throttle(self, now: float) -> None:
        """Over budget: say so once per burst, read no more until it refills."""
        if self.throttled_since is None:
            self.throttled_since = now
            self._rate_limited(now, "requests")
        if self._refill is None or not self._refill.active():
            # Wake when a quarter of the burst is back (few wakeups a second),
            # or at least enough for the frame that waits.
            budget = self.budget
            need = _COST(self.inbox[0][0], 1.0) if self.inbox else 1.0
            wait = budget.wait(min(max(need, budget.burst / 4), budget.burst))
            self._refill = self.node.clock.callLater(  # type: ignore[attr-defined]
                max(wait, 0.001), self._refilled)
        self._set_reading()

    def _refilled(self) -> None:
        self._refill = None
        self._process(self.node.clock.seconds())
        self._set_reading()

    def _set_reading(self) -> None:
        """Read the socket only while what it brings can be used (or dropped)."""
        closing_plainly = (self.closing_since is not None
                           and type(self.transport) not in fastwrite.TCP_TYPES)
        if self.state == CLOSED or closing_plainly:
            return
        want = self.closing_since is not None or (
            self.paused_since is None and not self.inbox
            and self.decoder.buffered < READ_AHEAD)
        if want != self._reading:
            self._reading = want
            transport = self.transport
            if want:
                transport.resumeProducing()
            else:
                transport.pauseProducing()

