"""
One player's connection: the adapter between the transport, the frame
decoder and the :class:`~mmo.server.node.Node`.  Its read path (bytes to
frames, charged to the request budget) is :mod:`.intake`.

The session owns its transport and everything written to it (the tick's
update goes straight to the socket when nothing is queued: :mod:`.fastwrite`);
the node sees it as an :class:`~mmo.interfaces.ISession`.  The session
checks the order of things (hello, then login, then play), the per-player
limits (move and chat rates) and its own time limits (login, idle, a
reader that does not drain); the node owns the world and decides
everything else.  Anything the client does wrong gets an
:class:`~mmo.wire.messages.Error` frame and, where the connection cannot
go on, a clean close.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import ISession, LoginRefused, SentElsewhere
from ..wire import messages as m
from ..wire.frames import FrameDecoder
from ..wire.messages import ErrorCode, ProtocolError
from ..world.grid import Entity
from . import fastwrite
from .hub import SessionHub
from .intake import AUTHENTICATING, CLOSED, HELLO, LOGIN, PLAYING, ReadControl
from .limits import COSTS, TokenBucket
from .node import Node

_fast_write = fastwrite.write

#: What each frame costs from the connection's request budget.
COSTS.update({m.Move.TYPE: 1.0, m.Ping.TYPE: 1.0, m.Bye.TYPE: 1.0, m.Hello.TYPE: 2.0,
              m.Login.TYPE: 2.0, m.Resume.TYPE: 2.0, m.Chat.TYPE: 2.0, m.Who.TYPE: 20.0,
              m.ChangeZone.TYPE: 20.0})
#: Seconds, beyond the login timeout, a login may wait for the server to
#: check it (password hashes queue during a login storm).
CHECK_GRACE = 60.0
#: Refused moves get one Correction per burst, or one per this many seconds.
CORRECTION_EVERY = 1.0


@implementer(IPushProducer, ISession)
class PlayerSession(ReadControl, Protocol):
    """The server side of one client connection."""

    log = Logger()

    def __init__(self, node: Node) -> None:
        self.node = node
        self.limits = limits = node.limits
        self.decoder = FrameDecoder.for_server(limits.max_frame)
        self.state = HELLO
        #: In play, not closing, draining: gets updates and chat.
        self.live = False
        self.peer = "?"
        self.name = ""
        self.entity: Entity | None = None
        now = node.clock.seconds()
        self.connected_at = now
        self.login_at = now
        self.last_frame = now
        #: When the transport's buffer filled up (no updates sent since).
        self.paused_since: float | None = None
        self.closing_since: float | None = None
        #: Frames decoded but not yet acted on (the budget ran out mid-read).
        self.inbox: deque[tuple[int, bytes]] = deque()
        #: Every frame's cost comes out of this budget.
        self.budget = TokenBucket(limits.request_rate, limits.request_burst, now)
        #: Since when the client has been over its budget, and the timer
        #: that reads it again once the budget has refilled.
        self.throttled_since: float | None = None
        self._refill: Any = None
        self._reading = True
        # Five seconds of moves: what a client sent while the node was too
        # busy to read (a login storm) arrives at once and is not refused;
        # the distance budget still keeps every walk to the speed limit.
        self.moves = TokenBucket(limits.move_rate, limits.move_rate * 5, now)
        self.chats = TokenBucket(limits.chat_rate, 5.0, now)
        self.limited_since: float | None = None
        #: When the last Correction went out, until a move is accepted.
        self.corrected_at: float | None = None
        self.bytes_in = 0

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
        hub = getattr(self.factory, "hub", None)
        if hub is not None:
            # One reactor event for many players' sockets (:mod:`.hub`).
            hub.adopt(self.transport)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = getattr(peer, "host", str(peer))
        refusal = self.node.admit(self)
        if refusal is not None:
            self.refuse(*refusal)
            return
        # Updates are latency-bound small writes: no Nagle delay.
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            set_nodelay(True)
        self.transport.bufferSize = self.limits.output_buffer  # type: ignore[union-attr]
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.state = CLOSED
        self.live = False
        self.inbox.clear()
        if self._refill is not None and self._refill.active():
            self._refill.cancel()
        self._refill = None
        self.node.session_closed(self)

    # -- flow control (IPushProducer): the transport tells us when its buffer
    # -- is over ``output_buffer`` and when it has drained again.

    def pauseProducing(self) -> None:
        # The output buffer passed its bound: no updates, no replies, and
        # nothing more read (so nothing more to answer) until it drains.
        if self.paused_since is None:
            self.paused_since = self.node.clock.seconds()
            self.live = False
            self._set_reading()

    def resumeProducing(self) -> None:
        if self.paused_since is not None:
            self.paused_since = None
            self._update_live()
            if self.entity is not None and self.entity.viewer is not None:
                self.entity.viewer.resync = True
            self._process(self.node.clock.seconds())

    def stopProducing(self) -> None:
        pass

    def _update_live(self) -> None:
        self.live = (self.state == PLAYING and self.closing_since is None
                     and self.paused_since is None)

    @property
    def ended(self) -> bool:
        """Closing or closed."""
        return self.closing_since is not None or self.state == CLOSED

    # -- output --------------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Pre-encoded frames, unless the session is closing or not draining."""
        if self.closing_since is None and self.paused_since is None and self.state != CLOSED:
            self.transport.write(data)  # type: ignore[union-attr]
            return len(data)
        return 0

    def write_update(self, data: bytes) -> None:
        """The tick's one write: straight to the socket when nothing is queued."""
        _fast_write(self.transport, data)

    def send(self, msg: m.Message) -> None:
        if self.state != CLOSED and self.closing_since is None:
            data = msg.encode()
            self.node.bytes_out += len(data)
            # A reply (Pong, Correction) goes out now when nothing is queued:
            # no trip through the reactor to register and send it.
            _fast_write(self.transport, data)

    def refuse(self, code: int, text: str, abort: bool = False) -> None:
        """Send an error frame, log the refusal and close the connection."""
        if self.closing_since is not None or self.state == CLOSED:
            return
        self.node.count_refusal(code)
        self.log.info(
            "refused {peer} ({name}): {code} {text}",
            peer=self.peer, name=self.name or "-",
            code=ErrorCode(code).name if code in ErrorCode._value2member_map_ else code,
            text=text,
        )
        self.transport.write(m.Error(code, text).encode())  # type: ignore[union-attr]
        self.close(abort)

    def close(self, abort: bool = False) -> None:
        """
        Close: what was written drains, then the write side is shut (FIN)
        while what the client still sends is read and dropped, so that the
        close never resets the connection under the client's last frames;
        the client closing its side ends it (or the sweep, past the grace).
        ``abort`` resets at once (a client that does not read).
        """
        first = self.closing_since is None
        if first:
            self.closing_since = self.node.clock.seconds()
        self.live = False
        self.inbox.clear()
        # The player leaves the world now; only the socket lingers.
        self.node.remove_player(self)
        transport: Any = self.transport
        if abort:
            transport.abortConnection()
            return
        if first:
            if type(transport) in fastwrite.TCP_TYPES and not transport.TLS:
                transport.loseWriteConnection()  # FIN once drained; keep reading
                self._set_reading()
            else:
                transport.loseConnection()  # TLS, memory: a plain close

    def error(self, code: int, text: str) -> None:
        """Tell the client a request was refused; the session goes on."""
        self.node.count_refusal(code)
        self.send(m.Error(code, text))

    def sweep(self, now: float) -> None:
        """Time out a login not made, an idle player, a reader that does not drain."""
        limits = self.limits
        if self.closing_since is not None:
            grace = max(limits.shutdown_grace, 5.0)
            if now - self.closing_since > 2 * grace:
                self.transport.abortConnection()  # type: ignore[union-attr]
            elif now - self.closing_since > grace:
                self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if self.throttled_since is not None and not self.inbox \
                and self.budget.level(now) >= self.budget.burst / 2:
            self.throttled_since = None  # it stopped sending: the burst is over
        if self.throttled_since is not None \
                and now - self.throttled_since > limits.flood_timeout:
            self.refuse(ErrorCode.RATE_LIMITED, "over the request budget for too long",
                        abort=True)
            return
        if self.state == AUTHENTICATING:
            # The client did its part; a login storm queues on the password
            # hashes, and the wait is the server's: bounded apart.
            if now - self.login_at > limits.login_timeout + CHECK_GRACE:
                self.refuse(ErrorCode.LOGIN_TIMEOUT, "the login could not be checked in time")
            return
        if self.state != PLAYING:
            if now - self.connected_at > limits.login_timeout:
                self.refuse(ErrorCode.LOGIN_TIMEOUT, "no login in time")
            return
        if self.paused_since is not None and now - self.paused_since > limits.stuck_timeout:
            self.refuse(ErrorCode.SLOW_READER,
                        "you did not read your updates in time", abort=True)
            return
        if now - self.last_frame > limits.idle_timeout:
            self.refuse(ErrorCode.IDLE_TIMEOUT, "idle for too long")

    # -- input (the read path is :class:`~mmo.server.intake.ReadControl`) ---

    def _dispatch(self, type_: int, body: bytes) -> None:
        self.node.events += 1
        try:
            msg = self.decoder.decode(type_, body)
        except ProtocolError as e:
            if e.code == ErrorCode.INVALID:
                self.error(e.code, e.text)
                return
            self.refuse(e.code, e.text)
            return
        handler = _HANDLERS[self.state].get(type(msg))
        if handler is None:
            self.refuse(
                ErrorCode.BAD_STATE,
                f"{type(msg).__name__} is not allowed {_STATE_NAMES[self.state]}",
            )
            return
        handler(self, msg)

    # -- handlers ------------------------------------------------------------

    def on_hello(self, msg: m.Hello) -> None:
        if msg.version != m.PROTOCOL_VERSION:
            self.refuse(
                ErrorCode.VERSION_MISMATCH,
                f"this server speaks protocol {m.PROTOCOL_VERSION}, not {msg.version}",
            )
            return
        self.state = LOGIN
        self.send(m.Welcome(
            m.PROTOCOL_VERSION, self.node.node_id, self.limits.max_frame,
            self.node.server_string,
        ))

    def on_login(self, msg: m.Login) -> None:
        self.state = AUTHENTICATING
        self.login_at = self.node.clock.seconds()
        d = self.node.login(self, msg.name, msg.password)
        d.addCallbacks(self._logged_in, self._login_failed)

    def on_resume(self, msg: m.Resume) -> None:
        self.state = AUTHENTICATING
        self.login_at = self.node.clock.seconds()
        d = self.node.resume(self, msg.token)
        d.addCallbacks(self._logged_in, self._login_failed)

    def _logged_in(self, _: Any) -> None:
        if self.state == CLOSED:
            return
        self.state = PLAYING
        now = self.node.clock.seconds()
        # The idle clock starts in the world: a login that waited long for
        # its password hash (a storm) is not idle for that wait.
        self.last_frame = now
        self._update_live()
        self._process(now)

    def _login_failed(self, f: Failure) -> None:
        if self.state == CLOSED:
            return
        if f.check(SentElsewhere):
            self.send(f.value.redirect)  # type: ignore[union-attr]
            self.close()
        elif f.check(LoginRefused):
            self.refuse(f.value.code, f.value.text)  # type: ignore[union-attr]
        else:
            self.log.failure("login of {name} failed", f, name=self.name)
            self.refuse(ErrorCode.AUTH_FAILED, "login failed: server error")

    def on_move(self, msg: m.Move) -> None:
        self.move(msg.seq, msg.x, msg.y, self.node.clock.seconds())

    def move(self, seq: int, x: float, y: float, now: float) -> None:
        if not self.moves.take(now):
            self._rate_limited(now, "moves")
            self.correct(seq, m.CorrectionReason.RATE_LIMITED, now)
            return
        if self.node.move(self, seq, x, y, now):
            self.corrected_at = None

    def correct(self, seq: int, reason: int, now: float) -> None:
        """
        Tell the client where its player is, once per burst of refused moves
        (or once per :data:`CORRECTION_EVERY`): its later moves of the same
        burst were made from the same wrong place.
        """
        e = self.entity
        if e is None:
            return
        if self.corrected_at is not None and now - self.corrected_at < CORRECTION_EVERY:
            return
        self.corrected_at = now
        self.send(m.Correction(seq, e.x, e.y, reason))

    def _rate_limited(self, now: float, what: str) -> None:
        # One log line and one error frame per burst, not one per message.
        if self.limited_since is None or now - self.limited_since > 5.0:
            self.limited_since = now
            self.error(ErrorCode.RATE_LIMITED, f"too many {what}: slow down")
        else:
            self.node.count_refusal(ErrorCode.RATE_LIMITED)

    def on_ping(self, msg: m.Ping) -> None:
        self.send(m.Pong(msg.token, msg.client_time, self.node.clock.seconds()))

    def on_chat(self, msg: m.Chat) -> None:
        now = self.node.clock.seconds()
        if not self.chats.take(now):
            self._rate_limited(now, "chat messages")
            return
        self.node.chat(self, msg)

    def on_change_zone(self, msg: m.ChangeZone) -> None:
        self.node.change_zone(self, msg.zone)

    def on_who(self, msg: m.Who) -> None:
        self.node.who(self)

    def on_bye(self, msg: m.Bye) -> None:
        self.close()


