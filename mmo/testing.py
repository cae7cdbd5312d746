"""
In-memory fakes for testing code that runs inside a node, with no sockets
and no real time: a :class:`~mmo.server.node.Node` on a ``Clock``, and
players connected to it through ``StringTransport``.

    node = make_node()
    alice = FakePlayer(node, "alice")
    bob = FakePlayer(node, "bob")
    node.tick()
    assert "bob" in alice.names_seen()
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from .config import Schema
from .server.accounts import MemoryAccountStore
from .server.node import Node
from .server.session import PlayerSession
from .server.settings import NODE_SCHEMA
from .wire import messages as m
from .wire.frames import FrameDecoder


def node_settings(schema: Schema = NODE_SCHEMA, **overrides: Any) -> dict[str, Any]:
    """The node's defaults with ``overrides`` applied, checked like flags."""
    checked = {k: schema.check(k, v, f"override {k}") for k, v in overrides.items()}
    return schema.resolve(checked, None)


def make_node(clock: Clock | None = None, node_id: str = "test-node", **overrides: Any) -> Node:
    """A node on a ``Clock`` with an in-memory account store (hashing inline)."""
    overrides.setdefault("password_iterations", 1)
    settings = node_settings(**overrides)
    store = MemoryAccountStore(settings["password_iterations"])
    return Node(settings, clock or Clock(), store, node_id)


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
                 host: str = "127.0.0.1", login: bool = True) -> None:
        self.node = node
        self.name = name
        self.transport = FakeTransport(peerAddress=IPv4Address("TCP", host, 40000))
        self.session = PlayerSession(node)
        self.session.makeConnection(self.transport)
        self.decoder = FrameDecoder.for_client()
        self.known: dict[int, str] = {}
        self.log: list[m.Message] = []
        self.entity_id = 0
        if login:
            self.send(m.Hello(), m.Login(name, password))
            enter = self.expect(m.EnterWorld)
            self.entity_id = enter.entity_id

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
        self.session.connectionLost(None)
