"""
Players over WebSocket, through the same :class:`~mmo.server.session.PlayerSession`
as over TCP.

:class:`WebSocketPlayer` is an Autobahn server protocol.  Once the opening
handshake is done (its ``Origin`` checked), it makes a ``PlayerSession`` and
connects it to a :class:`MessageTransport`, which the session owns as it
owns a TCP transport: what it writes goes out as one binary message per
frame (:func:`~mmo.wire.websocket.server_messages`, one write); the
producer it registers, the buffer size it sets, and the reading it pauses
and resumes are those of the TCP connection beneath, so that backpressure
and stopped reading work as they do over TCP.  Each message a client sends
is checked by :class:`~mmo.wire.websocket.MessageReader` (binary, one
frame, no longer than the largest frame) and the frames of one read are
handed to ``PlayerSession.dataReceived`` together: the frame decoder, the
request budget, the rate limits and the timeouts are the TCP client's.
Whole binary messages, most of the traffic, are read by
:func:`~mmo.wire.websocket.read_messages`, anything else by Autobahn.  The
fast write path (:mod:`.fastwrite`) stays with plain TCP: it sees a
transport of another type and writes through it.

WebSocket's own mistakes (a text message, a message of more than one
frame, one over the limit, bytes that are not WebSocket frames at all) get
an ``Error`` message with the code a TCP client gets for the same mistake,
then a close; every close the session makes is a WebSocket close (1000)
after what it wrote, and an abort drops the connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..settings import WebSocketSettings
from ..wire.messages import ErrorCode, ProtocolError
from ..wire.websocket import MessageReader, read_messages, server_messages
from .node import Node
from .session import PlayerSession

_OPEN = WebSocketProtocol.STATE_OPEN
_CLOSED = WebSocketProtocol.STATE_CLOSED
_CONNECTING = WebSocketProtocol.STATE_CONNECTING
#: Bytes of an opening handshake (request line and headers) past which it is refused.
MAX_HANDSHAKE = 16 * 1024
#: The normal close, after the session said why (an Error) or on Bye.
CLOSE_NORMAL = 1000

STATUS_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>mmo: WebSocket players</title></head><body>
<p>This is the WebSocket endpoint of an mmo node: the game's web client
connects here. Open the client at <code>/play</code> on the node's HTTP
server (<code>--http</code>).</p></body></html>"""


def origin_allowed(origin: str, host: str, allowed: Sequence[str]) -> bool:
    """
    Whether a browser page of ``origin`` may connect to the WebSocket
    listener it reached as ``host`` (the ``Host`` header, without its
    port).  No ``Origin`` (not a browser) is always allowed.  With no
    ``allowed`` patterns, a page of the same host name is (the node's own
    ``/play`` page, served on another port); otherwise an origin must match
    a pattern (``https://play.example.com``, ``https://*.example.com``,
    ``*`` for any), case aside.
    """
    if not origin:
        return True
    if allowed:
        origin = origin.lower()
        return any(fnmatchcase(origin, pattern.lower()) for pattern in allowed)
    try:
        name = urlsplit(origin).hostname
    except ValueError:
        return False
    return bool(name) and name == host.strip("[]").lower()


