"""Counters of the cluster layer and the per-second rates of the metrics datagram."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .opener import Opener


class ClusterStats:
    """
    Datagrams and bytes in and out, and why any were dropped: the verdicts
    of ``opener`` (authentication, replays, malformed, looped) are read
    from it, not counted twice.  ``replays`` includes the datagrams refused
    by their clock stamp, also counted alone (``datagrams_untimely``).
    """

    COUNTERS = (
        "sent", "received", "dropped", "bytes_in", "bytes_out",
        "dropped_on_purpose", "send_errors", "joins", "leaves", "join_failures",
    )
    #: Counted by the opener.
    OPENED = ("auth_failures", "replays", "malformed", "looped", "filtered")

    sent = received = dropped = bytes_in = bytes_out = 0
    dropped_on_purpose = send_errors = joins = leaves = join_failures = 0

    def __init__(self, opener: Opener | None = None) -> None:
        for name in self.COUNTERS:
            setattr(self, name, 0)
        self.opener = opener if opener is not None else Opener(None)
        self._last: dict[str, float] | None = None

    @property
    def auth_failures(self) -> int:
        return self.opener.auth_failures

    @property
    def replays(self) -> int:
        return self.opener.replays

    @property
    def malformed(self) -> int:
        return self.opener.malformed

    @property
    def looped(self) -> int:
        return self.opener.looped

    @property
    def filtered(self) -> int:
        """Cell records received for cells this node does not follow."""
        return self.opener.filtered

    def counters(self) -> dict[str, Any]:
        c = {name: getattr(self, name) for name in self.COUNTERS + self.OPENED}
        return {
            "datagrams_sent": c.pop("sent"),
            "datagrams_received": c.pop("received"),
            "datagrams_dropped": c.pop("dropped"),
            "cluster_bytes_in": c.pop("bytes_in"),
            "cluster_bytes_out": c.pop("bytes_out"),
            **c,
            # One key for the three causes: the metrics datagram has little
            # room left, and the log line says which.
            "datagrams_untimely": self.opener.untimely,
        }

    def rates(self, snapshot: Mapping[str, Any], now: float) -> dict[str, float]:
        """
        Per-second rates since the last call, from the node's ``snapshot``
        (the seed's metric names kept: ``tick_hz`` is the measured rate).
        """
        current = {
            "events": snapshot["events"], "ticks": snapshot["tick"],
            "bytes_in": snapshot["bytes_in"], "bytes_out": snapshot["bytes_out"],
            "cluster_in": self.bytes_in, "cluster_out": self.bytes_out,
            "sent": self.sent, "received": self.received, "time": now,
        }
        last, self._last = self._last, current
        if last is None or now <= last["time"]:
            return {"events_per_sec": 0.0, "tick_hz": float(snapshot["tick_rate"]),
                    "bytes_in_per_sec": 0.0, "bytes_out_per_sec": 0.0,
                    "cluster_bytes_in_per_sec": 0.0, "cluster_bytes_out_per_sec": 0.0,
                    "datagrams_sent_per_sec": 0.0, "datagrams_received_per_sec": 0.0}
        dt = now - last["time"]

        def rate(name: str) -> float:
            return round((current[name] - last[name]) / dt, 2)

        return {
            "events_per_sec": rate("events"),
            "tick_hz": rate("ticks"),
            "bytes_in_per_sec": rate("bytes_in"),
            "bytes_out_per_sec": rate("bytes_out"),
            "cluster_bytes_in_per_sec": rate("cluster_in"),
            "cluster_bytes_out_per_sec": rate("cluster_out"),
            "datagrams_sent_per_sec": rate("sent"),
            "datagrams_received_per_sec": rate("received"),
        }
