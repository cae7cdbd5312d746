"""
The direct socket write of a tick's update, over real TCP sockets on
127.0.0.1 and a real (private) reactor.

The server side is a Twisted listening port; the peer is a plain socket the
test reads, or does not read, when it wants.  Every wait polls the reactor
and the peer with a deadline; nothing sleeps.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import self_signed
from twisted.internet import error, tcp
from twisted.internet.interfaces import IOpenSSLContextFactory, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from mmo.server import fastwrite

DEADLINE = 10.0


class Reactor(SelectReactor):
    """A reactor of the test's own, turned by hand, never run."""

    def turn_until(self, done: Callable[[], bool], what: str,
                   also: Callable[[], None] | None = None) -> None:
        end = time.monotonic() + DEADLINE
        for _ in range(1_000_000):
            if done():
                return
            if time.monotonic() > end:
                break
            self.iterate(0.01)
            if also is not None:
                also()
        raise AssertionError(f"gave up waiting for {what}")


class ServerSide(Protocol):
    """The node's end: it writes with :func:`fastwrite.write`."""

    def __init__(self, accepted: list[ServerSide]) -> None:
        accepted.append(self)
        self.made = False
        self.lost: Failure | None = None
        self.losses = 0

    def connectionMade(self) -> None:
        self.made = True

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = reason
        self.losses += 1


