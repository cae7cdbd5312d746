"""
One simulated player: it logs in, random-walks, pings and chats, and
measures what it sees.

A bot has no timer of its own: the :class:`~mmo.loadgen.fleet.Fleet` calls
:meth:`Bot.act` from the one loop that drives every bot.  What arrives is
scanned in place (:meth:`Bot.received`, straight from the buffer its
:class:`~mmo.loadgen.link.TCPLink` reads into): frames are not cut out or
decoded, only what is measured is read at its offset (a Tick's time, a
Pong's, the item count of Moves, Enter and Leave); the rare frames (the
handshake's, errors, notices) are decoded whole.  Bytes are copied only
when a frame is cut by the end of a read.  This runs for every bot ten
times a second, which is why it is written with locals and few calls.

Stalls are measured from the read path too, at no cost per frame: a read
that brought a ``Tick`` (the first frame of every update the node sends)
notes the time since the previous update; only a gap of a second or more
adds its whole silent seconds (:func:`silent_seconds`).
"""

from __future__ import annotations

import math
import random
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime

from ..client.base import PLAYING, ClientConnection, error_name
from ..wire import layout
from ..wire import messages as m
from ..wire.fast import move_frame
from ..wire.messages import ProtocolError
from .fastpath import LEAST as UPDATE_LEAST
from .fastpath import scan as _scan_update
from .stats import Interval, Stats


class FleetView(Protocol):
    """What a bot reads and calls of its :class:`~mmo.loadgen.fleet.Fleet`."""

    zone: str
    spread: str
    speed: float
    move_period: float
    ping_interval: float
    chat_rate: float
    stats: Stats
    interval: Interval

    def bot_connected(self, bot: Bot, seconds: float) -> None: ...
    def bot_logged_in(self, bot: Bot, seconds: float) -> None: ...
    def bot_came_back(self, bot: Bot, seconds: float) -> None: ...
    def bot_ended(self, bot: Bot, reason: str) -> None: ...
    def update_age(self, seconds: float) -> None: ...
    def rtt(self, seconds: float) -> None: ...
    def error(self, name: str) -> None: ...

_TICK_T = m.Tick.TYPE
_PONG_T = m.Pong.TYPE
_CHAT_T = m.ChatMessage.TYPE
_CORRECTION_T = m.Correction.TYPE
_HEADER_SIZE = layout.HEADER.size
_LENGTH_SIZE = layout.LENGTH_SIZE
# Only what is measured is read, straight from the buffer at a frame's offset.
_read_header = layout.HEADER.unpack_from
_read_length = layout.LENGTH.unpack_from
_read_tick = layout.TICK.unpack_from
_read_pong = layout.PONG.unpack_from
_read_correction = layout.CORRECTION.unpack_from
_REASONS = {r.value: r.name.lower() for r in m.CorrectionReason}
_MOVE_SIZE = layout.MOVE_FRAME.size
_TURN = 1.4
_cos = math.cos
_sin = math.sin
#: The least length field of each frame a server may send (the type byte and
#: what the bot reads of the body); a type not here is not the server's.
_LEAST_LENGTH = {t.TYPE: 1 for t in m.SERVER_MESSAGES} | UPDATE_LEAST | {
    _PONG_T: 1 + layout.PONG.size,
    _CORRECTION_T: 1 + layout.CORRECTION.size,
}

#: What :meth:`Bot.received` reads: a read's bytes, or the bot's own copy.
Buffer = bytes | bytearray | memoryview


def _bad_frame(type_: int, length: int, max_frame: int) -> ProtocolError:
    """Why a frame's header is refused (the same words as the frame decoder's)."""
    if length < 1:
        return ProtocolError(m.ErrorCode.BAD_FRAME, "frame length is zero")
    if length > max_frame:
        return ProtocolError(m.ErrorCode.FRAME_TOO_LARGE,
                             f"frame of {length} bytes exceeds the limit of {max_frame}")
    if type_ not in _LEAST_LENGTH:
        return ProtocolError(m.ErrorCode.BAD_FRAME, f"unknown message type 0x{type_:02x}")
    return ProtocolError(m.ErrorCode.BAD_FRAME, "frame body is too short")


