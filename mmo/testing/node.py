"""Fakes for code that runs inside one node: a node on a ``Clock``, players on ``StringTransport``."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from ..extensions import Extension, IExtension, IGame, IPlayer
from ..plugins import find_makers
from ..server.node import Node
from ..server.session import PlayerSession
from ..server.tokens import TokenBook
from ..settings import Settings, node_schema
from ..store.accounts import MemoryAccountStore
from ..wire import messages as m
from ..wire.frames import FrameDecoder


def node_values(**overrides: Any) -> dict[str, Any]:
    """The node's checked values: defaults with ``overrides`` applied, checked like flags."""
    schema = node_schema(find_makers())
    checked = {schema.aliases.get(k, k): schema.check(k, v, f"override {k}")
               for k, v in overrides.items()}
    return schema.resolve(checked, None)


def node_settings(**overrides: Any) -> Settings:
    """The node's typed settings: defaults with ``overrides`` (keys, as in a TOML file)."""
    return Settings.build(node_values(**overrides), find_makers())


#: The cluster key of the nodes :func:`make_node` makes (their resume tokens).
TEST_KEY = bytes(range(32))


def make_node(clock: Clock | None = None, node_id: str = "test-node",
              store: Any = None, key: bytes | None = TEST_KEY, **overrides: Any) -> Node:
    """
    A node on a ``Clock`` with an in-memory account store (hashing inline),
    running the extensions its settings enable (as ``twistd mmo`` would),
    giving resume tokens sealed with ``key`` (``None``: no tokens).  Nodes
    given one ``store`` share their accounts and saved state (as nodes on one
    PostgreSQL do).
    """
    overrides.setdefault("password_iterations", 1)
    settings = node_settings(**overrides)
    clock = clock or Clock()
    if store is None:
        store = MemoryAccountStore(settings.store.password_iterations, clock=clock)
    node = Node(settings, clock, store, node_id)
    if key is not None:
        node.take_tokens(TokenBook(key, clock, settings.limits.resume_window))
    node.extensions.enable_configured(settings.extensions, find_makers())
    return node


class FakeTransport(StringTransport):
    """``StringTransport`` with the TCP transport's ``bufferSize`` attribute."""

    bufferSize = 65536

    def abortConnection(self) -> None:
        self.loseConnection()


class FakePlayer:
    """
    A client connected to ``node`` over a ``StringTransport``.

    ``received()`` decodes what the server wrote since the last call;
    ``names_seen()`` keeps track of the entities the player knows.
    """

    def __init__(self, node: Node, name: str, password: str = "pw",
                 host: str = "127.0.0.1", login: bool = True,
                 transport: FakeTransport | None = None, token: str | None = None) -> None:
        self.node = node
        self.name = name
        self.transport = transport or FakeTransport()
        self.transport.peerAddr = IPv4Address("TCP", host, 40000)  # type: ignore[assignment]
        self.session = PlayerSession(node)
        self.session.makeConnection(self.transport)
        self.decoder = FrameDecoder.for_client()
        self.known: dict[int, str] = {}
        self.log: list[m.Message] = []
        self.entity_id = 0
        if login:
            self.send(m.Hello(), m.Resume(token) if token else m.Login(name, password))
            enter = self.expect(m.EnterWorld)
            self.entity_id = enter.entity_id

    @property
    def token(self) -> str | None:
        """The newest resume token the node gave (``Ticket``, ``Redirect``)."""
        self.received()
        for msg in reversed(self.log):
            if isinstance(msg, (m.Ticket, m.Redirect)):
                return msg.token
        return None

    def send(self, *msgs: m.Message) -> None:
        self.session.dataReceived(b"".join(msg.encode() for msg in msgs))

    def send_raw(self, data: bytes) -> None:
        self.session.dataReceived(data)

    def received(self) -> list[m.Message]:
        data = self.transport.value()
        self.transport.clear()
        msgs = self.decoder.feed(data)
        for msg in msgs:
            if isinstance(msg, m.Enter):
                for e in msg.entities:
                    self.known[e.entity_id] = e.name
            elif isinstance(msg, m.Leave):
                for eid in msg.entity_ids:
                    self.known.pop(eid, None)
            elif isinstance(msg, m.Resync):
                self.known.clear()
        self.log.extend(msgs)
        return msgs

    def expect(self, kind: type[m.Message]) -> Any:
        for msg in self.received():
            if isinstance(msg, kind):
                return msg
        raise AssertionError(f"no {kind.__name__} in {self.log[-10:]}")

    def names_seen(self) -> set[str]:
        self.received()
        return set(self.known.values())

    @property
    def entity(self) -> Any:
        return self.session.entity

    def disconnect(self) -> None:
        self.session.connectionLost(Failure(ConnectionDone()))

    def system_lines(self) -> list[str]:
        """Every ``SYSTEM`` chat line received so far (login greetings included)."""
        self.received()
        return [msg.text for msg in self.log
                if isinstance(msg, m.ChatMessage) and msg.channel == m.Channel.SYSTEM]

    def command(self, text: str, channel: int = m.Channel.SAY) -> list[str]:
        """Type the chat line ``text`` (say ``/who``); return the ``SYSTEM`` lines that came back."""
        self.send(m.Chat(channel, text))
        return [msg.text for msg in self.received()
                if isinstance(msg, m.ChatMessage) and msg.channel == m.Channel.SYSTEM]


def extension_node(*extensions: Any, clock: Clock | None = None, **overrides: Any) -> Node:
    """
    A :func:`make_node` running ``extensions`` (objects providing
    :class:`~mmo.extensions.IExtension`) and, unless ``extension=[...]`` is
    given, no other extension.
    """
    overrides.setdefault("extension", [])
    node = make_node(clock, **overrides)
    for extension in extensions:
        node.extensions.enable(extension)
    return node


def run_ticks(node: Node, count: int = 1) -> None:
    """Advance the node's ``Clock`` by one tick's time and tick, ``count`` times."""
    step = node.tick_interval
    for _ in range(count):
        node.clock.advance(step)  # type: ignore[attr-defined]
        node.tick()


@implementer(IExtension)
class RecordingExtension(Extension):
    """
    An extension that records every hook call in :attr:`calls`, as
    ``(hook, player name or tick number, ...)``; it answers ``/echo``.
    ``fail`` names hooks that raise instead (to test isolation).
    """

    def __init__(self, name: str = "recorder", fail: tuple[str, ...] = ()) -> None:
        self.name = name
        self.commands = {"echo": "say it back"}
        self.fail = set(fail)
        self.calls: list[tuple[Any, ...]] = []
        self.started = self.stopped = False

    def _record(self, hook: str, *args: Any) -> None:
        self.calls.append((hook, *args))
        if hook in self.fail:
            raise RuntimeError(f"{self.name}: {hook} fails on purpose")

    def start(self, game: IGame) -> None:
        super().start(game)
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def login(self, player: IPlayer) -> None:
        self._record("login", player.name)

    def logout(self, player: IPlayer) -> None:
        self._record("logout", player.name)

    def moved(self, player: IPlayer) -> None:
        self._record("moved", player.name, player.x, player.y)

    def command(self, player: IPlayer, name: str, args: str) -> None:
        self._record("command", player.name, name, args)
        player.tell(args)

    def tick(self, number: int) -> None:
        self._record("tick", number)

    def hooks(self, hook: str) -> list[tuple[Any, ...]]:
        """The recorded calls of one hook."""
        return [c for c in self.calls if c[0] == hook]
