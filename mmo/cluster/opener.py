"""
Opening a cluster datagram: the one place that decides whether bytes off the
network are a message of this cluster, authentic, well formed and new.

Both readers of the cluster use it: a node (:mod:`mmo.cluster.service`) and
the monitor (:mod:`mmo.monitor.model`).  Pure Python and no I/O; the time
comes from the clock it is given (the reactor's ``seconds``):

    opener = Opener(key, node_id="n1", clock=reactor.seconds)
    opener.start()            # from now on, older recordings are refused
    opened = opener.open(data, source)
    if opened.ok:
        handle(opened.header, opened.message)

Every datagram gets one verdict, and :attr:`Opener.counts` counts them.  The
checks run cheapest first, and the MAC before anything that keeps state, so
a forged datagram never reaches the replay window.

The replay window is in memory: a reader that starts knows nothing of what
was sent before.  So every datagram carries its sender's clock (inside the
MAC), and a reader refuses one stamped before :meth:`Opener.start` was
called (:data:`BEFORE_START`) or more than :data:`SKEW` seconds from its own
clock either way (:data:`TOO_OLD`, :data:`TOO_NEW`): nothing recorded
before a node started is accepted by it, and a recording is worth nothing
anywhere after :data:`SKEW` seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from hmac import compare_digest
from typing import Any, NamedTuple

from . import codec
from .auth import (
    ACCEPT,
    MAC_SIZE,
    MAX_SENDERS,
    REPLAY,
    RESTARTED,
    STALE_EPOCH,
    WINDOW,
    ReplayWindow,
    keyed,
)
from .codec import Header

_HEAD_SIZE = codec.HEAD.size
_unpack_head = codec.HEAD.unpack_from
_MAGIC = codec.MAGIC
_VERSION = codec.VERSION
_TYPES = codec.TYPES
_MAX_DATAGRAM = codec.MAX_DATAGRAM
_CELL_DELTA = codec.CELL_DELTA
_CELL_KEYFRAME = codec.CELL_KEYFRAME
_BYE = codec.BYE
_read_cells = codec.read_cells
_U64 = 0xFFFFFFFFFFFFFFFF
#: Makes a tuple of a NamedTuple class from its fields, without the Python
#: frame of the class's ``__new__`` (a Header and an Opened per datagram).
_new = tuple.__new__

#: This node's own datagram, looped back to it (multicast loopback).
LOOPED = "looped"
#: No key yet (the monitor waiting for the key file): nothing can be checked.
NO_KEY = "no-key"
#: Not one of ours, or the MAC is wrong: another key, a forgery, damage.
AUTH_FAILED = "auth-failed"
#: Authentic but unreadable (a bug or another version of the sender).
MALFORMED = "malformed"
#: Authentic, stamped before this reader started: recorded earlier and
#: replayed (or the sender's clock is behind this host's).
BEFORE_START = "before-start"
#: Authentic, stamped more than :data:`SKEW` seconds ago: an old recording,
#: or a sender whose clock is behind this host's by more than that.
TOO_OLD = "too-old"
#: Authentic, stamped more than :data:`SKEW` seconds ahead: a sender whose
#: clock is ahead of this host's by more than that.
TOO_NEW = "too-new"

#: Seconds a datagram's stamp may be off this host's clock, either way: the
#: clock skew between hosts that the cluster tolerates.
SKEW = 30.0

__all__ = [
    "ACCEPT", "AUTH_FAILED", "BEFORE_START", "LOOPED", "MALFORMED", "NO_KEY", "REPLAY",
    "REPORTED", "RESTARTED", "SKEW", "STALE_EPOCH", "TOO_NEW", "TOO_OLD", "Opened", "Opener",
]

#: The verdicts of a datagram to be read: new, or new from a restarted sender.
OPENED = frozenset((ACCEPT, RESTARTED))
#: Verdicts refused by time: the sender's clock against this reader's.
UNTIMELY = frozenset((BEFORE_START, TOO_OLD, TOO_NEW))
#: Verdicts worth a log line (at most one per kind and burst: :meth:`Opener.to_report`).
REPORTED = (AUTH_FAILED, MALFORMED, BEFORE_START, TOO_OLD, TOO_NEW)


class Opened(NamedTuple):
    """
    The verdict on one datagram and, when it is to be read, what it holds
    (a tuple: one is made per datagram).
    """

    verdict: str
    #: The header, once the MAC is known to be right (also for a replay).
    header: codec.Header | None = None
    #: The decoded body (:func:`mmo.cluster.codec.decode_body`) when :attr:`ok`.
    message: Any = None
    #: Where it came from, as the transport said.
    source: Any = None
    #: Why it was refused (malformed, out of time), for a log line.
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
    :data:`NO_KEY`); set the attribute when it is.  ``clock`` gives seconds
    since 1970 (the senders stamp theirs); until :meth:`start` is called no
    datagram is refused for being older than the reader, only for being
    more than ``skew`` seconds off its clock.

    A cell datagram's message is the list of its records' updates; with
    ``wanted`` (``(zone, cell) -> bool``), only of the cells it wants, the
    others skipped unread and counted in :attr:`filtered`.
    """

    def __init__(self, key: bytes | None, node_id: str | None = None,
                 window: int = WINDOW, clock: Callable[[], float] = time.time,
                 skew: float = SKEW,
                 wanted: Callable[[tuple[str, int]], bool] | None = None) -> None:
        self.key = key
        self.wanted = wanted
        #: Records of accepted cell datagrams skipped: not ``wanted``.
        self.filtered = 0
        self.node_id = node_id
        self.clock = clock
        self.skew = skew
        #: When this reader started, in the header's microseconds (None: not said).
        self.started: int | None = None
        #: Each sender's epoch and recent sequence numbers.
        self.replay = ReplayWindow(window)
        #: Datagrams opened, by verdict.
        self.counts: Counter[str] = Counter()
        #: Per verdict, the count and time of its last report.
        self._reported: dict[str, tuple[int, float]] = {}
        #: Sender ids as sent, decoded (each once, and one str object per
        #: sender for the tables keyed by it).
        self._senders: dict[bytes, str] = {}

    def start(self, clock: Callable[[], float] | None = None) -> None:
        """
        The reader starts now (on ``clock``, if given, from now on): every
        datagram stamped earlier is :data:`BEFORE_START`, whoever sent it.
        """
        if clock is not None:
            self.clock = clock
        self.started = codec.micros(self.clock())

    def open(self, data: bytes, source: Any = None) -> Opened:
        """The verdict on ``data`` (from ``source``); never raises for bad bytes."""
        # The checks of codec.peek_sender, auth.verify and codec.read_header
        # inline, each once: a node opens tens of these a tick.  Anything
        # unusual takes the plain functions, for their verdicts and errors.
        size = len(data)
        sender = None
        if size >= _HEAD_SIZE and data[:2] == _MAGIC:
            at = _HEAD_SIZE + data[_HEAD_SIZE - 1]
            raw = data[_HEAD_SIZE:at]
            sender = self._senders.get(raw)
            if sender is None:
                sender = codec.peek_sender(data)
                if sender is not None and at <= size:
                    if len(self._senders) >= MAX_SENDERS:
                        self._senders.clear()
                    self._senders[raw] = sender
            if sender is not None and sender == self.node_id:
                return self._refuse(LOOPED, source)
        key = self.key
        if key is None:
            return self._refuse(NO_KEY, source)
        if size > _MAX_DATAGRAM:
            # Never sent by a node: not worth a MAC.
            return self._refuse(AUTH_FAILED, source, why=f"{size} bytes")
        if sender is None:
            return self._refuse(AUTH_FAILED, source)
        signed = data[:-MAC_SIZE]
        mac = keyed(key).copy()
        mac.update(signed)
        if not compare_digest(mac.digest()[:MAC_SIZE], data[-MAC_SIZE:]):
            return self._refuse(AUTH_FAILED, source)
        _magic, version, kind, epoch, seq, sent, _n = _unpack_head(data)
        if version == _VERSION and kind in _TYPES and _n and at <= size - MAC_SIZE:
            header = _new(Header, (kind, epoch, seq, sender, at, sent))
        else:
            try:
                header = codec.read_header(signed)
            except codec.DatagramError as e:
                return self._refuse(MALFORMED, source, why=str(e))
        now = int(self.clock() * 1_000_000)
        if not 0 <= now <= _U64:  # as codec.micros
            now = 0 if now < 0 else _U64
        off = (sent - now) / 1e6
        started = self.started
        if off > self.skew or off < -self.skew or (started is not None and sent < started):
            verdict, why = self._untimely(header, now)
            return self._refuse(verdict, source, header, why)
        skipped = 0
        try:
            if kind == _CELL_DELTA or kind == _CELL_KEYFRAME:
                message, skipped = _read_cells(kind, signed, at, self.wanted)
            else:
                message = codec.decode_body(header, signed)
        except codec.DatagramError as e:
            return self._refuse(MALFORMED, source, header, str(e))
        verdict = self.replay.check(sender, epoch, seq)
        self.counts[verdict] += 1
        if verdict not in OPENED:
            return _new(Opened, (verdict, header, None, source, ""))
        self.filtered += skipped
        if kind == _BYE:
            self.replay.close(sender)
        return _new(Opened, (verdict, header, message, source, ""))

    def _untimely(self, header: codec.Header, now: int) -> tuple[str, str]:
        """The verdict and why ``header``'s stamp is refused at ``now`` (header micros)."""
        off = (header.sent - now) / 1e6
        if off > self.skew:
            return TOO_NEW, f"stamped {off:.1f}s ahead of this host's clock"
        if off < -self.skew:
            return TOO_OLD, f"stamped {-off:.1f}s ago"
        assert self.started is not None
        return BEFORE_START, (f"stamped {(self.started - header.sent) / 1e6:.3f}s "
                              "before this reader started")

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
        """
        Authentic datagrams refused by the replay defence: already seen
        (:data:`REPLAY`), of an older run (:data:`STALE_EPOCH`), or stamped
        out of time (:attr:`untimely`).
        """
        return self.counts[REPLAY] + self.counts[STALE_EPOCH] + self.untimely

    @property
    def stale_epochs(self) -> int:
        """The part of :attr:`replays` from an earlier run of their sender."""
        return self.counts[STALE_EPOCH]

    @property
    def untimely(self) -> int:
        """The part of :attr:`replays` refused by their stamp (before start, too old, too new)."""
        return sum(self.counts[v] for v in UNTIMELY)

    @property
    def before_start(self) -> int:
        return self.counts[BEFORE_START]

    @property
    def too_old(self) -> int:
        return self.counts[TOO_OLD]

    @property
    def too_new(self) -> int:
        return self.counts[TOO_NEW]

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
