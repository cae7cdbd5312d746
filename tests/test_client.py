"""The client library and mmo-client's commands, in memory (no sockets, no real time)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface.verify import verifyObject

from mmo.client import ClientListener, GameClient, IClientListener, LoginFailed
from mmo.client.base import connect_failure_reason, error_name
from mmo.client.cli import CommandRunner
from mmo.client.commands import CommandError, LinePrinter, parse_command
from mmo.server.session import PlayerSession
from mmo.testing import FakePlayer, make_node
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder


class Recorder(ClientListener):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def entity_entered(self, entity):
        self.events.append(("enter", entity.name))

    def entity_left(self, entity):
        self.events.append(("leave", entity.name))

    def chat_received(self, channel, sender, text):
        self.events.append(("chat", channel, sender, text))

    def corrected(self, msg):
        self.events.append(("correction", msg.reason))

    def error_received(self, code, text):
        self.events.append(("error", code))

    def notice_received(self, kind, text):
        self.events.append(("notice", kind))

    def closed(self, reason):
        self.events.append(("closed", reason))


def pair(node, name, listener=None, password="pw"):
    """A GameClient and a server session connected in memory by iosim."""
    client = GameClient(name, password, node.clock, listener)
    server = PlayerSession(node)
    pump = iosim.connect(server, iosim.makeFakeServer(server),
                         client, iosim.makeFakeClient(client), greet=False)
    pump.flush()
    return client, server, pump


def test_listeners_verify():
    verifyObject(IClientListener, ClientListener())
    verifyObject(IClientListener, LinePrinter(print))


def test_login_sees_others_and_chat():
    clock = Clock()
    node = make_node(clock)
    bob = FakePlayer(node, "bob")
    events = Recorder()
    client, _, pump = pair(node, "alice", events)
    logged = []
    client.when_in_world().addCallback(logged.append)
    pump.flush()
    assert logged == [client]
    assert client.state == "playing" and client.zone == "world"
    node.tick()
    pump.flush()
    assert ("enter", "bob") in events.events
    assert {e.name for e in client.entities.values()} == {"bob"}
    bob.send(m.Chat(m.Channel.SAY, "hi alice"))
    pump.flush()
    assert ("chat", m.Channel.SAY, "bob", "hi alice") in events.events
    bob.disconnect()
    node.tick()
    pump.flush()
    assert ("leave", "bob") in events.events
    assert client.entities == {}


def test_who_and_rtt_deferreds():
    clock = Clock()
    node = make_node(clock)
    client, _, pump = pair(node, "alice")
    pump.flush()
    replies = []
    client.who().addCallback(replies.append)
    pump.flush()
    assert replies[0].total == 1 and replies[0].players[0][0] == "alice"
    rtts = []
    client.measure_rtt().addCallback(rtts.append)
    clock.advance(0.25)
    pump.flush()
    assert rtts == [pytest.approx(0.25)]


def test_correction_and_error_reach_listener():
    clock = Clock()
    node = make_node(clock)
    events = Recorder()
    client, _, pump = pair(node, "alice", events)
    pump.flush()
    x, y = client.x, client.y
    client.move(x + 500, y)  # far too fast
    client.whisper("nobody", "hello?")
    pump.flush()
    assert ("correction", m.CorrectionReason.TOO_FAST) in events.events
    assert (client.x, client.y) == pytest.approx((x, y), abs=1e-3)
    assert ("error", m.ErrorCode.UNKNOWN_PLAYER) in events.events


def test_bad_password_fails_login():
    clock = Clock()
    node = make_node(clock)
    FakePlayer(node, "carol", password="right").disconnect()
    events = Recorder()
    client = GameClient("carol", "wrong", clock, events)
    failures = []
    client.when_in_world().addErrback(failures.append)
    server = PlayerSession(node)
    iosim.connect(server, iosim.makeFakeServer(server),
                  client, iosim.makeFakeClient(client), greet=False).flush()
    assert failures and failures[0].check(LoginFailed)
    assert failures[0].value.reason == "auth_failed"
    assert ("closed", "auth_failed") in events.events


def test_shutdown_notice_names_reason():
    clock = Clock()
    node = make_node(clock)
    events = Recorder()
    client, _, pump = pair(node, "alice", events)
    pump.flush()
    closed = []
    client.when_closed().addCallback(closed.append)
    node.shutdown()
    pump.flush()
    assert ("notice", m.NoticeKind.SHUTDOWN) in events.events
    assert closed == ["server_shutdown"]


def test_resync_does_not_repeat_enters():
    events = Recorder()
    client = GameClient("alice", "pw", Clock(), events)
    client.makeConnection(StringTransport())
    info = m.EntityInfo(7, m.Kind.PLAYER, 1.0, 2.0, "bob")
    other = m.EntityInfo(8, m.Kind.PLAYER, 1.0, 2.0, "eve")
    client.dataReceived(m.EnterWorld(1, "world", 0, 0, 100, 100, 10, 10, "n").encode()
                        + m.Tick(1, 0.0).encode() + m.Enter((info, other)).encode())
    client.dataReceived(m.Tick(2, 0.0).encode() + m.Resync().encode()
                        + m.Enter((info,)).encode() + m.Tick(3, 0.0).encode())
    assert events.events == [("enter", "bob"), ("enter", "eve"), ("leave", "eve")]


def test_close_says_bye_and_names_reason():
    t = StringTransport()
    client = GameClient("alice", "pw", Clock())
    client.makeConnection(t)
    sent = FrameDecoder().feed(t.value())
    assert sent == [m.Hello(m.PROTOCOL_VERSION, "mmo-client"), m.Login("alice", "pw")]
    t.clear()
    client.close()
    assert FrameDecoder().feed(t.value()) == [m.Bye()]
    client.connectionLost(Failure(Exception("gone")))
    assert client.reason == "closed_by_client"


def test_garbage_from_server_is_protocol_error():
    t = StringTransport()
    client = GameClient("alice", "pw", Clock())
    client.makeConnection(t)
    client.dataReceived(b"\x00\x00\x00\x01\x01")  # a client-only type from the server
    assert t.disconnecting
    client.connectionLost(Failure(Exception("gone")))
    assert client.reason == "protocol_error"


def test_reason_names():
    from twisted.internet import error

    assert error_name(m.ErrorCode.NAME_IN_USE) == "name_in_use"
    assert error_name(999) == "error_999"
    assert connect_failure_reason(Failure(error.ConnectionRefusedError())) == "connect_refused"
    assert connect_failure_reason(Failure(error.TimeoutError())) == "connect_timeout"


@pytest.mark.parametrize("line, name, args", [
    ("move 10 20.5", "move", (10.0, 20.5)),
    ("say hello world", "say", ("hello world",)),
    ("zone anyone?", "zone", ("anyone?",)),
    ("whisper bob psst there", "whisper", ("bob", "psst there")),
    ("w bob hi", "whisper", ("bob", "hi")),
    ("goto arena", "goto", ("arena",)),
    ("WHO", "who", ()),
    ("wait 1.5", "wait", (1.5,)),
    ("quit", "quit", ()),
])
def test_parse_command(line, name, args):
    cmd = parse_command(line)
    assert (cmd.name, cmd.args) == (name, args)


@pytest.mark.parametrize("line", ["move 1", "move a b", "say", "whisper bob",
                                  "wait -1", "dance", "goto a b", "who me"])
def test_parse_command_refuses(line):
    with pytest.raises(CommandError):
        parse_command(line)


def test_blank_and_comment_lines_are_skipped():
    assert parse_command("  ") is None
    assert parse_command("# a comment") is None


def test_printer_lines():
    lines: list[str] = []
    p = LinePrinter(lines.append)
    from mmo.client import SeenEntity

    p.entity_entered(SeenEntity(2, "bob", 0, 10.0, 20.25))
    p.entity_left(SeenEntity(2, "bob", 0, 10.0, 20.25))
    p.chat_received(m.Channel.SAY, "bob", "hi")
    p.error_received(m.ErrorCode.UNKNOWN_ZONE, "no zone named 'x'")
    p.corrected(m.Correction(4, 1.0, 2.0, m.CorrectionReason.TOO_FAST))
    assert lines == [
        "* bob enters at (10.0, 20.2)",
        "* bob leaves",
        "[say] bob: hi",
        "! error UNKNOWN_ZONE: no zone named 'x'",
        "! correction: move 4 refused (too_fast), you are at (1.0, 2.0)",
    ]


def test_runner_waits_between_commands():
    clock = Clock()
    node = make_node(clock)
    bob = FakePlayer(node, "bob")
    out: list[str] = []
    client, _, pump = pair(node, "alice")
    node.tick()
    pump.flush()
    runner = CommandRunner(client, clock, out.append)
    for line in ["say one", "wait 2", "say two", "bogus"]:
        runner.feed(line)
    runner.end_of_input()
    pump.flush()
    heard = [msg.text for msg in bob.received() if isinstance(msg, m.ChatMessage)]
    assert heard == ["one"]
    assert not runner.finished.called
    clock.advance(2)
    pump.flush()
    heard = [msg.text for msg in bob.received() if isinstance(msg, m.ChatMessage)]
    assert heard == ["two"]
    assert out == ["? unknown command 'bogus' (try: help)"]
    assert runner.finished.called and client.closing