@implementer(ITransport)
class MessageTransport:
    """
    What a :class:`PlayerSession` sees of its WebSocket connection: a
    transport whose writes become one binary message per frame, and whose
    flow control is the TCP connection's beneath.
    """

    def __init__(self, ws: WebSocketPlayer) -> None:
        self.ws = ws
        self.tcp: Any = ws.transport

    @property
    def bufferSize(self) -> int:
        return int(self.tcp.bufferSize)

    @bufferSize.setter
    def bufferSize(self, size: int) -> None:
        # The session bounds its unsent output by the socket's own buffer.
        self.tcp.bufferSize = size

    def write(self, data: bytes) -> None:
        # After a close frame no message may follow (RFC 6455, 5.5.1).
        if self.ws.state == _OPEN and data:
            self.tcp.write(self.ws.factory.messages(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """A WebSocket close, after what was written; the peer's reply ends it."""
        ws = self.ws
        if ws.state == _OPEN:
            ws.sendClose(CLOSE_NORMAL)
        else:
            ws.dropConnection(abort=False)

    def abortConnection(self) -> None:
        self.ws.dropConnection(abort=True)

    def getPeer(self) -> Any:
        return self.tcp.getPeer()

    def getHost(self) -> Any:
        return self.tcp.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.tcp.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.tcp.unregisterProducer()

    def pauseProducing(self) -> None:
        self.tcp.pauseProducing()

    def resumeProducing(self) -> None:
        self.tcp.resumeProducing()

    def stopProducing(self) -> None:
        self.tcp.stopProducing()


class WebSocketPlayer(WebSocketServerProtocol):
    """One player's WebSocket connection: Autobahn's framing around a session."""

    factory: WebSocketPlayers

    def __init__(self) -> None:
        super().__init__()
        self.session: PlayerSession | None = None
        self.reader: MessageReader | None = None
        #: The frames of the current read, for the session in one call.
        self.pending: list[bytes] = []
        #: The client broke the binding: what it sends from now on is dropped.
        self.refused = False
        self._lost = False

    # -- the opening handshake ---------------------------------------------------

    def onConnect(self, request: ConnectionRequest) -> None:
        if not origin_allowed(request.origin, request.host, self.factory.allowed_origins):
            raise ConnectionDeny(
                ConnectionDeny.FORBIDDEN,
                f"pages of {request.origin} may not connect here (--allowed-origin)")

    def sendServerStatus(self, redirectUrl: str | None = None, redirectAfter: int = 0) -> None:
        # A plain HTTP GET on this port: say where the web client is.
        self.sendHtml(STATUS_PAGE)

    def onOpen(self) -> None:
        node = self.factory.node
        self.reader = MessageReader(node.limits.max_frame)
        self.session = session = PlayerSession(node)
        session.makeConnection(MessageTransport(self))

    # -- what arrives ------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.state == _CONNECTING and len(self.data) + len(data) > MAX_HANDSHAKE:
            self.failHandshake(f"opening handshake over {MAX_HANDSHAKE} bytes", 431)
            return
        # Autobahn's parser, without the debug line of its dataReceived, whose
        # arguments it formats (in colour) on every read, logged or not.
        self._dataReceived(data)
        if self.pending:
            self._deliver()

    def processData(self) -> bool:
        """
        Autobahn's frame parser, after a faster pass over what is most of a
        player's traffic: whole binary messages of one small frame each.
        """
        reader = self.reader
        if (self.current_frame is None and not self.inside_message and self.state == _OPEN
                and not self.refused and reader is not None):
            payloads, used = read_messages(self.data, True, reader.limit)
            if used:
                self.data = self.data[used:]
                for payload in payloads:
                    try:
                        self.pending.append(reader.whole(payload))
                    except ProtocolError as e:
                        self._refuse(e.code, e.text)
                        return False
                # As Autobahn does for any data frame: traffic answers a ping.
                if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
                    self._cancelAutoPingTimeoutCall()
                return bool(self.data) and self.state != _CLOSED
        return bool(super().processData())

    def _deliver(self) -> None:
        frames, self.pending = self.pending, []
        session = self.session
        if session is not None:
            session.dataReceived(frames[0] if len(frames) == 1 else b"".join(frames))

    def onMessageBegin(self, isBinary: bool) -> None:
        if not self.refused and self.reader is not None:
            try:
                self.reader.begin(isBinary)
            except ProtocolError as e:
                self._refuse(e.code, e.text)

    def onMessageFrameBegin(self, length: int) -> None:
        if not self.refused and self.reader is not None:
            try:
                self.reader.fragment(length)
            except ProtocolError as e:
                self._refuse(e.code, e.text)

    def onMessageFrameData(self, payload: bytes) -> None:
        if not self.refused and self.reader is not None:
            self.reader.data(payload)

    def onMessageFrameEnd(self) -> None:
        pass

    def onMessageEnd(self) -> None:
        if not self.refused and self.reader is not None:
            try:
                self.pending.append(self.reader.end())
            except ProtocolError as e:
                self._refuse(e.code, e.text)

    def _refuse(self, code: int, text: str) -> None:
        """Hand the session what came before, then refuse, as the decoder would."""
        self.refused = True
        if self.pending:
            self._deliver()
        session = self.session
        if session is not None and not session.ended:
            session.refuse(code, text)

    def _protocol_violation(self, reason: str) -> bool:
        # Bytes that are not WebSocket frames: the Error a TCP client gets for
        # bytes that are not frames, then Autobahn's close.
        self._refuse(ErrorCode.BAD_FRAME, f"not a WebSocket frame: {reason}")
        return bool(super()._protocol_violation(reason))

    def _invalid_payload(self, reason: str) -> bool:
        self._refuse(ErrorCode.BAD_FRAME, f"invalid WebSocket payload: {reason}")
        return bool(super()._invalid_payload(reason))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if not self._lost:
            self._lost = True
            if self.session is not None:
                self.session.connectionLost(reason)


class MessageCache:
    """
    The WebSocket bytes of what many players are sent alike: in a tick, the
    players of one area get the very same update, framed once here rather
    than once each.  Bounded: emptied when it holds ``limit`` bytes.
    """

    def __init__(self, limit: int = 4 << 20) -> None:
        self.limit = limit
        self.framed: dict[bytes, bytes] = {}
        self.size = 0

    def __call__(self, data: bytes) -> bytes:
        framed = self.framed.get(data)
        if framed is None:
            framed = server_messages(data)
            if self.size > self.limit:
                self.framed.clear()
                self.size = 0
            self.framed[data] = framed
            self.size += len(data) + len(framed)
        return framed


class _ReactorTimer:
    """Autobahn's timers (handshake, close, ping) on the node's reactor."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def call_later(self, delay: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.reactor.callLater(delay, fn, *args, **kwargs)


class WebSocketPlayers(WebSocketServerFactory):
    """The factory of a node's WebSocket players, for any endpoint."""

    protocol = WebSocketPlayer  # type: ignore[assignment]

    def __init__(self, node: Node, settings: WebSocketSettings, reactor: Any) -> None:
        super().__init__(server=node.server_string, reactor=reactor)
        self.node = node
        self.allowed_origins = settings.allowed_origins
        self.messages = MessageCache()
        self._batched_timer = _ReactorTimer(reactor)
        self.setProtocolOptions(
            # The session bounds frames and sizes (MessageReader, FrameDecoder).
            maxFramePayloadSize=0, maxMessagePayloadSize=0,
            # A WebSocket error gets the session's Error, then a close.
            failByDrop=False,
            openHandshakeTimeout=node.limits.login_timeout,
            closeHandshakeTimeout=max(node.limits.shutdown_grace, 1.0),
            autoPingInterval=settings.ping, autoPingTimeout=settings.ping,
        )
        self.noisy = False


def websocket_factory(node: Node, settings: WebSocketSettings, reactor: Any) -> WebSocketPlayers:
    """The factory of ``node``'s WebSocket players."""
    return WebSocketPlayers(node, settings, reactor)
