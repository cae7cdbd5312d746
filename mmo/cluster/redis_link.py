"""
One connection to a Redis (or Valkey) server, made again whenever it is
lost: the plumbing under :class:`~mmo.cluster.redis.RedisTransport`.

The protocols are txredisapi's (its parser, ``AUTH``, ``SELECT``, the
pub/sub replies); the connecting is done here rather than by txredisapi's
factories, so that it runs on the reactor it is given (tests run their own),
retries with the transport's backoff, and says why an attempt failed and
when a connection is usable, which the transport needs to log an outage
once and to subscribe again.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from ..config import RedisAddress

#: Seconds a connection attempt may take, TCP, TLS, AUTH and SELECT included.
CONNECT_TIMEOUT = 5.0
#: Seconds without an answer to a PING after which a connection counts as dead
#: (a server or network gone silent, which TCP does not report for minutes).
PING_TIMEOUT = 3.0
#: Seconds a closing connection is given to flush before it is cut.
CLOSE_TIMEOUT = 2.0


def is_ip(host: str, family: int) -> bool:
    """Whether ``host`` is an address of ``family`` (``socket.AF_INET`` or ``AF_INET6``)."""
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True


def endpoint_for(reactor: Any, address: RedisAddress, ca_pem: bytes | None = None) -> Any:
    """
    The client endpoint of ``address``: plain TCP to an IP address (nothing
    to resolve), a ``HostnameEndpoint`` for a name, with TLS for
    ``rediss://`` checked against ``ca_pem`` or the system's trust store.
    """
    host, port = address.host, address.port
    if is_ip(host, socket.AF_INET):
        ep: Any = TCP4ClientEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    elif is_ip(host, socket.AF_INET6):
        ep = TCP6ClientEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    else:
        ep = HostnameEndpoint(reactor, host, port, timeout=CONNECT_TIMEOUT)
    if address.tls:
        trust = Certificate.loadPEM(ca_pem) if ca_pem else None
        ep = TLSEndpoint(ep, optionsForClientTLS(host, trustRoot=trust), reactor)
    return ep


@implementer(IStreamClientEndpoint)
class TLSEndpoint:
    """
    TLS over another client endpoint, as ``wrapClientTLS``, with the TLS
    layer's timers on ``clock`` (``wrapClientTLS`` takes the global
    reactor's, which a reactor of one's own never runs).
    """

    def __init__(self, endpoint: Any, options: Any, clock: Any) -> None:
        self.endpoint = endpoint
        self.options = options
        self.clock = clock

    def connect(self, factory: Any) -> defer.Deferred:
        tls = TLSMemoryBIOFactory(self.options, True, factory, clock=self.clock)
        return self.endpoint.connect(tls).addCallback(lambda p: p.wrappedProtocol)


def backoff(first: float, most: float, rng: random.Random) -> Callable[[int], float]:
    """Seconds before attempt ``n`` (1, 2, ...): ``first``, doubling up to ``most``, ±20 %."""

    def delay(attempt: int) -> float:
        base = min(most, first * 2.0 ** min(attempt - 1, 30))
        return base * rng.uniform(0.8, 1.2)

    return delay


class _Said:
    """What both protocols add to txredisapi's: why the connection ended."""

    lost_reason: Any = None


def publish_prefix(channel: bytes) -> bytes:
    """The first bytes of every ``PUBLISH`` to ``channel``, in the Redis protocol."""
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(channel), channel)


class Answers:
    """
    What a datagram's ``PUBLISH`` gets back: it stands in txredisapi's reply
    queue where ``execute_command`` would put a ``Deferred``, for a reply
    that is only ever a count of receivers (or an error, given to ``refused``).
    """

    def __init__(self, refused: Callable[[Exception], None]) -> None:
        self.refused = refused

    def callback(self, reply: Any) -> None:
        if isinstance(reply, Exception) and not isinstance(reply, txredisapi.ConnectionError):
            self.refused(reply)


class PublisherProtocol(_Said, txredisapi.RedisProtocol):  # type: ignore[misc]
    """A connection that publishes (txredisapi's, with hiredis's parser when installed)."""

    def publish_datagram(self, prefix: bytes, data: bytes, answers: Answers) -> None:
        """
        ``PUBLISH`` ``data`` on the channel of ``prefix`` (:func:`publish_prefix`).
        A node publishes every datagram, so this skips what
        ``execute_command`` does per command (encoding each argument, two
        Deferreds): it writes the command whole and queues ``answers`` for
        its reply, in order with the other commands' replies.
        """
        self.transport.write(b"%s$%d\r\n%s\r\n" % (prefix, len(data), data))
        self.replyQueue.waiting.append(answers)

    def connectionLost(self, why: Any) -> None:
        self.lost_reason = why
        super().connectionLost(why)


class SubscriberProtocol(_Said, txredisapi.SubscriberProtocol):  # type: ignore[misc]
    """A connection in subscribed mode; every message goes to ``deliver(channel, data)``."""

    deliver: Callable[[bytes, bytes], None] = staticmethod(lambda channel, data: None)

    def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:
        self.deliver(channel, message)

    def connectionLost(self, why: Any) -> None:
        self.lost_reason = why
        super().connectionLost(why)


