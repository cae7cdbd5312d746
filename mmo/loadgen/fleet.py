"""
The bots of one process, driven by one ``LoopingCall``.

:class:`Fleet` launches its bots at the ramp rate, calls each bot that has
something due from a single loop (never a timer per bot), hands out a
progress snapshot every second, and at the end closes every connection
and fires with the :class:`~mmo.loadgen.stats.Stats` of the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..client.base import PLAYING, connect_failure_reason, error_name
from .bot import Bot
from .hub import Hub, hub_for
from .link import TCPLink, read_buffer
from .settings import LoadgenSettings
from .stats import Interval, Stats

#: Seconds the bots get to close cleanly at the end, then the rest are dropped.
CLOSE_GRACE = 5.0
#: Why a connection ended, for which a bot comes back (--come-back).
COME_BACK = frozenset({"connection_lost", "server_shutdown"})
#: Seconds between a bot's attempts while no node answers.
RETRY = 0.5
#: Seconds a bot keeps trying to come back without a token's own window.
BACK_WINDOW = 60.0

#: ``dial(bot, host, port)`` starts ``bot``'s connection and returns what
#: ``cancel()`` gives it up; a failure comes back by ``Fleet.connect_failed``.
Dial = Callable[[Bot, str, int], Any]


class Fleet:
    """
    Bots ``first, first + step, first + 2 * step, ...`` below ``clients``
    (one worker's slice of a run; all of them when there is one worker).

    Over TCP each bot reads and writes its own socket (a
    :class:`~mmo.loadgen.link.TCPLink`); ``dial`` replaces how a bot's
    connection is started (tests connect bots in memory with it).
    """

    log = Logger()

    def __init__(self, settings: LoadgenSettings, reactor: Any, *, first: int = 0,
                 step: int = 1, seed: int = 1,
                 progress: Callable[[dict[str, Any]], None] | None = None,
                 dial: Dial | None = None) -> None:
        self.settings = settings
        self.reactor = reactor
        self.targets = settings.addresses
        self.indices = range(first, settings.clients, step)
        self.ramp = settings.ramp
        self.seed = seed
        self.zone = settings.zone
        self.spread = settings.spread
        self.speed = settings.speed
        rate = settings.rate
        self.move_period = 1.0 / rate if rate > 0 else 0.0
        self.ping_interval = settings.ping_interval
        self.chat_rate = settings.chat_rate
        self.progress = progress
        self.stats = Stats()
        self.interval = Interval()
        self.bots: list[Bot] = []
        #: Bots still connecting, and how to give up on each.
        self.pending: dict[Bot, Any] = {}
        self.playing: dict[Bot, None] = {}
        self.live = 0
        self.started_at = 0.0
        self.stopping = False
        self.done: Deferred = Deferred()
        self._driver = LoopingCall(self._drive)
        self._driver.clock = reactor
        self._second = LoopingCall(self._each_second)
        self._second.clock = reactor
        self._stop_call: Any = None
        #: One WebSocket client factory per target (``--transport ws``).
        self._ws_factories: dict[tuple[str, int], Any] = {}
        #: Where every TCP link of this process reads (one read at a time),
        #: and where the links register to be read (a Hub, made at the first).
        self._read_buffer = read_buffer()
        self._fds: Any = None
        #: Traffic of every bot so far, at the last progress line.
        self._traffic = (0, 0, 0, 0)
        if dial is not None:
            self.dial = dial
        elif settings.transport == "ws":
            self.dial = self._dial_websocket
        else:
            self.dial = self._dial_tcp

    # -- the run ------------------------------------------------------------------

    def start(self) -> Deferred:
        """Run until ``--duration`` (or until every bot is gone); fire with Stats."""
        self.started_at = self.reactor.seconds()
        self._driver.start(1.0 / self.settings.drive_hz, now=True)
        self._second.start(1.0, now=False)
        self._stop_call = self.reactor.callLater(self.settings.duration, self.stop)
        return self.done

    def _drive(self) -> None:
        now = self.reactor.seconds()
        if not self.stopping:
            self._launch(now)
        for bot in self.playing:
            if now >= bot.next_due:
                bot.act(now)

    def _launch(self, now: float) -> None:
        launched = len(self.bots)
        total = len(self.indices)
        if launched >= total:
            return
        # Bot i of the whole run starts at i / --ramp seconds, whichever
        # worker runs it: the first ``due`` of this slice are those below.
        below = int((now - self.started_at) * self.ramp) + 1
        first, step = self.indices.start, self.indices.step
        due = min(total, max(0, -(-(below - first) // step)))
        for i in range(launched, due):
            self._start_bot(self.indices[i], now)

    def _start_bot(self, index: int, now: float) -> None:
        s = self.settings
        host, port = self.targets[index % len(self.targets)]
        # A bot's choices depend on the run's seed and its index only, so
        # that --workers changes which process runs a bot, not what it does.
        bot = Bot(index, f"{s.name_prefix}{index}", s.password, self, self.reactor,
                  random.Random(f"{self.seed}:{index}"))
        bot.started_at = now
        bot.at = (host, port)
        self.bots.append(bot)
        self.live += 1
        self.stats.counters["bots_started"] += 1
        self.pending[bot] = self.dial(bot, host, port)

    def _dial_tcp(self, bot: Bot, host: str, port: int) -> TCPLink:
        if self._fds is None:
            self._fds = hub_for(self.reactor)
        link = TCPLink(self.reactor, self._fds, bot, self._read_buffer,
                       lambda reason: self.connect_failed(bot, reason))
        link.connect(host, port, self.settings.connect_timeout)
        return link

    def _dial_websocket(self, bot: Bot, host: str, port: int) -> Deferred:
        # The same bot inside a WebSocket client, as a browser connects
        # (Autobahn is imported only for this: it is a fifth of a start-up).
        from ..client.websocket import client_factory
        from ..client.websocket import connect as connect_websocket

        factory = self._ws_factories.get((host, port))
        if factory is None:
            factory = self._ws_factories[(host, port)] = client_factory(
                host, port, self.reactor)
        d = connect_websocket(self.reactor, factory, bot, self.settings.connect_timeout,
                              lambda reason: self._handshake_failed(bot, reason))
        d.addErrback(self._connect_errback, bot)
        return d

    def _handshake_failed(self, bot: Bot, reason: str) -> None:
        self.pending.pop(bot, None)
        if not self.stopping:
            self.error(reason)
        bot.connect_failed(reason)

    def _connect_errback(self, f: Failure, bot: Bot) -> None:
        if f.check(CancelledError) and self.stopping:
            self.connect_failed(bot, "connect_cancelled")
        else:
            self.connect_failed(bot, connect_failure_reason(f))

    def connect_failed(self, bot: Bot, reason: str) -> None:
        """``bot`` could not connect (``connect_cancelled``: we gave up)."""
        self.pending.pop(bot, None)
        if (bot.coming_back is not None and not self.stopping
                and self.reactor.seconds() + RETRY < bot.back_deadline):
            # Coming back and no node answers yet: try the next one.
            bot.prepare_comeback()
            self.reactor.callLater(RETRY, self._redial, bot, self._door(bot))
            return
        if reason == "connect_cancelled":
            reason = "stopped_while_connecting" if self.stopping else "connect_timeout"
        if reason != "stopped_while_connecting":
            self.error(reason)
        bot.connect_failed(reason)

    # -- what bots report -------------------------------------------------------

    def bot_connected(self, bot: Bot, seconds: float) -> None:
        self.pending.pop(bot, None)
        self.stats.counters["connected"] += 1
        self.stats.histograms["connect_time"].add(seconds)

    def bot_logged_in(self, bot: Bot, seconds: float) -> None:
        self.stats.counters["logged_in"] += 1
        self.stats.histograms["login_time"].add(seconds)
        self.playing[bot] = None

    def bot_ended(self, bot: Bot, reason: str) -> None:
        self.pending.pop(bot, None)
        self.playing.pop(bot, None)
        if self._comes_back(bot, reason):
            return
        if bot.coming_back is not None:
            self.stats.counters["comebacks_failed"] += 1
        self.live -= 1
        if reason != "closed_by_client" and bot.connect_reason is None:
            self.stats.disconnects[reason] += 1
            self.interval.disconnects += 1
        if not self.stopping and self.live == 0 and len(self.bots) == len(self.indices):
            # Nothing left to drive (every bot failed or was dropped): end now.
            self.reactor.callLater(0, self.stop)
        elif self.stopping and self.live == 0:
            self._finish()

    # -- moving between nodes ------------------------------------------------------

    def _comes_back(self, bot: Bot, reason: str) -> bool:
        """
        Whether ``bot`` connects again: to where a Redirect sent it (always,
        with the Redirect's token), or after a drop or a node's stop
        (``--come-back``: with its token or its password), in turns over the
        node it was on and the other targets until one takes it.
        """
        if self.stopping or bot.connect_reason is not None:
            return False
        c = self.stats.counters
        r = bot.redirect
        now = self.reactor.seconds()
        if r is not None and reason == "redirected":
            c["handoffs" if bot.logged_in else "redirects"] += 1
            where, delay = (r.host, r.port), 0.0
        else:
            mode = self.settings.come_back
            if mode == "off" or reason not in COME_BACK or (mode == "token" and not bot.token):
                return False
            if mode == "password":
                bot.token = None
            self.stats.disconnects[reason] += 1
            c["comebacks"] += 1
            where, delay = self._door(bot), RETRY
        if bot.coming_back is None:
            bot.coming_back = now
            bot.back_deadline = now + BACK_WINDOW
        bot.prepare_comeback()
        self.reactor.callLater(delay, self._redial, bot, where)
        return True

    def _door(self, bot: Bot) -> tuple[str, int]:
        """Where a bot tries next: the node it was on, then the other targets in turn."""
        at = bot.at
        doors = ([at] if at is not None else []) + [t for t in self.targets if t != at]
        return doors[bot.tries % len(doors)]

    def _redial(self, bot: Bot, where: tuple[str, int]) -> None:
        if self.stopping:
            self.live -= 1
            bot.connect_reason = "stopped_while_connecting"
            bot.state = "closed"
            if self.live == 0:
                self._finish()
            return
        bot.at = where
        self.pending[bot] = self.dial(bot, *where)

    def bot_came_back(self, bot: Bot, seconds: float) -> None:
        """``bot`` plays again after a Redirect or a drop."""
        self.stats.counters["comebacks_back"] += 1
        self.stats.histograms["back_time"].add(seconds)
        self.playing[bot] = None

    # The run's update_age and rtt histograms get the interval's once a
    # second (_end_interval): one histogram to add to per update, not two.

    def update_age(self, seconds: float) -> None:
        self.interval.update_age.add(seconds)

    def rtt(self, seconds: float) -> None:
        self.interval.rtt.add(seconds)

    def error(self, name: str) -> None:
        self.stats.errors[name] += 1
        self.interval.errors += 1

    # -- every second ------------------------------------------------------------

    def _each_second(self) -> None:
        now = self.reactor.seconds()
        seen = self.stats.histograms["entities_seen"]
        for bot in self.playing:
            seen.add(bot.visible)
        limit = self.settings.login_timeout
        for bot in self.bots:
            if bot.state not in (PLAYING, "closed") and not bot.closing \
                    and bot.connected_at is not None and now - bot.connected_at > limit:
                self.error("login_timeout")
                bot.close(abort=True)
        self._count_traffic()
        if self.progress is not None:
            self.progress(self.snapshot(now))
        self._end_interval()

    def _count_traffic(self) -> None:
        """The interval's frames and bytes: what every bot's counters grew by."""
        frames_in = frames_out = bytes_in = bytes_out = 0
        for bot in self.bots:
            frames_in += bot.frames_in
            frames_out += bot.frames_out
            bytes_in += bot.bytes_in
            bytes_out += bot.bytes_out
        now = (frames_in, frames_out, bytes_in, bytes_out)
        iv = self.interval
        iv.frames_in, iv.frames_out, iv.bytes_in, iv.bytes_out = (
            a - b for a, b in zip(now, self._traffic, strict=True))
        self._traffic = now

    def _end_interval(self) -> None:
        """Add the interval's measures to the run's, and start the next."""
        h = self.stats.histograms
        h["update_age"].merge(self.interval.update_age)
        h["rtt"].merge(self.interval.rtt)
        self.interval = Interval()

    def snapshot(self, now: float) -> dict[str, Any]:
        """Where the run is: bots (``silent``: playing, no update for 1 s) and traffic."""
        silent = 0
        for bot in self.playing:
            if now - bot.last_update >= 1.0:
                silent += 1
        return {
            "elapsed": now - self.started_at,
            "planned": len(self.indices),
            "started": len(self.bots),
            "playing": len(self.playing),
            "live": self.live,
            "silent": silent,
            "interval": self.interval,
        }

    # -- the end -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop driving, close every connection, then fire ``done``."""
        if self.stopping:
            return
        self.stopping = True
        self.stopped_at = self.reactor.seconds()
        if self._stop_call is not None and self._stop_call.active():
            self._stop_call.cancel()
        for loop in (self._driver, self._second):
            if loop.running:
                loop.stop()
        for d in list(self.pending.values()):
            d.cancel()
        for bot in list(self.bots):
            if bot.state != "closed":
                bot.close()
        if self.live == 0:
            self._finish()
            return
        self._abort_call = self.reactor.callLater(CLOSE_GRACE, self._abort_rest)

    def _abort_rest(self) -> None:
        for bot in self.bots:
            if bot.state != "closed" and bot.transport is not None:
                bot.transport.abortConnection()  # type: ignore[attr-defined]
        # Aborted connections report their end on the next turns of the reactor.
        self._abort_call = self.reactor.callLater(1.0, self._finish)

    def _finish(self) -> None:
        if self.done.called:
            return
        call = getattr(self, "_abort_call", None)
        if call is not None and call.active():
            call.cancel()
        if isinstance(self._fds, Hub):
            self._fds.close()
        self.done.callback(self.collect())

    def collect(self) -> Stats:
        """The run's Stats: the shared histograms plus each bot's counters."""
        self._end_interval()
        stats = self.stats
        end = getattr(self, "stopped_at", self.reactor.seconds())
        h = stats.histograms
        per_sec = h["updates_per_sec"]
        bytes_per_sec = h["bytes_in_per_sec"]
        c = stats.counters
        for bot in self.bots:
            c.update(bot.counters())
            if bot.entered_at is not None:
                ended = min(bot.ended_at or end, end)
                played = ended - bot.entered_at
                if played >= 0.5:
                    per_sec.add(bot.ticks / played)
                    bytes_per_sec.add(bot.bytes_in / played)
                longest, silent, seconds = bot.stalls(ended)
                if seconds:
                    h["longest_gap"].add(longest)
                    h["silent_share"].add(silent / seconds)
                    c["played_seconds"] += seconds
                    c["silent_seconds"] += silent
                    c["silent_bots"] += 1 if silent else 0
            failure = self._failure_of(bot)
            if failure is not None:
                stats.failures[failure] += 1
                error = bot.last_error
                if error is not None and error_name(error[0]) == failure:
                    stats.refusal_texts.setdefault(failure, error[1])
        stats.failures["not_started"] += len(self.indices) - len(self.bots)
        if not stats.failures["not_started"]:
            del stats.failures["not_started"]
        return stats

    @staticmethod
    def _failure_of(bot: Bot) -> str | None:
        """Why ``bot`` failed, or None if it played until we closed it."""
        if bot.connect_reason is not None:
            return bot.connect_reason
        if not bot.logged_in:
            if bot.reason in (None, "closed_by_client"):
                return "login_unfinished"
            return bot.reason
        if bot.reason not in (None, "closed_by_client"):
            return bot.reason
        return None

