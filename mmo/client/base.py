"""
What every client of the game protocol shares: the hello/login handshake,
frame splitting, the senders, and the name of the reason a connection ended.

:class:`ClientConnection` is a thin ``Protocol`` around the sans-IO codec of
:mod:`mmo.wire`.  It hands each frame to :meth:`ClientConnection.frame_received`
undecoded, so that a subclass decodes only what it needs: the interactive
client (:class:`mmo.client.protocol.GameClient`) decodes everything, a
load-generator bot only what it measures.
"""

from __future__ import annotations

from twisted.internet import error as txerror
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from ..wire import messages as m
from ..wire.frames import FrameDecoder
from ..wire.messages import ErrorCode, ProtocolError

CONNECTING, LOGGING_IN, PLAYING, CLOSED = "connecting", "logging_in", "playing", "closed"

_ERROR = m.Error.TYPE
_NOTICE = m.Notice.TYPE
_ENTER_WORLD = m.EnterWorld.TYPE
_TICKET = m.Ticket.TYPE
_REDIRECT = m.Redirect.TYPE
_HANDSHAKE = frozenset((_ENTER_WORLD, _ERROR, _NOTICE, _TICKET, _REDIRECT))


def error_name(code: int) -> str:
    """``name_in_use`` for ``ErrorCode.NAME_IN_USE``; ``error_99`` if unknown."""
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"error_{code}"


def connect_failure_reason(failure: Failure) -> str:
    """Why a connection attempt failed, as a short reason name."""
    if failure.check(txerror.ConnectionRefusedError):
        return "connect_refused"
    if failure.check(txerror.TimeoutError, txerror.TCPTimedOutError, CancelledError):
        return "connect_timeout"
    return "connect_failed"


