"""
A connection's intake: the session's states, the read path from bytes to
frames charged to the request budget, and reading its socket only while
what it brings can be used.

:class:`ReadControl` is the part of :class:`~mmo.server.session.PlayerSession`
that reads: it decodes what arrives as far as the budget allows (a read
that brings exactly one Move or Ping in play skips the frame decoder), acts
on moves itself and hands every other frame to the session's ``_dispatch``.
It also starts and stops reading: a client over its request budget is not
read until the budget refills (one timer, woken when a quarter of the burst
is back); one whose output is backed up, or whose unread frames wait (a
login being checked), is not read either; a closing one is read and
dropped, so that the close never resets.
"""

from __future__ import annotations

from typing import Any

from ..wire import layout
from ..wire import messages as m
from ..wire.messages import ErrorCode, ProtocolError
from . import fastwrite
from .limits import COSTS

HELLO, LOGIN, AUTHENTICATING, PLAYING, CLOSED = range(5)

#: Unread bytes held for a connection (its decoder's buffer) past which it
#: is not read until they are used (while a login is checked, say).
READ_AHEAD = 64 * 1024

_COST = COSTS.get

_MOVE_TYPE = m.Move.TYPE
_MOVE_SIZE = layout.MOVE.size
_MOVE_UNPACK = layout.MOVE.unpack
#: Whole Move and Ping frames: their sizes and first bytes (length and
#: type), for the read that brings exactly one (most reads of a player).
_HEAD_SIZE = layout.HEADER.size
_MOVE_FRAME_SIZE = layout.MOVE_FRAME.size
_MOVE_FRAME_LENGTH = layout.frame_length(layout.MOVE_FRAME)
_MOVE_HEAD = layout.HEADER.pack(_MOVE_FRAME_LENGTH, _MOVE_TYPE)
_PING_TYPE = m.Ping.TYPE
_PING_UNPACK = layout.PING.unpack
_PING_FRAME_LENGTH = layout.HEADER.size + layout.PING.size - layout.LENGTH_SIZE
_PING_FRAME_SIZE = layout.LENGTH_SIZE + _PING_FRAME_LENGTH
_PING_HEAD = layout.HEADER.pack(_PING_FRAME_LENGTH, _PING_TYPE)


