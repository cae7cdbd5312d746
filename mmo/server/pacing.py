"""
Degrading on purpose under overload, rather than falling behind.

When ticks take most of their budget for a while, busy cells (many movers)
send their moves every other tick instead of every tick: half the bytes
and half the writes' worth of encoding for the crowds that cost the most,
while quiet cells keep full rate.  Nothing is lost: a skipped tick's movers
are held and go out with the next tick's, at their newest positions (moves
carry absolute positions).  When the load falls, full rate comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

#: Tick load (duration / budget, smoothed) above which busy cells slow down,
#: and below which they come back to full rate.
HIGH = 0.8
LOW = 0.5
#: Weight of the newest tick in the smoothed load.
SMOOTHING = 0.2


class UpdatePacing:
    """Decides, per cell and tick, whose moves go out."""

    log = Logger()

    def __init__(self, budget: float, busy: int) -> None:
        self.budget = budget
        self.busy = busy
        self.load = 0.0
        self.degraded = False
        self.degraded_ticks = 0
        self.held_moves = 0
        #: (zone, cell) -> {entity id: entity} moved in a skipped tick
        self.held: dict[tuple[Any, int], dict[int, Any]] = {}

    def observe(self, seconds: float) -> None:
        """Account for one tick that took ``seconds``."""
        self.load += SMOOTHING * (seconds / self.budget - self.load)
        if self.degraded:
            self.degraded_ticks += 1
            if self.load < LOW:
                self.degraded = False
                self.log.info("tick load {load:.0%}: busy cells back to full update rate",
                              load=self.load)
        elif self.load > HIGH:
            self.degraded = True
            self.log.warn("tick load {load:.0%}: cells with {busy}+ movers now update "
                          "every other tick", load=self.load, busy=self.busy)

    def movers(self, zone: Any, key: int, moved: list[Any] | None, tick: int) -> list[Any] | None:
        """The entities of cell ``key`` whose moves go out this tick, if any."""
        held = self.held.get((zone, key))
        if held is None and not moved:
            return None
        if (self.degraded and (tick + key) & 1
                and len(moved or ()) + len(held or ()) >= self.busy):
            if held is None:
                held = self.held[(zone, key)] = {}
            for e in moved or ():
                held[e.id] = e
            self.held_moves += len(moved or ())
            return None
        if held is None:
            return moved
        del self.held[(zone, key)]
        # Still here (not gone to another cell, zone or out of the world).
        merged = {eid: e for eid, e in held.items() if e.zone is zone and e.cell == key}
        for e in moved or ():
            merged[e.id] = e
        return list(merged.values()) or None


class TickStats:
    """Tick durations of the last ``size`` ticks, for p50/p99."""

    def __init__(self, size: int = 600) -> None:
        self.size = size
        self.samples: list[float] = []
        self.overruns = 0
        self.count = 0
        #: Called with each tick's duration (the metrics histogram).
        self.observers: list[Callable[[float], None]] = []

    def add(self, seconds: float, budget: float) -> None:
        self.count += 1
        for observe in self.observers:
            observe(seconds)
        if seconds > budget:
            self.overruns += 1
        s = self.samples
        s.append(seconds)
        if len(s) > self.size:
            del s[: len(s) - self.size]

    def percentile(self, p: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]
