"""
One simulated player: it logs in, random-walks, pings and chats, and
measures what it sees.

A bot has no timer of its own: the :class:`~mmo.loadgen.fleet.Fleet` calls
:meth:`Bot.act` from the one loop that drives every bot.  Of what arrives,
only the frames it measures are parsed, and only as far as needed (a
``Moves`` frame is counted from its two-byte header).

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
    def bot_ended(self, bot: Bot, reason: str) -> None: ...
    def update_age(self, seconds: float) -> None: ...
    def rtt(self, seconds: float) -> None: ...
    def error(self, name: str) -> None: ...

_TICK_T = m.Tick.TYPE
_MOVES_T = m.Moves.TYPE
_ENTER_T = m.Enter.TYPE
_LEAVE_T = m.Leave.TYPE
_PONG_T = m.Pong.TYPE
_CHAT_T = m.ChatMessage.TYPE
_CORRECTION_T = m.Correction.TYPE
_RESYNC_T = m.Resync.TYPE
# Only what is measured is read, straight from the body.
_read_tick = layout.TICK.unpack_from
_read_count = layout.COUNT.unpack_from
_read_pong = layout.PONG.unpack_from
_read_correction = layout.CORRECTION.unpack_from
_REASONS = {r.value: r.name.lower() for r in m.CorrectionReason}


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

    def __init__(self, index: int, name: str, password: str, fleet: FleetView,
                 clock: IReactorTime, rng: random.Random) -> None:
        super().__init__(name, password, clock)
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

    def write(self, data: bytes, frames: int = 1) -> None:
        if self.transport is None or self.state == "closed" or self.closing:
            return
        self.bytes_out += len(data)
        self.frames_out += frames
        iv = self.fleet.interval
        iv.bytes_out += len(data)
        iv.frames_out += frames
        self.transport.write(data)

    # -- what arrives -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        iv = self.fleet.interval
        self.bytes_in += len(data)
        iv.bytes_in += len(data)
        try:
            frames = self.decoder.feed_frames(data)
        except ProtocolError as e:
            self.protocol_error = e
            self.fleet.stats.errors["protocol_error"] += 1
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if not frames:
            return
        n = len(frames)
        self.frames_in += n
        iv.frames_in += n
        self.last_type = frames[-1][0]
        now = self.clock.seconds()
        ticks = self.ticks
        for type_, body in frames:
            if type_ == _TICK_T:
                self.ticks += 1
                self.fleet.update_age(now - _read_tick(body)[1])
            elif type_ == _MOVES_T:
                self.entity_updates += _read_count(body)[0]
            elif type_ == _ENTER_T:
                n = _read_count(body)[0]
                self.visible += n
                self.entity_updates += n
            elif type_ == _LEAVE_T:
                n = _read_count(body)[0]
                self.visible = max(0, self.visible - n)
                self.entity_updates += n
            elif type_ == _PONG_T:
                self.pongs += 1
                self.fleet.rtt(now - _read_pong(body)[1])
            elif type_ == _CHAT_T:
                self.chats_received += 1
            elif type_ == _CORRECTION_T:
                _, x, y, reason = _read_correction(body)
                self.x, self.y = x, y
                self.corrections += 1
                self.fleet.stats.corrections[_REASONS.get(reason, str(reason))] += 1
            elif type_ == _RESYNC_T:
                self.visible = 0
            else:
                self.frame_received(type_, body, now)
            if self.state == "closed":
                return
        if ticks != self.ticks and self.playing_since is not None:
            # An update: once per read, whatever the number of frames.
            gap = now - self.last_update
            if gap > self.longest_gap:
                self.longest_gap = gap
            if gap >= 1.0:
                self.silent_seconds += silent_seconds(self.last_update, now,
                                                      self.playing_since)
            self.last_update = now

    def entered_world(self, msg: m.EnterWorld, now: float) -> None:
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
        self.next_due = min(self.next_move, self.next_ping, self.next_chat)

    def step(self, now: float) -> None:
        """Walk for the time since the last step, at most one second's worth."""
        dt = min(max(now - self.last_step, 0.0), 1.0)
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
            self.heading += self.rng.gauss(0.0, 0.4)
            nx = x + math.cos(self.heading) * dist
            ny = y + math.sin(self.heading) * dist
            margin = min(w, h) * 0.02
            if not (margin < nx < w - margin and margin < ny < h - margin):
                # Turn back towards the middle rather than walk into the edge.
                self.heading = math.atan2(h / 2 - y, w / 2 - x) + self.rng.uniform(-0.6, 0.6)
                nx = x + math.cos(self.heading) * dist
                ny = y + math.sin(self.heading) * dist
        nx = min(max(nx, 0.5), w - 0.5)
        ny = min(max(ny, 0.5), h - 0.5)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.x, self.y = nx, ny
        self.moves_sent += 1
        self.write(move_frame(self.seq, nx, ny))

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