class _LinkFactory(Factory):
    """Builds a link's protocols, and is what txredisapi's protocol asks of a factory."""

    noisy = False
    #: txredisapi logs a failed AUTH itself when this is set; the link says it once.
    isLazy = False

    def __init__(self, link: RedisLink) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> Any:
        p = self.link.make_protocol()
        p.factory = self
        # txredisapi schedules through the global reactor unless told otherwise.
        p.callLater = self.link.clock.callLater
        return p

    def stopTrying(self) -> None:
        """AUTH or SELECT was refused: the link tries again with its backoff."""

    def connectionError(self, why: str) -> None:
        self.link.cause = why


class RedisLink:
    """
    One connection to Redis, made again with growing backoff (``delay(n)``
    seconds before the n-th attempt in a row) whenever an attempt fails or
    the connection is lost.  ``on_ready(protocol)`` is called each time a
    connection is usable (authenticated, its database selected);
    ``on_down(why, was_ready)`` after each failed attempt and each lost
    connection.  ``protocol`` is the usable connection, or ``None``.
    """

    log = Logger()

    def __init__(self, name: str, endpoint: Any, make_protocol: Callable[[], Any],
                 clock: Any, delay: Callable[[int], float],
                 on_ready: Callable[[Any], None], on_down: Callable[[str, bool], None]) -> None:
        self.name = name
        self.endpoint = endpoint
        self.make_protocol = make_protocol
        self.clock = clock
        self.delay = delay
        self.on_ready = on_ready
        self.on_down = on_down
        self.protocol: Any = None
        #: Why the last attempt failed or the connection was lost.
        self.error = ""
        #: Why this side cut the connection it has now, if it did.
        self.cause = ""
        #: Failed attempts since the last usable connection.
        self.attempts = 0
        self.running = False
        self._attempt: defer.Deferred | None = None
        self._retry: Any = None
        self._connection: Any = None  # connected, maybe not usable yet
        self._timeout: Any = None
        self._ping_sent: float | None = None

    def start(self) -> None:
        self.running = True
        self._connect()

    def stop(self) -> defer.Deferred:
        """Stop trying; close the connection (its pending writes flushed first)."""
        self.running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()
        conn = self._connection
        if conn is None or conn.transport is None:
            return defer.succeed(None)
        closed = conn.whenDisconnected()
        conn.transport.loseConnection()
        cut = self.clock.callLater(CLOSE_TIMEOUT, conn.transport.abortConnection)
        return closed.addCallback(lambda _: cut.cancel() if cut.active() else None)

    # -- connecting -------------------------------------------------------------

    def _connect(self) -> None:
        self._retry = None
        self._attempt = d = self.endpoint.connect(_LinkFactory(self))
        d.addCallbacks(self._made, self._failed)

    def _made(self, protocol: Any) -> None:
        self._attempt = None
        self._connection = protocol
        self._ping_sent = None
        self.cause = ""
        # A server that takes the connection and then says nothing (loading,
        # overloaded, a proxy with nothing behind it) does not hold it forever.
        self._timeout = self.clock.callLater(CONNECT_TIMEOUT, self._too_slow, protocol)
        protocol.whenDisconnected().addCallback(self._closed)
        protocol.whenConnected().addCallback(self._usable)

    def _too_slow(self, protocol: Any) -> None:
        if protocol is self._connection and self.protocol is None:
            self.cause = f"no answer within {CONNECT_TIMEOUT:g}s of connecting"
            protocol.transport.abortConnection()

    def _failed(self, failure: Any) -> None:
        self._attempt = None
        if not self.running:
            return  # cancelled by stop()
        self.error = failure.getErrorMessage()
        self._schedule()
        self.on_down(self.error, False)

    def _usable(self, protocol: Any) -> None:
        if protocol is not self._connection:
            return
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self.attempts = 0
        self.error = ""
        self.protocol = protocol
        self.on_ready(protocol)

    def _closed(self, protocol: Any) -> None:
        if protocol is not self._connection:
            return
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        was_ready = self.protocol is not None
        self.protocol = self._connection = None
        reason = protocol.lost_reason
        self.error = self.cause or (
            reason.getErrorMessage() if reason is not None else "connection closed")
        if not self.running:
            return
        self._schedule()
        self.on_down(self.error, was_ready)

    def _schedule(self) -> None:
        self.attempts += 1
        self._retry = self.clock.callLater(self.delay(self.attempts), self._connect)

    # -- keeping alive ----------------------------------------------------------------

    def check(self) -> None:
        """
        Called every second or so: a PING on the usable connection; one not
        answered within :data:`PING_TIMEOUT` cuts it (and so reconnects).
        """
        p = self.protocol
        if p is None:
            return
        now = self.clock.seconds()
        if self._ping_sent is not None:
            if now - self._ping_sent > PING_TIMEOUT:
                self.cause = f"no answer to PING within {PING_TIMEOUT:g}s"
                p.transport.abortConnection()
            return
        try:
            d = p.execute_command("PING")
        except txredisapi.ConnectionError:
            return
        self._ping_sent = now

        def answered(_: Any) -> None:
            if p is self.protocol:
                self._ping_sent = None

        d.addCallbacks(answered, lambda f: None)