_STATE_NAMES = {
    HELLO: "before Hello", LOGIN: "before Login",
    AUTHENTICATING: "while logging in", PLAYING: "in play", CLOSED: "after close",
}

_HANDLERS: dict[int, dict[type, Any]] = {
    HELLO: {m.Hello: PlayerSession.on_hello},
    LOGIN: {m.Login: PlayerSession.on_login, m.Resume: PlayerSession.on_resume,
            m.Bye: PlayerSession.on_bye},
    AUTHENTICATING: {},
    PLAYING: {
        m.Move: PlayerSession.on_move,
        m.Ping: PlayerSession.on_ping,
        m.Chat: PlayerSession.on_chat,
        m.ChangeZone: PlayerSession.on_change_zone,
        m.Who: PlayerSession.on_who,
        m.Bye: PlayerSession.on_bye,
    },
    CLOSED: {},
}


class PlayerSessions(Factory):
    """
    The factory of a node's player sessions, for any endpoint.  With a
    ``hub``, plain TCP connections are polled together (:mod:`.hub`).
    """

    def __init__(self, node: Node, hub: SessionHub | None = None) -> None:
        self.node = node
        self.hub = hub

    def buildProtocol(self, addr: Any) -> PlayerSession:
        session = PlayerSession(self.node)
        session.factory = self
        return session


def session_factory(node: Node) -> PlayerSessions:
    """The factory of ``node``'s player sessions, as its settings say (``session_hub``)."""
    return PlayerSessions(node, SessionHub() if node.settings.node.session_hub else None)
