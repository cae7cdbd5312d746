"""
One player's connection: the adapter between the transport, the frame
decoder and the :class:`~mmo.server.node.Node`.

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

from ..interfaces import ISession, LoginRefused
from ..wire import layout
from ..wire import messages as m
from ..wire.frames import FrameDecoder
from ..wire.messages import ErrorCode, ProtocolError
from ..world.grid import Entity
from . import fastwrite
from .node import Node

_fast_write = fastwrite.write

_MOVE_TYPE = m.Move.TYPE
_MOVE_SIZE = layout.MOVE.size
_MOVE_UNPACK = layout.MOVE.unpack

#: Frames a client may send while its login is being checked.
MAX_PENDING = 64

HELLO, LOGIN, AUTHENTICATING, PLAYING, CLOSED = range(5)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


@implementer(IPushProducer, ISession)
class PlayerSession(Protocol):
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
        self.last_frame = now
        #: When the transport's buffer filled up (no updates sent since).
        self.paused_since: float | None = None
        self.closing_since: float | None = None
        self.pending: deque[tuple[int, bytes]] = deque()
        self.moves = TokenBucket(limits.move_rate, limits.move_rate * 2, now)
        self.chats = TokenBucket(limits.chat_rate, 5.0, now)
        self.limited_since: float | None = None
        self.bytes_in = 0

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
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
        self.pending.clear()
        self.node.session_closed(self)

    # -- flow control (IPushProducer): the transport tells us when its buffer
    # -- is over ``output_buffer`` and when it has drained again.

    def pauseProducing(self) -> None:
        if self.paused_since is None:
            self.paused_since = self.node.clock.seconds()
            self.live = False

    def resumeProducing(self) -> None:
        if self.paused_since is not None:
            self.paused_since = None
            self._update_live()
            if self.entity is not None and self.entity.viewer is not None:
                self.entity.viewer.resync = True

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
            self.transport.write(data)  # type: ignore[union-attr]

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
        if self.closing_since is None:
            self.closing_since = self.node.clock.seconds()
        self.live = False
        self.pending.clear()
        if abort:
            self.transport.abortConnection()  # type: ignore[union-attr]
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def error(self, code: int, text: str) -> None:
        """Tell the client a request was refused; the session goes on."""
        self.node.count_refusal(code)
        self.send(m.Error(code, text))

    def sweep(self, now: float) -> None:
        """Time out a login not made, an idle player, a reader that does not drain."""
        limits = self.limits
        if self.closing_since is not None:
            if now - self.closing_since > max(limits.shutdown_grace, 5.0):
                self.transport.abortConnection()  # type: ignore[union-attr]
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

    # -- input ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing_since is not None:
            return
        self.bytes_in += len(data)
        self.node.bytes_in += len(data)
        try:
            frames = self.decoder.feed_frames(data)
        except ProtocolError as e:
            self.refuse(e.code, e.text)
            return
        if not frames:
            return
        self.last_frame = now = self.node.clock.seconds()
        if self.state == AUTHENTICATING or self.pending:
            self._queue(frames)
            return
        for i, (type_, body) in enumerate(frames):
            # Moves are most of what players send: decoded here, without a
            # message object (the same checks as Move.decode_body).
            if type_ == _MOVE_TYPE and self.state == PLAYING and len(body) == _MOVE_SIZE:
                self.node.events += 1
                seq, x, y = _MOVE_UNPACK(body)
                if x - x != 0.0 or y - y != 0.0:  # NaN or infinite
                    self.error(ErrorCode.INVALID, "coordinates must be finite numbers")
                else:
                    self.move(seq, x, y, now)
                continue
            self._dispatch(type_, body)
            if self.state == AUTHENTICATING:
                self._queue(frames[i + 1 :])
                return
            if self.closing_since is not None:
                return

    def _queue(self, frames: list[tuple[int, bytes]]) -> None:
        self.pending.extend(frames)
        if len(self.pending) > MAX_PENDING:
            self.refuse(ErrorCode.RATE_LIMITED, "too many frames before login completed")

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

    def _drain_pending(self) -> None:
        while self.pending and self.state == PLAYING and self.closing_since is None:
            self._dispatch(*self.pending.popleft())

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
        d = self.node.login(self, msg.name, msg.password)
        d.addCallbacks(self._logged_in, self._login_failed)

    def _logged_in(self, _: Any) -> None:
        if self.state == CLOSED:
            return
        self.state = PLAYING
        self._update_live()
        self._drain_pending()

    def _login_failed(self, f: Failure) -> None:
        if self.state == CLOSED:
            return
        if f.check(LoginRefused):
            self.refuse(f.value.code, f.value.text)  # type: ignore[union-attr]
        else:
            self.log.failure("login of {name} failed", f, name=self.name)
            self.refuse(ErrorCode.AUTH_FAILED, "login failed: server error")

    def on_move(self, msg: m.Move) -> None:
        self.move(msg.seq, msg.x, msg.y, self.node.clock.seconds())

    def move(self, seq: int, x: float, y: float, now: float) -> None:
        if not self.moves.take(now):
            self._rate_limited(now, "moves")
            e = self.entity
            assert e is not None
            self.send(m.Correction(seq, e.x, e.y, m.CorrectionReason.RATE_LIMITED))
            return
        self.node.move(self, seq, x, y, now)

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
    LOGIN: {m.Login: PlayerSession.on_login, m.Bye: PlayerSession.on_bye},
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


def session_factory(node: Node) -> Factory:
    """The factory of ``node``'s player sessions, for any endpoint."""
    return Factory.forProtocol(lambda: PlayerSession(node))  # type: ignore[arg-type]