@implementer(IPushProducer)
class ProducerRecorder:
    """Stands where a session stands: a streaming producer of its transport."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


class Pair:
    """A Twisted server connection and the plain peer socket at its other end."""

    def __init__(self, reactor: Reactor, server: ServerSide, peer: socket.socket) -> None:
        self.reactor = reactor
        self.server = server
        self.peer = peer
        self.transport: Any = server.transport

    def queued(self) -> int:
        """Bytes the transport holds that the kernel has not taken yet."""
        t = self.transport
        return t._tempDataLen + len(t.dataBuffer) - t.offset

    def read_all(self, size: int) -> bytes:
        """Read ``size`` bytes at the peer while the reactor sends what it holds."""
        got = bytearray()

        def read() -> None:
            while len(got) < size:
                try:
                    chunk = self.peer.recv(256 * 1024)
                except BlockingIOError:
                    return
                if not chunk:
                    raise AssertionError("the server closed the connection")
                got.extend(chunk)

        self.peer.setblocking(False)
        read()
        self.reactor.turn_until(lambda: len(got) >= size, f"{size} bytes at the peer",
                                also=read)
        return bytes(got)


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    r = Reactor()
    yield r
    for selectable in r.removeAll():
        if isinstance(selectable, tcp.Connection):
            selectable.connectionLost(Failure(error.ConnectionDone()))
    waker: Any = getattr(r, "waker", None)
    if waker is not None:
        r.removeReader(waker)
        waker.connectionLost(None)


@pytest.fixture
def logged_errors() -> Iterator[list[dict]]:
    errors: list[dict] = []

    def observe(event: dict) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    yield errors
    globalLogPublisher.removeObserver(observe)


@pytest.fixture
def connect(reactor: Reactor) -> Iterator[Callable[..., Pair]]:
    ports: list[Any] = []
    peers: list[socket.socket] = []

    def make(peer_rcvbuf: int | None = None, server_sndbuf: int | None = None) -> Pair:
        accepted: list[ServerSide] = []
        port = reactor.listenTCP(0, Factory.forProtocol(lambda: ServerSide(accepted)),
                                 interface="127.0.0.1")
        ports.append(port)
        peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        peers.append(peer)
        if peer_rcvbuf is not None:
            # Before connect, so that the window offered is small from the start.
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, peer_rcvbuf)
        peer.settimeout(DEADLINE)
        peer.connect(("127.0.0.1", port.getHost().port))
        reactor.turn_until(lambda: bool(accepted) and accepted[0].made, "the accept")
        pair = Pair(reactor, accepted[0], peer)
        if server_sndbuf is not None:
            pair.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                             server_sndbuf)
        return pair

    yield make
    for peer in peers:
        peer.close()
    for port in ports:
        port.stopListening()
    reactor.iterate(0)


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes in which any misordering or loss shows."""
    block = b"".join(struct.pack(">I", (seed << 24) + i) for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


# ---------------------------------------------------------------- the checks


def test_this_twisted_allows_the_direct_path() -> None:
    assert fastwrite.DIRECT
    assert fastwrite.probe(tcp.Connection)


def test_probe_refuses_a_connection_that_buffers_elsewhere() -> None:
    class Elsewhere(tcp.Connection):
        def write(self, data: bytes) -> None:
            self.pending = data  # not where fastwrite looks

    class Renamed(tcp.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            del self._tempDataLen

    assert not fastwrite.probe(Elsewhere)
    assert not fastwrite.probe(Renamed)


# ---------------------------------------------------------------- real sockets


def test_idle_connection_sends_at_once(connect: Callable[..., Pair]) -> None:
    pair = connect()
    assert type(pair.transport) in fastwrite.TCP_TYPES
    fastwrite.write(pair.transport, b"hello")
    # Nothing queued and the reactor not turned: the bytes are already sent.
    assert pair.queued() == 0
    assert pair.peer.recv(64) == b"hello"


def test_partial_write_keeps_the_rest_queued_in_order(connect: Callable[..., Pair]) -> None:
    pair = connect(peer_rcvbuf=4096, server_sndbuf=4096)
    first = pattern(4 * 1024 * 1024, seed=1)
    fastwrite.write(pair.transport, first)
    queued = pair.queued()
    # The kernel took some (the connection was idle) but not all of it.
    assert 0 < queued < len(first)
    # Later writes go behind the queued rest, not straight to the socket.
    fastwrite.write(pair.transport, b"tail")
    assert pair.queued() == queued + 4
    assert pair.read_all(len(first) + 4) == first + b"tail"
    assert pair.queued() == 0


def test_full_kernel_buffer_queues_everything(connect: Callable[..., Pair]) -> None:
    pair = connect(peer_rcvbuf=4096, server_sndbuf=4096)
    # Fill the kernel's buffers behind Twisted's back (its own is empty).
    skt = pair.transport.socket
    filled = bytearray()
    chunk = pattern(64 * 1024, seed=2)
    for _ in range(10_000):
        try:
            filled += chunk[: skt.send(chunk)]
        except BlockingIOError:
            break
    else:
        raise AssertionError("the kernel's buffer never filled")
    assert pair.queued() == 0
    fastwrite.write(pair.transport, b"next")
    assert pair.queued() == 4
    assert pair.read_all(len(filled) + 4) == bytes(filled) + b"next"


def test_producer_is_paused_past_buffer_size_and_resumed(
        connect: Callable[..., Pair]) -> None:
    pair = connect(peer_rcvbuf=4096, server_sndbuf=4096)
    producer = ProducerRecorder()
    pair.transport.bufferSize = 64 * 1024
    pair.transport.registerProducer(producer, True)
    fastwrite.write(pair.transport, b"x" * 1024)
    assert producer.calls == []
    big = pattern(1024 * 1024, seed=3)
    fastwrite.write(pair.transport, big)
    assert pair.queued() > 64 * 1024
    assert producer.calls == ["pause"]
    fastwrite.write(pair.transport, b"more")
    # Queued behind the rest, and the producer told again (as transport.write does).
    assert producer.calls == ["pause", "pause"]
    assert pair.read_all(1024 + len(big) + 4) == b"x" * 1024 + big + b"more"
    pair.reactor.turn_until(lambda: "resume" in producer.calls, "resumeProducing")
    assert pair.queued() == 0


def test_reset_peer_does_not_raise_and_the_connection_ends(
        connect: Callable[..., Pair], logged_errors: list[dict]) -> None:
    pair = connect()
    fastwrite.write(pair.transport, b"before")
    assert pair.peer.recv(64) == b"before"
    # Close with a reset (linger 0) and write before the reactor notices.
    pair.peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    pair.peer.close()
    for _ in range(3):
        fastwrite.write(pair.transport, pattern(100_000))
    pair.reactor.turn_until(lambda: pair.server.lost is not None, "connectionLost")
    assert pair.server.losses == 1
    assert pair.server.lost is not None
    assert pair.server.lost.check(error.ConnectionLost, error.ConnectionDone)
    assert not pair.transport.connected
    # Writing to the ended connection is a quiet no-op, as transport.write is.
    fastwrite.write(pair.transport, b"after")
    assert logged_errors == []


def test_in_memory_transport_uses_transport_write() -> None:
    t = StringTransport()
    fastwrite.write(t, b"abc")
    assert t.value() == b"abc"


def test_unix_socket_uses_transport_write(reactor: Reactor, tmp_path: Path) -> None:
    accepted: list[ServerSide] = []
    path = str(tmp_path / "s.sock")
    port = reactor.listenUNIX(path, Factory.forProtocol(lambda: ServerSide(accepted)))
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        peer.settimeout(DEADLINE)
        peer.connect(path)
        reactor.turn_until(lambda: bool(accepted) and accepted[0].made, "the accept")
        transport: Any = accepted[0].transport
        # A subclass of tcp.Server, so only the exact type test keeps it out.
        assert isinstance(transport, tcp.Server)
        assert type(transport) not in fastwrite.TCP_TYPES
        fastwrite.write(transport, b"abc")
        assert transport._tempDataLen == 3  # queued for the reactor
        reactor.turn_until(lambda: transport._tempDataLen == 0, "the reactor's send")
        assert peer.recv(64) == b"abc"
    finally:
        peer.close()
        port.stopListening()
        reactor.iterate(0)


@implementer(IOpenSSLContextFactory)
class ServerContext:
    """A context factory: what ``startTLS`` needs, with no
    deprecated pyOpenSSL certificate objects."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def getContext(self) -> Any:
        return self.context


def test_tls_over_a_tcp_connection_uses_transport_write(
        connect: Callable[..., Pair], reactor: Reactor, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from OpenSSL import SSL
    from twisted.protocols import tls as tls_module

    # startTLS gives its TLS layer the global reactor as clock (to batch small
    # writes); this test turns a reactor of its own.
    monkeypatch.setattr(tls_module, "_get_default_clock", lambda: reactor)
    key, cert = self_signed(tmp_path)
    server_ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    server_ctx.use_certificate_file(str(cert))
    server_ctx.use_privatekey_file(str(key))
    pair = connect()
    pair.transport.startTLS(ServerContext(server_ctx))
    # Still a plain TCP transport, but its bytes must go through TLS.
    assert type(pair.transport) in fastwrite.TCP_TYPES and pair.transport.TLS
    client_ctx = ssl.create_default_context(cafile=str(cert))
    pair.peer.setblocking(False)
    tls = client_ctx.wrap_socket(pair.peer, server_hostname="127.0.0.1",
                                 do_handshake_on_connect=False)
    pair.peer = tls

    def handshake() -> bool:
        try:
            tls.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        return True

    pair.reactor.turn_until(handshake, "the TLS handshake")
    fastwrite.write(pair.transport, b"secret")
    got = bytearray()

    def read() -> None:
        try:
            got.extend(tls.recv(64))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass

    pair.reactor.turn_until(lambda: len(got) >= 6, "the decrypted bytes", also=read)
    assert bytes(got) == b"secret"


def test_lose_connection_after_a_direct_write_closes_cleanly(
        connect: Callable[..., Pair], logged_errors: list[dict]) -> None:
    pair = connect()
    fastwrite.write(pair.transport, b"last words")
    pair.transport.loseConnection()
    assert pair.peer.recv(64) == b"last words"
    pair.reactor.turn_until(lambda: pair.server.lost is not None, "the close")
    assert pair.server.lost is not None and pair.server.lost.check(error.ConnectionDone)
    assert pair.peer.recv(64) == b""  # then the end of the stream
    assert logged_errors == []
