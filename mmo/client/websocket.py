"""
A game client over WebSocket, as a browser connects: any client
``Protocol`` of this package (a :class:`~mmo.client.base.ClientConnection`,
a load-generator bot) runs unchanged inside :class:`WebSocketClient`.

The inner protocol is connected when the opening handshake is done; what it
writes goes out as one binary message per frame
(:func:`~mmo.wire.websocket.split_frames`), and the messages of one read
reach its ``dataReceived`` together, as a TCP read would (whole binary
messages are read by :func:`~mmo.wire.websocket.read_messages`, the rest
by Autobahn).  A handshake the
server refuses (or a port that speaks no WebSocket) ends in ``failed`` with
``websocket_refused`` instead, before the inner protocol ever connects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..wire.websocket import read_messages, split_frames

_OPEN = WebSocketProtocol.STATE_OPEN
_CLOSED = WebSocketProtocol.STATE_CLOSED
#: The largest message read by the fast pass (larger ones go to Autobahn).
_FAST_LIMIT = 65535
#: Why a connection failed when the server would not open a WebSocket.
REFUSED = "websocket_refused"


@implementer(ITransport)
class FrameTransport:
    """What the inner protocol writes to: one binary message per frame."""

    def __init__(self, ws: WebSocketClient) -> None:
        self.ws = ws
        self.tcp: Any = ws.transport

    def write(self, data: bytes) -> None:
        ws = self.ws
        if ws.state != _OPEN:
            return
        for frame in split_frames(data):
            ws.sendMessage(frame, isBinary=True)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        ws = self.ws
        if ws.state == _OPEN:
            ws.sendClose(1000)
        else:
            ws.dropConnection(abort=False)

    def abortConnection(self) -> None:
        self.ws.dropConnection(abort=True)

    def getPeer(self) -> Any:
        return self.tcp.getPeer()

    def getHost(self) -> Any:
        return self.tcp.getHost()

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.tcp.setTcpNoDelay(enabled)


class WebSocketClient(WebSocketClientProtocol):
    """Autobahn's client framing around ``inner``."""

    def __init__(self, inner: Protocol, factory: WebSocketClientFactory,
                 failed: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.factory = factory
        self.failed = failed
        self.opened = False
        #: The payloads of the current read, for ``inner`` in one call.
        self.pending: list[bytes] = []
        self._message: list[bytes] = []

    def onOpen(self) -> None:
        self.opened = True
        self.inner.makeConnection(FrameTransport(self))  # type: ignore[arg-type]

    def dataReceived(self, data: bytes) -> None:
        # Autobahn's parser, without the debug line of its dataReceived, whose
        # arguments it formats (in colour) on every read, logged or not.
        self._dataReceived(data)
        if self.pending:
            payloads, self.pending = self.pending, []
            self.inner.dataReceived(b"".join(payloads))

    def processData(self) -> bool:
        # Whole binary messages (nearly all a node sends) in one pass; the rest
        # (control frames, the partial frame at the end of a read) by Autobahn.
        if self.current_frame is None and not self.inside_message and self.state == _OPEN:
            payloads, used = read_messages(self.data, False, _FAST_LIMIT)
            if used:
                self.data = self.data[used:]
                self.pending.extend(payloads)
                if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
                    self._cancelAutoPingTimeoutCall()
                return bool(self.data) and self.state != _CLOSED
        return bool(super().processData())

    # Messages are collected by hand (not Autobahn's onMessage): no copy
    # and no event per message, as each one is a small frame.
    def onMessageBegin(self, isBinary: bool) -> None:
        self._message = []

    def onMessageFrameBegin(self, length: int) -> None:
        pass

    def onMessageFrameData(self, payload: bytes) -> None:
        self._message.append(payload)

    def onMessageFrameEnd(self) -> None:
        pass

    def onMessageEnd(self) -> None:
        self.pending.extend(self._message)
        self._message = []

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if self.pending:
            payloads, self.pending = self.pending, []
            self.inner.dataReceived(b"".join(payloads))
        if self.opened:
            self.opened = False
            self.inner.connectionLost(reason)
        elif self.failed is not None:
            failed, self.failed = self.failed, None
            failed(REFUSED)


def client_factory(host: str, port: int, reactor: Any, path: str = "/",
                   origin: str | None = None) -> WebSocketClientFactory:
    """A factory for the WebSocket clients of one node's ``--websocket`` port."""
    factory = WebSocketClientFactory(f"ws://{host}:{port}{path}", origin=origin,
                                     reactor=reactor)
    # A client need not ping: the node pings, and the game has its own Ping.
    factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=30)
    return factory


def connect(reactor: Any, factory: WebSocketClientFactory, inner: Protocol,
            timeout: float = 10.0, failed: Callable[[str], None] | None = None) -> Deferred:
    """
    Connect ``inner`` through ``factory``'s node; the ``Deferred`` fires
    with the WebSocket protocol once TCP is connected (``inner`` connects
    when the handshake is done, or ``failed`` is called).
    """
    endpoint = TCP4ClientEndpoint(reactor, factory.host, factory.port, timeout=timeout)
    return connectProtocol(endpoint, WebSocketClient(inner, factory, failed))