class ReadControl:
    """A session's read path, and starting and stopping its reads (mixed into the session)."""

    # Provided by the session.
    state: int
    node: Any
    budget: Any
    inbox: Any
    decoder: Any
    transport: Any
    bytes_in: int
    last_frame: float
    throttled_since: float | None
    closing_since: float | None
    paused_since: float | None
    _refill: Any
    _reading: bool

    @property
    def ended(self) -> bool:
        raise NotImplementedError

    def _rate_limited(self, now: float, what: str) -> None:
        raise NotImplementedError

    def _dispatch(self, type_: int, body: bytes) -> None:
        raise NotImplementedError

    def move(self, seq: int, x: float, y: float, now: float) -> None:
        raise NotImplementedError

    def on_ping(self, msg: m.Ping) -> None:
        raise NotImplementedError

    def error(self, code: int, text: str) -> None:
        raise NotImplementedError

    def refuse(self, code: int, text: str, abort: bool = False) -> None:
        raise NotImplementedError

    # -- the read path -------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        n = len(data)
        self.bytes_in += n
        self.node.bytes_in += n
        if self.closing_since is not None:
            return  # read and dropped: the close does not reset
        now = self.node.clock.seconds()
        self.last_frame = now
        decoder = self.decoder
        budget = self.budget
        try:
            if (self.state == PLAYING and not decoder._buf and not self.inbox
                    and self.paused_since is None):
                # Exactly one whole Move or Ping frame (nearly every read of
                # a player) and nothing held: what the general path below
                # does with it, without the frame decoder.
                if n == _MOVE_FRAME_SIZE and data.startswith(_MOVE_HEAD) \
                        and decoder.max_frame >= _MOVE_FRAME_LENGTH:
                    body = data[_HEAD_SIZE:]
                    if not budget.take(now, _COST(_MOVE_TYPE, 1.0)):
                        self._run([(_MOVE_TYPE, body)], now)
                        return
                    self.node.events += 1  # _move_body, inline
                    seq, x, y = _MOVE_UNPACK(body)
                    if x - x != 0.0 or y - y != 0.0:  # NaN or infinite
                        self.error(ErrorCode.INVALID, "coordinates must be finite numbers")
                    else:
                        self.move(seq, x, y, now)
                    if self.throttled_since is not None and budget.tokens >= budget.burst / 2:
                        self.throttled_since = None
                    return
                if n == _PING_FRAME_SIZE and data.startswith(_PING_HEAD) \
                        and decoder.max_frame >= _PING_FRAME_LENGTH:
                    body = data[_HEAD_SIZE:]
                    if not budget.take(now, _COST(_PING_TYPE, 1.0)):
                        self._run([(_PING_TYPE, body)], now)
                        return
                    self.node.events += 1  # _dispatch, for a Ping in play
                    self.on_ping(m.Ping(*_PING_UNPACK(body)))
                    if self.closing_since is not None or self.paused_since is not None:
                        self._set_reading()
                        return
                    if self.throttled_since is not None and budget.tokens >= budget.burst / 2:
                        self.throttled_since = None
                    return
            if self.inbox or self.state == AUTHENTICATING or self.paused_since is not None:
                decoder.feed_frames(data, 0)  # kept for later (checked then)
                self._set_reading()
                return
            while True:
                # One more frame than the budget held at its last use: a
                # frame over it is then decoded, held and throttled for.
                limit = int(budget.tokens) + 1
                frames = decoder.feed_frames(data, limit)
                cost = 0.0
                for type_, _ in frames:
                    cost += _COST(type_, 1.0)
                if not budget.take(now, cost):
                    self._run(frames, now)  # frame by frame; throttles
                    return
                i = 0
                for type_, body in frames:
                    i += 1
                    # Moves are most of what players send: decoded here,
                    # without a message object (the checks of Move.decode_body).
                    if type_ == _MOVE_TYPE and self.state == PLAYING and len(body) == _MOVE_SIZE:
                        self._move_body(body, now)
                        continue
                    self._dispatch(type_, body)
                    if self.state == AUTHENTICATING or self.closing_since is not None \
                            or self.paused_since is not None:
                        # Later frames wait (in order) for the login, the drain.
                        self.inbox.extend(frames[i:])
                        self._set_reading()
                        return
                if self.throttled_since is not None and budget.tokens >= budget.burst / 2:
                    self.throttled_since = None  # the client slowed down: the burst is over
                if len(frames) < limit:
                    if decoder.buffered >= READ_AHEAD:
                        self._set_reading()
                    return
                data = b""
        except ProtocolError as e:
            self.refuse(e.code, e.text)

    def _allowance(self, now: float) -> int:
        """How many frames may be decoded now (each costs at least 1)."""
        if self.inbox or self.state == AUTHENTICATING or self.paused_since is not None:
            return 0
        return int(self.budget.level(now)) + 1

    def _process(self, now: float) -> None:
        """Act on what is waiting (frames held, bytes buffered) as the budget allows."""
        if self.closing_since is not None or self.state == CLOSED:
            return
        if self.inbox and self.state != AUTHENTICATING and self.paused_since is None:
            frames = list(self.inbox)
            self.inbox.clear()
            self._run(frames, now)
            if self.inbox or self.ended:
                return
        try:
            frames = self.decoder.feed_frames(b"", self._allowance(now))
        except ProtocolError as e:
            self.refuse(e.code, e.text)
            return
        self._run(frames, now)

    def _run(self, frames: list[tuple[int, bytes]], now: float) -> None:
        """Frame by frame, each charged to the budget; what it cannot pay waits."""
        budget = self.budget
        for i, (type_, body) in enumerate(frames):
            if not budget.take(now, _COST(type_, 1.0)):
                self.inbox.extend(frames[i:])
                self._throttle(now)
                return
            if type_ == _MOVE_TYPE and self.state == PLAYING and len(body) == _MOVE_SIZE:
                self._move_body(body, now)
            else:
                self._dispatch(type_, body)
            if self.state == AUTHENTICATING or self.ended or self.paused_since is not None:
                self.inbox.extend(frames[i + 1:])
                break
        else:
            if self.throttled_since is not None and budget.tokens >= budget.burst / 2:
                self.throttled_since = None  # the client slowed down: the burst is over
        self._set_reading()

    def _move_body(self, body: bytes, now: float) -> None:
        """A Move frame's body, decoded without a message object (Move.decode_body's checks)."""
        self.node.events += 1
        seq, x, y = _MOVE_UNPACK(body)
        if x - x != 0.0 or y - y != 0.0:  # NaN or infinite
            self.error(ErrorCode.INVALID, "coordinates must be finite numbers")
        else:
            self.move(seq, x, y, now)

    # -- starting and stopping reads ----------------------------------------

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

