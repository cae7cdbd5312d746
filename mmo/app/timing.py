"""
How late the tick runs: the event loop's lag and the gaps between ticks.

A tick's duration says how long the game took, and nothing about a reactor
held up elsewhere (a slow callback, a long garbage collection, a paused
process or VM): then the tick simply runs late, or not at all for seconds,
and every player waits.  :class:`TickTiming` sees that from the tick's
side.  At the start of each tick it notes

- the *lag*: how long after its due time the tick ran, and
- the *gap*: the time since the previous tick started (``1 / tick_rate``
  when all is well),

and keeps their largest values over the last :data:`RECENT_WINDOW` seconds
and since start.  :class:`ScheduledLoop` is the ``LoopingCall`` that knows
when the call now running was due.  Per tick this costs a few float
operations and one append to a short deque; a reading costs the same
whatever the number of ticks.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from ..interfaces import INumbers
from .metrics import TickHistogram

#: Seconds over which the recent maxima are kept: a stall stays visible to
#: several scrapes (Prometheus scrapes every 15 s) and metrics datagrams.
RECENT_WINDOW = 60.0

#: Upper bounds of the lag histogram, in seconds: from a millisecond late to
#: a reactor blocked for half a minute.
LAG_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


class ScheduledLoop(LoopingCall):
    """A ``LoopingCall`` whose :attr:`due` is when the running call was due."""

    #: When the call now running (or the last one) was scheduled to run.
    due: float | None = None

    def __call__(self) -> None:
        # The delayed call that fired is still ours here; the base class
        # forgets it before calling the function.
        call = self.call
        self.due = call.getTime() if call is not None else self.clock.seconds()
        super().__call__()


class WindowMax:
    """The largest value added in the last ``window`` seconds."""

    __slots__ = ("window", "_items")

    def __init__(self, window: float) -> None:
        self.window = window
        # (time, value), values decreasing: a value is dropped as soon as a
        # larger one arrives after it, so the front is always the maximum.
        self._items: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        items = self._items
        while items and items[-1][1] <= value:
            items.pop()
        items.append((now, value))
        self._expire(now)

    def max(self, now: float) -> float:
        """The largest value of the window ending at ``now`` (0 when empty)."""
        self._expire(now)
        return self._items[0][1] if self._items else 0.0

    def _expire(self, now: float) -> None:
        items = self._items
        cutoff = now - self.window
        while items and items[0][0] < cutoff:
            items.popleft()


@implementer(INumbers)
class TickTiming:
    """
    The lag and gaps of one tick loop; an :class:`~mmo.interfaces.INumbers`
    whose numbers go into the node's snapshot (``/metrics`` and the
    cluster's metrics datagram).
    """

    def __init__(self, interval: float, clock: IReactorTime,
                 window: float = RECENT_WINDOW) -> None:
        self.interval = interval
        self.clock = clock
        self.lag_histogram = TickHistogram(LAG_BUCKETS)
        self.recent_lag = WindowMax(window)
        self.recent_gap = WindowMax(window)
        self.max_lag = 0.0
        self.max_gap = 0.0
        #: Ticks that were due but never ran: a late loop skips, never bursts.
        self.skipped = 0
        self.last_start: float | None = None
        self._last_due: float | None = None
        self._counted_ahead = 0

    def started(self, due: float, now: float) -> None:
        """A tick due at ``due`` starts at ``now``."""
        lag = now - due
        if lag < 0.0:
            lag = 0.0
        if lag > self.max_lag:
            self.max_lag = lag
        self.lag_histogram.observe(lag)
        self.recent_lag.add(now, lag)
        last = self.last_start
        if last is not None:
            gap = now - last
            if gap > self.max_gap:
                self.max_gap = gap
            self.recent_gap.add(now, gap)
        # Skipped: the due times between the previous tick's and this one's,
        # less those already counted then, plus those this late start has
        # already passed (the loop's next due time is after now).
        interval = self.interval
        ahead = int(lag / interval)
        previous_due = self._last_due
        missed = 0 if previous_due is None else round((due - previous_due) / interval) - 1
        self.skipped += max(0, missed - self._counted_ahead) + ahead
        self._counted_ahead = ahead
        self.last_start = now
        self._last_due = due

    def numbers(self) -> dict[str, Any]:
        """
        The recent maxima, in whole milliseconds, for the node's snapshot
        (and so for the cluster's metrics datagram, which has little room:
        two short keys).  A gap still open counts as one.
        """
        now = self.clock.seconds()
        gap = max(self.recent_gap.max(now), self._open_gap(now))
        return {
            "tick_lag_max_ms": round(self.recent_lag.max(now) * 1000),
            "tick_gap_max_ms": round(gap * 1000),
        }

    def totals(self) -> dict[str, Any]:
        """Since start, for ``/metrics``: the longest gap, the skipped ticks."""
        now = self.clock.seconds()
        return {
            "tick_gap_longest_ms": max(self.max_gap, self._open_gap(now)) * 1000,
            "tick_lag_longest_ms": self.max_lag * 1000,
            "ticks_skipped": self.skipped,
        }

    def _open_gap(self, now: float) -> float:
        return 0.0 if self.last_start is None else max(0.0, now - self.last_start)
