"""
A bot's own TCP connection (:class:`~mmo.loadgen.link.TCPLink`) over real
sockets on 127.0.0.1, registered with a reactor directly and through a
:class:`~mmo.loadgen.hub.Hub`: frames cut across reads, writes the kernel
does not take at once, a reset, a protocol error, a refused connection and
a clean close.
"""

from __future__ import annotations

import random
import select
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from support import free_port, spin

from mmo.loadgen.bot import Bot
from mmo.loadgen.hub import Hub
from mmo.loadgen.link import TCPLink, read_buffer
from mmo.loadgen.stats import Interval, Stats
from mmo.wire import messages as m
from mmo.wire.fast import move_frame
from mmo.wire.frames import FrameDecoder

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the hub needs epoll")


class Fleet:
    """What a bot reports, kept for the test (the FleetView of a bot)."""

    zone = ""
    spread = "spawn"
    speed = 40.0
    move_period = 0.1
    ping_interval = 1.0
    chat_rate = 0.0

    def __init__(self) -> None:
        self.stats = Stats()
        self.interval = Interval()
        self.ages: list[float] = []
        self.rtts: list[float] = []
        self.ended: list[str] = []
        self.failed: list[str] = []

    def bot_connected(self, bot: Bot, seconds: float) -> None:
        pass

    def bot_logged_in(self, bot: Bot, seconds: float) -> None:
        pass

    def bot_ended(self, bot: Bot, reason: str) -> None:
        self.ended.append(reason)

    def update_age(self, seconds: float) -> None:
        self.ages.append(seconds)

    def rtt(self, seconds: float) -> None:
        self.rtts.append(seconds)

    def error(self, name: str) -> None:
        self.stats.errors[name] += 1


@pytest.fixture(params=["reactor", "hub"])
def fds(request: Any, reactor: Any) -> Iterator[Any]:
    """Where links register: the reactor itself, or a hub read by it."""
    if request.param == "reactor":
        yield reactor
        return
    hub = Hub(reactor)
    yield hub
    hub.close()