def silent_seconds(last: float, now: float, origin: float) -> int:
    """
    Whole seconds ``[origin + k, origin + k + 1)`` with no update, between
    updates at ``last`` and ``now`` (none in between): those after the
    second of ``last`` and before the second of ``now``.
    """
    return max(0, math.floor(now - origin) - math.floor(last - origin) - 1)


#: Things a bot says (the text does not matter, its size a little).
LINES = ("hello", "anyone here?", "heading north", "nice weather in this zone",
         "lag check", "gg", "follow me", "brb")


class Bot(ClientConnection):
    """A simulated player; its numbers go to its :class:`Fleet`."""

    client_string = "mmo-loadgen"

    # What the per-tick path reads and writes, as slots: a bot has more
    # attributes than an instance dict shares keys for, and a slot is read
    # without a dict lookup (the rest stay in the instance dict).
    __slots__ = (
        "partial", "protocol_error", "bytes_in", "bytes_out", "clock", "visible", "max_frame",
        "fleet", "frames_in", "frames_out", "entity_updates", "last_type", "ticks",
        "playing_since", "last_update", "longest_gap", "silent_seconds", "state", "closing",
        "next_move", "next_ping", "next_chat", "next_due", "changing_zone", "last_step", "x",
        "y", "zone_width", "zone_height", "waypoint", "heading", "rng", "seq", "moves_sent",
        "transport", "pongs", "chats_received", "corrections",
    )

    def __init__(self, index: int, name: str, password: str, fleet: FleetView,
                 clock: IReactorTime, rng: random.Random) -> None:
        super().__init__(name, password, clock)
        self.transport = None
        self.max_frame = self.decoder.max_frame
        #: The start of a frame that has not all arrived yet.
        self.partial = bytearray()
        self.index = index
        self.fleet = fleet
        self.rng = rng
        self.started_at = 0.0
        self.connect_reason: str | None = None
        self.logged_in = False
        #: Sent ChangeZone and waiting for the EnterWorld of that zone.
        self.changing_zone = False
        self.visible = 0
        self.ticks = 0
        self.entity_updates = 0
        self.chats_received = 0
        self.moves_sent = 0
        self.pings_sent = 0
        self.pongs = 0
        self.chats_sent = 0
        self.corrections = 0
        #: Since the first EnterWorld: the origin of the bot's whole seconds.
        self.playing_since: float | None = None
        #: When the last update (a read with a Tick, or EnterWorld) arrived.
        self.last_update = 0.0
        self.longest_gap = 0.0
        self.silent_seconds = 0
        self.ended_at: float | None = None
        self.heading = rng.uniform(0, 2 * math.pi)
        self.waypoint: tuple[float, float] | None = None
        self.last_step = 0.0
        self.next_move = math.inf
        self.next_ping = math.inf
        self.next_chat = math.inf
        self.next_due = math.inf
        #: Since when the bot is coming back (a Redirect, a drop), else None.
        self.coming_back: float | None = None
        self.back_deadline = 0.0
        #: Connections after the first, for taking turns between the nodes.
        self.tries = 0
        #: The node this bot last connected to: (host, port).
        self.at: tuple[str, int] | None = None

    # -- connection -------------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        self.fleet.bot_connected(self, self.connected_at - self.started_at)  # type: ignore[operator]

    def connect_failed(self, reason: str) -> None:
        self.connect_reason = reason
        self.state = "closed"
        self.reason = reason
        self.ended_at = self.clock.seconds()
        self.fleet.bot_ended(self, reason)

    def closed(self, reason: str) -> None:
        self.ended_at = self.clock.seconds()
        self.fleet.bot_ended(self, reason)

    # -- what arrives -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self.received(data, len(data))

    def received(self, data: Buffer, size: int) -> None:
        """
        The first ``size`` bytes of ``data`` arrived (a TCP link reads into a
        buffer it reuses: nothing of it is kept past this call but a frame
        cut at the end, copied until the rest of it arrives).
        """
        if self.protocol_error is not None:
            return  # given up on this connection: what else comes is ignored
        self.bytes_in += size
        partial = self.partial
        if partial:
            partial += data[:size]
            data, size = partial, len(partial)
        try:
            used = self._scan(data, size)
        except ProtocolError as e:
            self.protocol_error = e
            self.fleet.stats.errors["protocol_error"] += 1
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if partial:
            del partial[:used]
        elif used < size:
            partial += data[used:size]

    def _scan(self, buf: Buffer, end: int) -> int:
        """
        Count and measure the whole frames of ``buf[:end]``; return the
        bytes they take.  Frames are read in place, from their header: an
        update's frames by :func:`~mmo.loadgen.fastpath.scan` (compiled
        where it could be built), the rest here, one at a time: a Pong's
        time, a Correction, a chat line; rare frames are decoded whole.
        """
        now = self.clock.seconds()
        pos = frames = ticks = updates = 0
        visible = self.visible
        max_frame = self.max_frame
        last = -1
        while True:
            pos, n, u, visible, type_, tick_time = _scan_update(buf, pos, end, max_frame,
                                                                visible)
            if n:
                frames += n
                updates += u
                last = type_
            if tick_time is not None:
                ticks += 1
                self.fleet.update_age(now - tick_time)
            if end - pos < _HEADER_SIZE:
                if end - pos >= _LENGTH_SIZE:
                    # A bad length is refused before its frame's type arrives.
                    length = _read_length(buf, pos)[0]
                    if length < 1 or length > max_frame:
                        raise _bad_frame(-1, length, max_frame)
                break
            # The frame the update's scan left: another Tick, another kind,
            # one cut by the end of the read, or one to refuse.
            length, type_ = _read_header(buf, pos)
            least = _LEAST_LENGTH.get(type_)
            if least is None or length < least or length > max_frame:
                raise _bad_frame(type_, length, max_frame)
            stop = pos + _LENGTH_SIZE + length
            if stop > end:
                break
            body = pos + _HEADER_SIZE
            if type_ == _TICK_T:
                ticks += 1
                self.fleet.update_age(now - _read_tick(buf, body)[1])
            elif type_ == _PONG_T:
                self.pongs += 1
                self.fleet.rtt(now - _read_pong(buf, body)[1])
            elif type_ == _CHAT_T:
                self.chats_received += 1
            elif type_ == _CORRECTION_T:
                _, x, y, reason = _read_correction(buf, body)
                self.x, self.y = x, y
                self.corrections += 1
                self.fleet.stats.corrections[_REASONS.get(reason, str(reason))] += 1
            else:
                # The handshake's frames and other rare ones, decoded whole;
                # they may change what the bot knows (EnterWorld resets it).
                self.visible = visible
                self.frame_received(type_, bytes(buf[body:stop]), now)
                visible = self.visible
                if self.protocol_error is not None:
                    break
            frames += 1
            last = type_
            pos = stop
        self.visible = visible
        if frames:
            self.frames_in += frames
            self.entity_updates += updates
            self.last_type = last
        if ticks:
            self.ticks += ticks
            if self.playing_since is not None:
                # An update: once per read, whatever the number of frames.
                gap = now - self.last_update
                if gap > self.longest_gap:
                    self.longest_gap = gap
                if gap >= 1.0:
                    self.silent_seconds += silent_seconds(self.last_update, now,
                                                          self.playing_since)
                self.last_update = now
        return pos

    def prepare_comeback(self) -> None:
        """Be ready to connect again, keeping what was counted and the token."""
        self.state = "connecting"
        self.reason = None
        self.closing = False
        self.shutdown_notice = False
        self.protocol_error = None
        self.last_error = None
        self.redirect = None
        self.connect_reason = None
        self.ended_at = None
        self.partial.clear()
        self.transport = None
        self.tries += 1

    def entered_world(self, msg: m.EnterWorld, now: float) -> None:
        if self.coming_back is not None:
            self.fleet.bot_came_back(self, now - self.coming_back)
            self.coming_back = None
        super().entered_world(msg, now)
        self.visible = 0
        self.last_step = now
        wanted = self.fleet.zone
        if not self.logged_in:
            self.logged_in = True
            self.playing_since = self.last_update = now
            self.fleet.bot_logged_in(self, now - (self.connected_at or now))
            if wanted and msg.zone != wanted:
                self.changing_zone = True
                self.change_zone(wanted)
        elif msg.zone == wanted:
            self.changing_zone = False
        if self.fleet.spread == "uniform":
            self.waypoint = (self.rng.uniform(0, self.zone_width),
                             self.rng.uniform(0, self.zone_height))
        self.schedule(now)

    def error_received(self, code: int, text: str) -> None:
        super().error_received(code, text)
        self.fleet.error(error_name(code))
        if code == m.ErrorCode.UNKNOWN_ZONE:
            self.changing_zone = False

    # -- what it does (called by the fleet's one loop) -----------------------

    def schedule(self, now: float) -> None:
        """Spread this bot's first actions over one period of each."""
        f = self.fleet
        rng = self.rng
        self.next_move = now + rng.uniform(0, f.move_period) if f.move_period else math.inf
        self.next_ping = now + rng.uniform(0, f.ping_interval)
        self.next_chat = now + rng.expovariate(f.chat_rate) if f.chat_rate else math.inf
        self.next_due = min(self.next_move, self.next_ping, self.next_chat)

    def act(self, now: float) -> None:
        """Do what is due at ``now``: a move, a ping, a chat line."""
        f = self.fleet
        if self.state != PLAYING or self.closing:
            self.next_due = math.inf
            return
        if now >= self.next_move:
            if not self.changing_zone:
                self.step(now)
            period = f.move_period
            self.next_move += period
            if self.next_move < now:
                # Fell behind (a slow loop): skip, never burst past --rate.
                self.next_move = now + period
        if now >= self.next_ping:
            self.pings_sent += 1
            self.ping(now)
            self.next_ping = now + f.ping_interval
        if now >= self.next_chat:
            self.chats_sent += 1
            self.say(self.rng.choice(LINES))
            self.next_chat = now + self.rng.expovariate(f.chat_rate)
        due = self.next_move
        if self.next_ping < due:
            due = self.next_ping
        if self.next_chat < due:
            due = self.next_chat
        self.next_due = due

    def step(self, now: float) -> None:
        """Walk for the time since the last step, at most one second's worth."""
        # Called ten times a second per bot: comparisons rather than
        # min()/max() calls, and one C call for the random turn.
        dt = now - self.last_step
        if dt > 1.0:
            dt = 1.0
        self.last_step = now
        dist = self.fleet.speed * dt
        if dist <= 0.0:
            return
        x, y = self.x, self.y
        w, h = self.zone_width, self.zone_height
        wp = self.waypoint
        if wp is not None:
            dx, dy = wp[0] - x, wp[1] - y
            left = math.hypot(dx, dy)
            if left <= dist:
                self.waypoint = None
                nx, ny = wp
            else:
                self.heading = math.atan2(dy, dx)
                nx, ny = x + dx / left * dist, y + dy / left * dist
        else:
            # A turn spread evenly over +-0.7 rad (a standard deviation of 0.4).
            heading = self.heading + (self.rng.random() - 0.5) * _TURN
            nx = x + _cos(heading) * dist
            ny = y + _sin(heading) * dist
            margin = (w if w < h else h) * 0.02
            if not (margin < nx < w - margin and margin < ny < h - margin):
                # Turn back towards the middle rather than walk into the edge.
                heading = math.atan2(h / 2 - y, w / 2 - x) + self.rng.uniform(-0.6, 0.6)
                nx = x + _cos(heading) * dist
                ny = y + _sin(heading) * dist
            self.heading = heading
        if not 0.5 <= nx <= w - 0.5:
            nx = 0.5 if nx < 0.5 else w - 0.5
        if not 0.5 <= ny <= h - 0.5:
            ny = 0.5 if ny < 0.5 else h - 0.5
        self.seq = seq = (self.seq + 1) & 0xFFFFFFFF
        self.x, self.y = nx, ny
        self.moves_sent += 1
        # self.write() without its checks, which act() has made.
        self.bytes_out += _MOVE_SIZE
        self.frames_out += 1
        self.transport.write(move_frame(seq, nx, ny))  # type: ignore[union-attr]

    def stalls(self, end: float) -> tuple[float, int, int]:
        """
        Played until ``end``: the longest time without an update, the whole
        seconds without one, and the whole seconds played.
        """
        since = self.playing_since
        if since is None or end <= since:
            return 0.0, 0, 0
        last = min(self.last_update, end)
        trailing = silent_seconds(last, end, since) if end - last >= 1.0 else 0
        return (max(self.longest_gap, end - last), self.silent_seconds + trailing,
                math.floor(end - since))

    def counters(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks, "entity_updates": self.entity_updates,
            "chats_received": self.chats_received, "moves_sent": self.moves_sent,
            "pings_sent": self.pings_sent, "pongs": self.pongs,
            "chats_sent": self.chats_sent, "frames_in": self.frames_in,
            "frames_out": self.frames_out, "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }
