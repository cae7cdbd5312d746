"""
Players over WebSocket, in memory: Autobahn's server protocol on a
``StringTransport`` around the same ``PlayerSession`` as TCP, on a node
driven by a ``Clock``.  The session's limits, errors, backpressure and
stopped reading are checked through the WebSocket door.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from wsclient import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    close_of,
    parse_frames,
    upgrade_request,
)

from mmo.config import ConfigError
from mmo.server import fastwrite
from mmo.server.websocket import (
    MessageTransport,
    WebSocketPlayer,
    WebSocketPlayers,
    origin_allowed,
)
from mmo.settings import NODE_SCHEMA
from mmo.testing import FakePlayer, FakeTransport, make_node, node_settings
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder
from mmo.wire.messages import ErrorCode


class TcpTransport(FakeTransport):
    """A ``FakeTransport`` that, as a TCP one, may unregister no producer."""

    def unregisterProducer(self) -> None:
        if self.producer is not None:
            super().unregisterProducer()


class Browser:
    """A WebSocket client of ``factory`` over a ``FakeTransport``."""

    def __init__(self, factory: WebSocketPlayers, origin: str | None = None,
                 host: str = "127.0.0.1") -> None:
        self.transport = TcpTransport()
        self.transport.peerAddr = IPv4Address("TCP", host, 50000)  # type: ignore[assignment]
        self.transport.hostAddr = IPv4Address("TCP", "127.0.0.1", 4080)  # type: ignore[assignment]
        self.protocol: Any = factory.buildProtocol(self.transport.peerAddr)
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(upgrade_request("127.0.0.1", 4080, origin))
        head, _, rest = self.transport.value().partition(b"\r\n\r\n")
        self.status = head.split(b"\r\n", 1)[0].decode()
        self.transport.clear()
        self.buffer = rest
        self.decoder = FrameDecoder.for_client()
        #: Every message received, and the close frame once one came.
        self.log: list[m.Message] = []
        self.close_frame: tuple[int, str] | None = None
        self.messages: list[bytes] = []

    @property
    def session(self) -> Any:
        return self.protocol.session

    def send(self, *msgs: m.Message) -> None:
        self.protocol.dataReceived(b"".join(client_frame(msg.encode()) for msg in msgs))

    def send_raw(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def login(self, name: str) -> m.EnterWorld:
        self.send(m.Hello(), m.Login(name, "pw"))
        return self.expect(m.EnterWorld)

    def received(self) -> list[m.Message]:
        frames, self.buffer = parse_frames(self.buffer + self.transport.value())
        self.transport.clear()
        out = []
        for opcode, payload in frames:
            if opcode == OP_BINARY:
                self.messages.append(payload)
                # Each message is exactly one frame.
                msgs = self.decoder.feed(payload)
                assert len(msgs) == 1 and self.decoder.buffered == 0
                out.extend(msgs)
            elif opcode == OP_CLOSE:
                self.close_frame = close_of(payload)
        self.log.extend(out)
        return out

    def expect(self, kind: type[m.Message]) -> Any:
        for msg in self.received():
            if isinstance(msg, kind):
                return msg
        raise AssertionError(f"no {kind.__name__} in {self.log[-10:]}")

    def errors(self) -> list[tuple[int, str]]:
        self.received()
        return [(e.code, e.text) for e in self.log if isinstance(e, m.Error)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def players(clock: Clock, **overrides: Any) -> WebSocketPlayers:
    overrides.setdefault("websocket", ["tcp:4080"])
    node = make_node(clock, **overrides)
    return WebSocketPlayers(node, node.settings.websocket, clock)


def test_a_browser_logs_in_and_gets_one_frame_per_message(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory, origin="http://127.0.0.1:9100")
    assert " 101 " in alice.status + " "
    enter = alice.login("alice")
    assert enter.zone == "world"
    assert isinstance(alice.protocol.session.transport, MessageTransport)
    bob = FakePlayer(factory.node, "bob")
    factory.node.tick()
    alice.received()
    clock.advance(0.1)
    bob.send(m.Move(1, bob.entity.x + 1, bob.entity.y))
    factory.node.tick()
    got = alice.received()
    # The tick's one write became one message per frame: Tick, then Moves.
    assert [type(x) for x in got][:2] == [m.Tick, m.Moves]
    assert any(mv[0] == bob.entity_id for msg in got if isinstance(msg, m.Moves)
               for mv in msg.moves)
    # The TCP player sees the browser player like any other.
    assert "alice" in bob.names_seen()


def test_the_fast_write_path_stays_with_tcp(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    transport = alice.session.transport
    assert type(transport) not in fastwrite.TCP_TYPES
    alice.session.write_update(m.Who().encode() + m.Bye().encode())
    parsed, rest = parse_frames(alice.transport.value())
    assert [p for _, p in parsed][-2:] == [m.Who().encode(), m.Bye().encode()] and rest == b""


@pytest.mark.parametrize("origin, host, allowed, ok", [
    (None, "127.0.0.1", (), True),
    ("", "127.0.0.1", (), True),
    ("http://127.0.0.1:9100", "127.0.0.1", (), True),
    ("https://play.example.com", "play.example.com", (), True),
    ("http://evil.example", "127.0.0.1", (), False),
    ("null", "127.0.0.1", (), False),
    ("https://a.example.com", "127.0.0.1", ("https://*.example.com",), True),
    ("https://example.com.evil", "127.0.0.1", ("https://*.example.com",), False),
    ("http://127.0.0.1:9100", "127.0.0.1", ("https://play.example.com",), False),
    ("http://anything", "x", ("*",), True),
    ("http://[::1]:9100", "[::1]", (), True),
])
def test_origins(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(origin or "", host, allowed) is ok


def test_a_page_of_another_site_is_refused_at_the_handshake(clock: Clock) -> None:
    factory = players(clock)
    evil = Browser(factory, origin="http://evil.example")
    assert " 403 " in evil.status + " "
    assert evil.protocol.session is None and not factory.node.connections
    allowed = players(clock, allowed_origin=["http://evil.example"])
    assert " 101 " in Browser(allowed, origin="http://evil.example").status + " "


def test_a_text_message_gets_bad_frame_then_a_close(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    alice.send_raw(client_frame(b"hello", OP_TEXT))
    assert alice.errors()[-1][0] == ErrorCode.BAD_FRAME
    assert "text messages" in alice.errors()[-1][1]
    assert alice.close_frame == (1000, "")
    assert factory.node.refusals["bad_frame"] == 1
    assert "alice" not in factory.node.sessions


def test_a_huge_message_is_refused_from_its_header(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    # Only the WebSocket header of a 10 MB message: refused before its bytes.
    key = b"\x01\x02\x03\x04"
    alice.send_raw(struct.pack(">BBQ", 0x82, 0x80 | 127, 10 * 1024 * 1024) + key)
    assert alice.errors()[-1][0] == ErrorCode.FRAME_TOO_LARGE
    assert alice.close_frame == (1000, "")
    # What follows is read and dropped: the session holds none of it.
    alice.send_raw(b"\x00" * 100_000)
    assert alice.session.decoder.buffered == 0 and not alice.protocol.reader.parts


def test_two_frames_in_one_message_are_a_bad_frame(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    alice.send_raw(client_frame(m.Ping(1, 0.0).encode() + m.Ping(2, 0.0).encode()))
    assert alice.errors()[-1][0] == ErrorCode.BAD_FRAME
    assert "exactly one frame" in alice.errors()[-1][1]


def test_frames_before_a_bad_message_are_handled_first(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    alice.send_raw(client_frame(m.Ping(7, 1.5).encode()) + client_frame(b"hi", OP_TEXT))
    got = alice.received()
    assert [type(x) for x in got] == [m.Pong, m.Error]


def test_garbage_after_the_handshake_gets_bad_frame_then_a_close(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    # An unmasked frame with reserved bits set: not a client's WebSocket frame.
    alice.send_raw(b"\xf2\x05GARBAGE")
    code, text = alice.errors()[-1]
    assert code == ErrorCode.BAD_FRAME and text.startswith("not a WebSocket frame")
    assert alice.close_frame is not None
    assert "alice" not in factory.node.sessions


def test_a_bad_protocol_frame_inside_a_message_gets_the_tcp_error(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    alice.send_raw(client_frame((1).to_bytes(4, "big") + b"\x99"))  # a server type
    assert alice.errors()[-1] == (ErrorCode.BAD_FRAME, "unknown message type 0x99")


def test_backpressure_pauses_updates_and_reading_then_resyncs(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    tcp = alice.transport
    # The session registered itself on the TCP connection beneath.
    assert tcp.producer is alice.session and tcp.streaming
    assert tcp.bufferSize == factory.node.limits.output_buffer
    bob = FakePlayer(factory.node, "bob")
    factory.node.tick()
    alice.received()
    alice.session.pauseProducing()  # the socket's buffer passed output_buffer
    assert tcp.producerState == "paused"  # not read any more
    clock.advance(0.1)
    bob.send(m.Move(1, bob.entity.x + 1, bob.entity.y))
    factory.node.tick()
    assert alice.received() == []  # no updates while paused
    alice.session.resumeProducing()
    assert tcp.producerState == "producing"
    factory.node.tick()
    assert m.Resync in [type(x) for x in alice.received()]


def test_over_budget_the_websocket_is_not_read(clock: Clock) -> None:
    factory = players(clock, request_rate=10, request_burst=20)
    alice = Browser(factory)
    alice.login("alice")
    alice.send(*[m.Ping(i, 0.0) for i in range(40)])
    assert alice.transport.producerState == "paused"
    assert len([x for x in alice.received() if isinstance(x, m.Pong)]) < 40
    for _ in range(10):
        clock.advance(0.5)
    assert alice.transport.producerState == "producing"
    alice.received()
    assert len([x for x in alice.log if isinstance(x, m.Pong)]) == 40


def test_a_slow_reader_is_dropped(clock: Clock) -> None:
    factory = players(clock, stuck_timeout=3)
    alice = Browser(factory)
    alice.login("alice")
    alice.session.pauseProducing()
    clock.advance(4)
    factory.node.sweep()
    assert alice.errors()[-1][0] == ErrorCode.SLOW_READER
    assert alice.transport.disconnecting
    assert "alice" not in factory.node.sessions


def test_bye_and_shutdown_close_with_1000(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    alice.send(m.Bye())
    alice.received()
    assert alice.close_frame == (1000, "")
    bob = Browser(factory)
    bob.login("bob")
    factory.node.shutdown()
    notice = bob.expect(m.Notice)
    assert notice.kind == m.NoticeKind.SHUTDOWN and bob.close_frame == (1000, "")


def test_fragments_and_control_frames_go_through_autobahn(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    ping = m.Ping(9, 2.5).encode()
    # One message in two WebSocket frames, a WebSocket ping between them.
    alice.send_raw(client_frame(ping[:6], OP_BINARY, fin=False)
                   + client_frame(b"are you there", OP_PING)
                   + client_frame(ping[6:], 0))
    frames, _ = parse_frames(alice.transport.value())
    assert (OP_PONG, b"are you there") in frames
    assert alice.expect(m.Pong).token == 9


def test_keepalive_pings_drop_a_silent_peer(clock: Clock) -> None:
    factory = players(clock, websocket_ping=5)
    alice = Browser(factory)
    alice.login("alice")
    bob = Browser(factory)
    bob.login("bob")
    clock.advance(5)
    for browser in (alice, bob):
        assert OP_PING in [op for op, _ in parse_frames(browser.transport.value())[0]]
    # Traffic answers for a peer (as Autobahn counts any data frame); silence does not.
    alice.send(m.Ping(1, 0.0))
    clock.advance(5.5)
    assert not alice.transport.disconnecting
    assert bob.transport.disconnecting


def test_the_session_ends_with_the_connection(clock: Clock) -> None:
    factory = players(clock)
    alice = Browser(factory)
    alice.login("alice")
    assert factory.node.connections
    alice.protocol.connectionLost(Failure(ConnectionDone()))
    assert not factory.node.connections and "alice" not in factory.node.sessions
    # A connection that never finished its handshake has no session to end.
    half: WebSocketPlayer = factory.buildProtocol(None)  # type: ignore[assignment]
    half.makeConnection(TcpTransport())
    half.connectionLost(Failure(ConnectionDone()))


def test_an_endless_handshake_is_refused(clock: Clock) -> None:
    factory = players(clock)
    transport = TcpTransport()
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20_000)
    assert transport.value().startswith(b"HTTP/1.1 431")
    assert transport.disconnecting


def test_the_handshake_has_the_login_timeout(clock: Clock) -> None:
    factory = players(clock, login_timeout=2)
    transport = TcpTransport()
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(transport)
    clock.advance(2.5)
    assert transport.disconnecting


def test_a_plain_get_says_where_the_client_is(clock: Clock) -> None:
    factory = players(clock)
    transport = TcpTransport()
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4080\r\n\r\n")
    assert b"/play" in transport.value()


def test_websocket_keys() -> None:
    settings = node_settings(websocket=["4080", "ssl:4443:privateKey=k.pem"],
                             allowed_origin=["https://*.example.com"], websocket_ping=5)
    ws = settings.websocket
    assert ws.enabled and ws.endpoints == ("tcp:4080", "ssl:4443:privateKey=k.pem")
    assert ws.listen_endpoints[0] == "tcp:4080:backlog=4096"
    assert ws.allowed_origins == ("https://*.example.com",) and ws.ping == 5.0
    assert not node_settings().websocket.enabled
    for key, value in (("websocket", "nowhere"), ("allowed_origin", "example.com"),
                       ("allowed_origin", ""), ("websocket_ping", -1)):
        with pytest.raises(ConfigError, match=key):
            NODE_SCHEMA.check(key, [value] if key != "websocket_ping" else value, f"--{key}")