class Peer:
    """The server's end: a listening socket on 127.0.0.1 and what it accepts."""

    def __init__(self, rcvbuf: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.got = bytearray()
        self.eof = False

    def accept(self) -> socket.socket:
        self.listener.settimeout(5)
        self.conn, _ = self.listener.accept()
        self.conn.setblocking(False)
        return self.conn

    def read(self) -> bytearray:
        """Whatever has arrived (without waiting); ``eof`` once it is closed."""
        assert self.conn is not None
        while True:
            try:
                data = self.conn.recv(65536)
            except BlockingIOError:
                return self.got
            except ConnectionError:
                self.eof = True
                return self.got
            if not data:
                self.eof = True
                return self.got
            self.got += data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def connect(reactor: Any, fds: Any, peer: Peer) -> tuple[Bot, TCPLink, Fleet]:
    fleet = Fleet()
    bot = Bot(0, "bot0", "pw", fleet, reactor, random.Random(1))  # type: ignore[arg-type]
    link = TCPLink(reactor, fds, bot, read_buffer(), fleet.failed.append)
    link.connect("127.0.0.1", peer.port, 5.0)
    peer.accept()
    spin(reactor, lambda: bot.transport is not None, what="the connection")
    # What a bot says first: Hello and Login, in one write.
    spin(reactor, lambda: len(peer.read()) >= len(m.Hello(1, "mmo-loadgen").encode()),
         what="Hello")
    return bot, link, fleet


def registered(reactor: Any, fds: Any, link: TCPLink) -> bool:
    if isinstance(fds, Hub):
        return link in fds.links.values()
    return link in reactor.getReaders() or link in reactor.getWriters()


def test_frames_cut_anywhere_across_reads(reactor: Any, fds: Any) -> None:
    peer = Peer()
    try:
        bot, link, fleet = connect(reactor, fds, peer)
        hello = FrameDecoder.for_server().feed(bytes(peer.read()))
        assert hello == [m.Hello(1, "mmo-loadgen"), m.Login("bot0", "pw")]
        now = reactor.seconds()
        stream = (m.Welcome(1, "n", 65536).encode()
                  + m.EnterWorld(7, "world", 5, 5, 100, 100, 10, 10, "n").encode()
                  + m.Tick(1, now - 0.5).encode()
                  + m.Enter((m.EntityInfo(9, 0, 1, 1, "nine"),
                             m.EntityInfo(10, 0, 2, 2, "ten"))).encode()
                  + m.Moves(((9, 2.0, 2.0), (10, 3.0, 3.0), (11, 4.0, 4.0))).encode()
                  + m.Pong(1, now - 0.25, now).encode()
                  + m.Tick(2, now - 0.5).encode()
                  + m.Leave((9,)).encode())
        # In pieces of 1, 2, 3... bytes, each read before the next is sent:
        # every frame header and body is cut somewhere.
        sent = cut = 0
        size = 1
        while cut < len(stream):
            piece = stream[cut:cut + size]
            assert peer.conn is not None
            peer.conn.sendall(piece)
            cut += len(piece)
            sent += len(piece)
            spin(reactor, lambda sent=sent: bot.bytes_in >= sent, what="the piece")
            size = size % 7 + 1
        assert bot.state == "playing" and bot.entity_id == 7
        assert bot.frames_in == 8 and bot.ticks == 2
        assert bot.entity_updates == 2 + 3 + 1 and bot.visible == 1
        assert len(fleet.ages) == 2 and all(0.5 <= a < 5.5 for a in fleet.ages)
        assert len(fleet.rtts) == 1 and bot.pongs == 1
        assert not bot.partial and bot.protocol_error is None
        assert registered(reactor, fds, link)
    finally:
        peer.close()


def test_writes_the_kernel_does_not_take_wait_in_order(reactor: Any, fds: Any) -> None:
    peer = Peer(rcvbuf=4096)
    try:
        bot, link, _ = connect(reactor, fds, peer)
        assert link.socket is not None
        link.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        before = len(peer.got)
        # Far more than the two socket buffers hold, while the peer reads nothing.
        n = 50_000
        for seq in range(1, n + 1):
            link.write(move_frame(seq, 1.0, 2.0))
        assert link.pending, "the kernel took everything: nothing was tested"
        assert registered(reactor, fds, link)
        total = n * len(move_frame(0, 0.0, 0.0))
        spin(reactor, lambda: len(peer.read()) - before >= total, timeout=20,
             what="every byte written")
        moves = FrameDecoder.for_server().feed(bytes(peer.got[before:]))
        assert [mv.seq for mv in moves] == list(range(1, n + 1))
        assert not link.pending
        # Drained: no longer waiting to write (still reading).
        if isinstance(fds, Hub):
            assert fds.masks[link.fileno()] == select.EPOLLIN
        else:
            assert link not in reactor.getWriters()
        assert bot.state != "closed"
    finally:
        peer.close()


def test_a_reset_ends_the_bot_with_connection_lost(reactor: Any, fds: Any) -> None:
    peer = Peer()
    try:
        bot, link, fleet = connect(reactor, fds, peer)
        assert peer.conn is not None
        # Linger 0: close sends a reset, not a FIN.
        peer.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.conn.close()
        peer.conn = None
        spin(reactor, lambda: bot.state == "closed", what="the bot to see the reset")
        assert fleet.ended == ["connection_lost"] and bot.reason == "connection_lost"
        assert link.socket is None and not registered(reactor, fds, link)
        # Writing to a closed link is dropped, not raised.
        link.write(b"late")
    finally:
        peer.close()


def test_a_protocol_error_aborts_the_connection(reactor: Any, fds: Any) -> None:
    peer = Peer()
    try:
        bot, link, fleet = connect(reactor, fds, peer)
        assert peer.conn is not None
        # A Tick, then a frame of a type only clients send.
        peer.conn.sendall(m.Tick(1, 0.0).encode() + m.Hello(1, "x").encode())
        spin(reactor, lambda: bot.state == "closed", what="the bot to give up")
        assert isinstance(bot.protocol_error, m.ProtocolError)
        assert "unknown message type 0x01" in str(bot.protocol_error)
        assert fleet.ended == ["protocol_error"]
        assert fleet.stats.errors["protocol_error"] == 1
        assert link.socket is None and not registered(reactor, fds, link)
        spin(reactor, lambda: peer.read() is not None and peer.eof, what="the peer to see the end")
    finally:
        peer.close()


def test_a_refused_connection_is_reported_once(reactor: Any, fds: Any) -> None:
    fleet = Fleet()
    bot = Bot(0, "bot0", "pw", fleet, reactor, random.Random(1))  # type: ignore[arg-type]
    link = TCPLink(reactor, fds, bot, read_buffer(), fleet.failed.append)
    link.connect("127.0.0.1", free_port(), 5.0)
    spin(reactor, lambda: fleet.failed, what="the refusal")
    assert fleet.failed == ["connect_refused"]
    assert bot.transport is None and link.socket is None
    assert not registered(reactor, fds, link)
    link.cancel()
    assert fleet.failed == ["connect_refused"]


def test_a_clean_close_sends_everything_then_bye(reactor: Any, fds: Any) -> None:
    peer = Peer()
    try:
        bot, link, fleet = connect(reactor, fds, peer)
        start = len(peer.got)
        bot.ping(1.5)
        bot.close()
        spin(reactor, lambda: bot.state == "closed", what="the close")
        spin(reactor, lambda: peer.read() is not None and peer.eof, what="the peer to see EOF")
        msgs = FrameDecoder.for_server().feed(bytes(peer.got[start:]))
        assert msgs == [m.Ping(1, 1.5), m.Bye()]
        assert fleet.ended == ["closed_by_client"]
        assert not registered(reactor, fds, link)
    finally:
        peer.close()
