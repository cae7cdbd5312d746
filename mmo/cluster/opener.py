"""
Opening a cluster datagram: the one place that decides whether bytes off the
network are a message of this cluster, authentic, well formed and new.

Both readers of the cluster use it: a node (:mod:`mmo.cluster.service`) and
the monitor (:mod:`mmo.monitor.model`).  Pure Python, no I/O and no clock:

    opener = Opener(key, node_id="n1")
    opened = opener.open(data, source)
    if opened.ok:
        handle(opened.header, opened.message)

Every datagram gets one verdict, and :attr:`Opener.counts` counts them.  The
checks run cheapest first, and the MAC before anything that keeps state, so
a forged datagram never reaches the replay window.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from . import codec
from .auth import ACCEPT, REPLAY, RESTARTED, STALE_EPOCH, WINDOW, ReplayWindow, verify

#: This node's own datagram, looped back to it (multicast loopback).
LOOPED = "looped"
#: No key yet (the monitor waiting for the key file): nothing can be checked.
NO_KEY = "no-key"
#: Not one of ours, or the MAC is wrong: another key, a forgery, damage.
AUTH_FAILED = "auth-failed"
#: Authentic but unreadable (a bug or another version of the sender).
MALFORMED = "malformed"

__all__ = [
    "ACCEPT", "AUTH_FAILED", "LOOPED", "MALFORMED", "NO_KEY", "REPLAY", "REPORTED",
    "RESTARTED", "STALE_EPOCH", "Opened", "Opener",
]

#: The verdicts of a datagram to be read: new, or new from a restarted sender.
OPENED = frozenset((ACCEPT, RESTARTED))
#: Verdicts worth a log line (at most one per kind and burst: :meth:`Opener.to_report`).
REPORTED = (AUTH_FAILED, MALFORMED)


@dataclass(frozen=True)
class Opened:
    """The verdict on one datagram and, when it is to be read, what it holds."""

    verdict: str
    #: The header, once the MAC is known to be right (also for a replay).
    header: codec.Header | None = None
    #: The decoded body (:func:`mmo.cluster.codec.decode_body`) when :attr:`ok`.
    message: Any = None
    #: Where it came from, as the transport said.
    source: Any = None
    #: Why it was refused, for a log line.
    why: str = ""

    @property
    def ok(self) -> bool:
        """True for a datagram to act on (:data:`ACCEPT` or :data:`RESTARTED`)."""
        return self.verdict in OPENED

    @property
    def restarted(self) -> bool:
        """The sender has a new epoch: it restarted since it was last heard."""
        return self.verdict == RESTARTED


class Opener:
    """
    Checks and decodes datagrams sealed with ``key`` (:class:`codec.Sealer`).

    ``node_id``, when given, is this node's own id: its datagrams, looped
    back by the network, are :data:`LOOPED` before anything is checked.
    ``key`` may be ``None`` until it is known (every datagram is then
    :data:`NO_KEY`); set the attribute when it is.
    """

    def __init__(self, key: bytes | None, node_id: str | None = None,
                 window: int = WINDOW) -> None:
        self.key = key
        self.node_id = node_id
        #: Each sender's epoch and recent sequence numbers.
        self.replay = ReplayWindow(window)
        #: Datagrams opened, by verdict.
        self.counts: Counter[str] = Counter()
        #: Per verdict, the count and time of its last report.
        self._reported: dict[str, tuple[int, float]] = {}

    def open(self, data: bytes, source: Any = None) -> Opened:
        """The verdict on ``data`` (from ``source``); never raises for bad bytes."""
        sender = codec.peek_sender(data)
        if sender is not None and sender == self.node_id:
            return self._refuse(LOOPED, source)
        if self.key is None:
            return self._refuse(NO_KEY, source)
        if len(data) > codec.MAX_DATAGRAM:
            # Never sent by a node: not worth a MAC.
            return self._refuse(AUTH_FAILED, source, why=f"{len(data)} bytes")
        signed = verify(self.key, data) if sender is not None else None
        if signed is None:
            return self._refuse(AUTH_FAILED, source)
        try:
            header = codec.read_header(signed)
        except codec.DatagramError as e:
            return self._refuse(MALFORMED, source, why=str(e))
        try:
            message = codec.decode_body(header, signed)
        except codec.DatagramError as e:
            return self._refuse(MALFORMED, source, header, str(e))
        verdict = self.replay.check(header.sender, header.epoch, header.seq)
        self.counts[verdict] += 1
        if verdict not in OPENED:
            return Opened(verdict, header, None, source)
        return Opened(verdict, header, message, source)

    def _refuse(self, verdict: str, source: Any, header: codec.Header | None = None,
                why: str = "") -> Opened:
        self.counts[verdict] += 1
        return Opened(verdict, header, None, source, why)

    # -- counters --------------------------------------------------------------------

    @property
    def accepted(self) -> int:
        """Datagrams to act on (restarts included)."""
        return self.counts[ACCEPT] + self.counts[RESTARTED]

    @property
    def restarts(self) -> int:
        """Datagrams that showed a sender had restarted."""
        return self.counts[RESTARTED]

    @property
    def looped(self) -> int:
        return self.counts[LOOPED]

    @property
    def no_key(self) -> int:
        return self.counts[NO_KEY]

    @property
    def auth_failures(self) -> int:
        return self.counts[AUTH_FAILED]

    @property
    def malformed(self) -> int:
        return self.counts[MALFORMED]

    @property
    def replays(self) -> int:
        """Authentic datagrams already seen: this run's (:data:`REPLAY`) or an older run's."""
        return self.counts[REPLAY] + self.counts[STALE_EPOCH]

    @property
    def stale_epochs(self) -> int:
        """The part of :attr:`replays` from an earlier run of their sender."""
        return self.counts[STALE_EPOCH]

    def to_report(self, verdict: str, now: float, every: float = 10.0) -> int:
        """
        For logging refusals of one kind (``verdict``) at most once every
        ``every`` seconds, a line per burst: the refusals since the last
        report if one is due now (the first is due at once), else 0.
        """
        count = self.counts[verdict]
        reported, at = self._reported.get(verdict, (0, float("-inf")))
        new = count - reported
        if new <= 0 or now - at < every:
            return 0
        self._reported[verdict] = (count, now)
        return new

    def auth_failures_to_report(self, now: float, every: float = 10.0) -> int:
        """:meth:`to_report` for authentication failures."""
        return self.to_report(AUTH_FAILED, now, every)