class ClientConnection(Protocol):
    """
    One player's connection: sends Hello and Login as soon as it connects,
    splits what arrives into frames and keeps where the player is.

    ``reason`` names why the connection ended once it has: ``closed_by_client``
    (we closed it), ``server_shutdown`` (the server said so first), an error
    code's name such as ``name_in_use`` (the server's last frame was an
    :class:`~mmo.wire.messages.Error`), ``protocol_error`` (the server sent
    something we cannot parse), ``redirected`` (the server sent us to another
    node: :attr:`redirect`) or ``connection_lost`` (anything else).

    The newest resume token the server gave (``Ticket``, ``Redirect``) is in
    :attr:`token`; a connection made with ``token`` set presents it
    (``Resume``) instead of the password.
    """

    client_string = "mmo-client"

    def __init__(self, name: str, password: str, clock: IReactorTime,
                 token: str | None = None) -> None:
        self.name = name
        self.password = password
        #: The resume token to present, then the newest one the server gave.
        self.token = token
        #: Where the server sent this player (a ``Redirect``), if it did.
        self.redirect: m.Redirect | None = None
        #: The node this connection went to: (host, port), once known.
        self.door: tuple[str, int] | None = None
        self.clock = clock
        self.decoder = FrameDecoder.for_client()
        self.state = CONNECTING
        self.reason: str | None = None
        self.closing = False
        self.shutdown_notice = False
        self.last_type = 0
        self.last_error: tuple[int, str] | None = None
        self.protocol_error: ProtocolError | None = None
        self.seq = 0
        self.ping_token = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.frames_out = 0
        self.connected_at: float | None = None
        self.entered_at: float | None = None
        # Where the player is (from EnterWorld and Correction).
        self.entity_id = 0
        self.zone = ""
        self.x = 0.0
        self.y = 0.0
        self.zone_width = 0.0
        self.zone_height = 0.0
        self.aoi = 0.0
        self.tick_hz = 0
        self.node_id = ""

    # -- connection ------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected_at = self.clock.seconds()
        self.state = LOGGING_IN
        # A game sends small frames and wants them now, not batched by Nagle.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        login = m.Resume(self.token) if self.token else m.Login(self.name, self.password)
        self.write(m.Hello(m.PROTOCOL_VERSION, self.client_string).encode() + login.encode(), 2)

    def dataReceived(self, data: bytes) -> None:
        self.bytes_in += len(data)
        try:
            frames = self.decoder.feed_frames(data)
        except ProtocolError as e:
            self.protocol_error = e
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        if not frames:
            return
        self.frames_in += len(frames)
        self.last_type = frames[-1][0]
        self.frames_received(frames, self.clock.seconds())

    def frames_received(self, frames: list[tuple[int, bytes]], now: float) -> None:
        """Handle the frames of one read; ``now`` is when they arrived."""
        for type_, body in frames:
            self.frame_received(type_, body, now)

    def frame_received(self, type_: int, body: bytes, now: float) -> None:
        """One frame, undecoded.  This default handles the handshake frames."""
        if type_ not in _HANDSHAKE:
            return
        msg = self.decode(type_, body)
        if isinstance(msg, m.EnterWorld):
            self.entered_world(msg, now)
        elif isinstance(msg, m.Ticket):
            self.token = msg.token
        elif isinstance(msg, m.Redirect):
            self.redirected(msg)
        elif isinstance(msg, m.Error):
            self.error_received(msg.code, msg.text)
        elif isinstance(msg, m.Notice):
            self.notice_received(msg.kind, msg.text)

    def decode(self, type_: int, body: bytes) -> m.Message | None:
        """Decode a frame's body; a bad one is logged as a protocol error."""
        try:
            return self.decoder.decode(type_, body)
        except ProtocolError as e:
            self.protocol_error = e
            if self.transport is not None:
                self.transport.abortConnection()  # type: ignore[attr-defined]
            return None

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.state = CLOSED
        self.reason = self.lost_reason(reason)
        self.closed(self.reason)

    def lost_reason(self, failure: Failure | None) -> str:
        if self.closing:
            return "closed_by_client"
        if self.shutdown_notice:
            return "server_shutdown"
        if self.protocol_error is not None:
            return "protocol_error"
        if self.redirect is not None:
            return "redirected"
        if self.last_type == _ERROR and self.last_error is not None:
            return error_name(self.last_error[0])
        return "connection_lost"

    # -- events for subclasses ---------------------------------------------------

    def entered_world(self, msg: m.EnterWorld, now: float) -> None:
        self.state = PLAYING
        self.entered_at = now
        self.entity_id = msg.entity_id
        self.zone = msg.zone
        self.x, self.y = msg.x, msg.y
        self.zone_width, self.zone_height = msg.zone_width, msg.zone_height
        self.aoi = msg.aoi
        self.tick_hz = msg.tick_hz
        self.node_id = msg.node_id

    def error_received(self, code: int, text: str) -> None:
        self.last_error = (code, text)

    def redirected(self, msg: m.Redirect) -> None:
        """The server sends this player to another node; it closes next."""
        self.redirect = msg
        self.token = msg.token

    def notice_received(self, kind: int, text: str) -> None:
        if kind == m.NoticeKind.SHUTDOWN:
            self.shutdown_notice = True

    def closed(self, reason: str) -> None:
        """The connection is gone; ``reason`` says why."""

    # -- sending ---------------------------------------------------------------

    def write(self, data: bytes, frames: int = 1) -> None:
        if self.transport is None or self.state == CLOSED or self.closing:
            return
        self.bytes_out += len(data)
        self.frames_out += frames
        self.transport.write(data)

    def move(self, x: float, y: float) -> int:
        """Ask to move to ``(x, y)``; return the move's sequence number."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.x, self.y = x, y
        self.write(m.Move(self.seq, x, y).encode())
        return self.seq

    def ping(self, now: float | None = None) -> int:
        """Send a ping stamped with ``now``; return its token."""
        self.ping_token = (self.ping_token + 1) & 0xFFFFFFFF
        stamp = self.clock.seconds() if now is None else now
        self.write(m.Ping(self.ping_token, stamp).encode())
        return self.ping_token

    def chat(self, channel: int, text: str, target: str = "") -> None:
        self.write(m.Chat(channel, text, target).encode())

    def say(self, text: str) -> None:
        self.chat(m.Channel.SAY, text)

    def whisper(self, name: str, text: str) -> None:
        self.chat(m.Channel.WHISPER, text, name)

    def change_zone(self, zone: str) -> None:
        self.write(m.ChangeZone(zone).encode())

    def request_who(self) -> None:
        self.write(m.Who().encode())

    def close(self, abort: bool = False) -> None:
        """Say goodbye and close; ``abort`` drops the connection at once."""
        if self.transport is None or self.state == CLOSED:
            return
        if not self.closing and not abort:
            self.write(m.Bye().encode())
        self.closing = True
        if abort:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self.transport.loseConnection()

