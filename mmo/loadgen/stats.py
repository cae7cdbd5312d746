"""
What the bots measure: counters and log-bucketed histograms.

A :class:`Histogram` keeps counts in buckets 1 % wide (relative), so that
memory stays bounded however long the run, percentiles are within 1 % of
the truth, and the histograms of several worker processes merge exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)


class Histogram:
    """Counts of positive values in buckets ``[1.01**k, 1.01**(k+1))``."""

    __slots__ = ("buckets", "count", "total", "low", "high", "zeros")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        #: Values of 0 or less (an update age a clock step made negative).
        self.zeros = 0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value
        if value > 0.0:
            self.buckets[math.floor(math.log(value) / _LOG_GROWTH)] += 1
        else:
            self.zeros += 1

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.zeros += other.zeros

    def percentile(self, p: float) -> float:
        """The value under which ``p`` % of the values fall (0 when empty)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(p / 100.0 * self.count))
        if rank <= self.zeros:
            return self.low
        seen = self.zeros
        for k in sorted(self.buckets):
            seen += self.buckets[k]
            if seen >= rank:
                # The bucket's middle, kept within what was really seen.
                mid = _GROWTH ** (k + 0.5)
                return min(max(mid, self.low), self.high)
        return self.high

    def summary(self, scale: float = 1.0, digits: int = 3) -> dict[str, float]:
        """``count, min, mean, p50, p90, p99, max``, values times ``scale``."""
        if not self.count:
            return {"count": 0, "min": 0.0, "mean": 0.0, "p50": 0.0, "p90": 0.0,
                    "p99": 0.0, "max": 0.0}
        r = lambda v: round(v * scale, digits)  # noqa: E731
        return {
            "count": self.count,
            "min": r(self.low),
            "mean": r(self.total / self.count),
            "p50": r(self.percentile(50)),
            "p90": r(self.percentile(90)),
            "p99": r(self.percentile(99)),
            "max": r(self.high),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count, "total": self.total, "zeros": self.zeros,
            "low": self.low if self.count else None,
            "high": self.high if self.count else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Histogram:
        h = cls()
        h.buckets = Counter({int(k): int(v) for k, v in d["buckets"].items()})
        h.count = int(d["count"])
        h.total = float(d["total"])
        h.zeros = int(d.get("zeros", 0))
        if h.count:
            h.low = float(d["low"])
            h.high = float(d["high"])
        return h


#: Histograms of the run, by name (seconds unless said otherwise).
#: ``longest_gap`` and ``silent_share`` have one value per bot that played:
#: its longest time without an update, and the share of its whole seconds
#: of play in which it got none.
HISTOGRAMS = (
    "connect_time", "login_time", "rtt", "update_age",
    "updates_per_sec", "bytes_in_per_sec", "entities_seen",
    "longest_gap", "silent_share", "back_time",
)
#: Counters of the run, by name.
COUNTERS = (
    "bots_started", "connected", "logged_in", "moves_sent", "pings_sent", "pongs",
    "chats_sent", "chats_received", "ticks", "entity_updates", "frames_in",
    "frames_out", "bytes_in", "bytes_out", "played_seconds", "silent_seconds",
    "silent_bots", "redirects", "handoffs", "comebacks", "comebacks_back",
    "comebacks_failed",
)


class Stats:
    """Everything a run (or a worker of one) counted and measured."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self.histograms = {name: Histogram() for name in HISTOGRAMS}
        self.errors: Counter[str] = Counter()
        self.corrections: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        #: The node's own words for a failure that was its refusal (the
        #: first bot's), by reason: ``too_many_connections`` -> "no more
        #: than 100 connections from one address".
        self.refusal_texts: dict[str, str] = {}

    def merge(self, other: Stats) -> None:
        self.counters.update(other.counters)
        for name, h in other.histograms.items():
            self.histograms.setdefault(name, Histogram()).merge(h)
        self.errors.update(other.errors)
        self.corrections.update(other.corrections)
        self.disconnects.update(other.disconnects)
        self.failures.update(other.failures)
        for reason, text in other.refusal_texts.items():
            self.refusal_texts.setdefault(reason, text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counters": dict(self.counters),
            "histograms": {k: h.to_dict() for k, h in self.histograms.items()},
            "errors": dict(self.errors),
            "corrections": dict(self.corrections),
            "disconnects": dict(self.disconnects),
            "failures": dict(self.failures),
            "refusal_texts": dict(self.refusal_texts),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stats:
        s = cls()
        s.counters.update(d.get("counters", {}))
        for k, h in d.get("histograms", {}).items():
            s.histograms[k] = Histogram.from_dict(h)
        for name in ("errors", "corrections", "disconnects", "failures"):
            getattr(s, name).update(d.get(name, {}))
        s.refusal_texts.update(d.get("refusal_texts", {}))
        return s


class Interval:
    """What happened since the last progress line (reset every second)."""

    __slots__ = ("frames_in", "frames_out", "bytes_in", "bytes_out", "rtt",
                 "update_age", "errors", "disconnects")

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.rtt = Histogram()
        self.update_age = Histogram()
        self.errors = 0
        self.disconnects = 0

    def merge(self, other: Interval) -> None:
        self.frames_in += other.frames_in
        self.frames_out += other.frames_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.rtt.merge(other.rtt)
        self.update_age.merge(other.update_age)
        self.errors += other.errors
        self.disconnects += other.disconnects

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in, "frames_out": self.frames_out,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "rtt": self.rtt.to_dict(), "update_age": self.update_age.to_dict(),
            "errors": self.errors, "disconnects": self.disconnects,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Interval:
        i = cls()
        for name in ("frames_in", "frames_out", "bytes_in", "bytes_out", "errors",
                     "disconnects"):
            setattr(i, name, int(d.get(name, 0)))
        i.rtt = Histogram.from_dict(d["rtt"])
        i.update_age = Histogram.from_dict(d["update_age"])
        return i
