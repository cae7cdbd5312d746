"""
Fakes for the cluster: an in-memory multicast network, an in-memory cluster
transport, and nodes ticked together on either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError, MulticastJoinError
from twisted.internet.interfaces import IMulticastTransport, IReactorMulticast
from twisted.internet.task import Clock
from zope.interface import implementer

from ..interfaces import IClusterTransport
from ..server.node import Node
from .node import make_node

# -- multicast -------------------------------------------------------------------
#
# ``MemoryReactor`` has no UDP: :class:`FakeMulticast` is an in-memory network
# with ``listenMulticast``, for testing the cluster (or anything else that
# speaks multicast) with no sockets.  Datagrams wait in a queue until
# :meth:`FakeMulticast.flush`, so that tests choose when, and whether, each is
# delivered.


@implementer(IMulticastTransport)
class FakeMulticastPort:
    """One socket on a :class:`FakeMulticast` network (an ``IMulticastTransport``)."""

    def __init__(self, network: FakeMulticast, port: int, protocol: Any,
                 interface: str, address: str) -> None:
        self.network = network
        self.port = port
        self.protocol = protocol
        self.interface = interface
        #: The source address of what this port sends.
        self.address = address
        self.joined: set[str] = set()
        self.ttl = 1
        self.loopback = True
        self.outgoing = "0.0.0.0"
        self.broadcast = False
        self.listening = True
        #: Every (datagram, (group, port)) this port wrote.
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    # IMulticastTransport
    def getOutgoingInterface(self) -> str:
        return self.outgoing

    def setOutgoingInterface(self, addr: str | int) -> Any:
        self.outgoing = str(addr)
        return succeed(1)

    def getLoopbackMode(self) -> bool:
        return self.loopback

    def setLoopbackMode(self, mode: int) -> None:
        self.loopback = bool(mode)

    def getTTL(self) -> int:
        return self.ttl

    def setTTL(self, ttl: int) -> None:
        self.ttl = ttl

    def joinGroup(self, addr: str, interface: str = "") -> Any:
        limit = self.network.max_memberships
        if addr not in self.joined and len(self.joined) >= limit:
            return fail(MulticastJoinError(addr, interface, "too many memberships"))
        self.joined.add(addr)
        return succeed(None)

    def leaveGroup(self, addr: str, interface: str = "") -> Any:
        self.joined.discard(addr)
        return succeed(None)

    # IUDPTransport
    def write(self, packet: bytes, addr: tuple[str, int] | None = None) -> None:
        if addr is None:
            raise ValueError("the fake is for multicast: write needs an address")
        if not self.listening:
            raise RuntimeError("write on a port that stopped listening")
        if len(packet) > 65507:
            raise ValueError("datagram larger than UDP allows")
        self.written.append((packet, addr))
        self.network.queue.append((self, packet, addr))

    def connect(self, host: str, port: int) -> None:
        raise NotImplementedError("the fake is for multicast: no connected mode")

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.interface or "0.0.0.0", self.port)

    def stopListening(self) -> Any:
        if self.listening:
            self.listening = False
            self.network.ports.remove(self)
            self.protocol.doStop()
        return succeed(None)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        self.broadcast = bool(enabled)

    def getBroadcastAllowed(self) -> bool:
        return self.broadcast


@implementer(IReactorMulticast)
class FakeMulticast:
    """
    An in-memory multicast network: an ``IReactorMulticast`` for tests.

        net = FakeMulticast()
        port = net.listenMulticast(30001, protocol, listenMultiple=True)
        port.joinGroup("239.255.0.1")
        ...
        net.flush()   # deliver what was written since the last flush

    A datagram reaches every listening port bound to its UDP port that
    joined its group (with ``multicast_all``, every port bound to the UDP
    port if any port joined the group, as Linux's IP_MULTICAST_ALL does for
    sockets of one host); the sender gets its own copy only in loopback
    mode.  ``drop`` (a function of datagram, sender and receiver) lets a
    test lose datagrams on purpose.
    """

    def __init__(self, multicast_all: bool = False, max_memberships: int = 20) -> None:
        self.ports: list[FakeMulticastPort] = []
        self.queue: list[tuple[FakeMulticastPort, bytes, tuple[str, int]]] = []
        self.multicast_all = multicast_all
        self.max_memberships = max_memberships
        self.drop: Any = None
        self.delivered = 0
        self.dropped = 0
        self.largest = 0
        self._next_host = 1

    def listenMulticast(self, port: int, protocol: Any, interface: str = "",
                        maxPacketSize: int = 8192, listenMultiple: bool = False,
                        address: str | None = None) -> FakeMulticastPort:
        if not listenMultiple and any(p.port == port for p in self.ports):
            raise CannotListenError(interface, port, OSError("address in use"))
        if address is None:
            address = f"127.0.0.{self._next_host}"
            self._next_host += 1
        p = FakeMulticastPort(self, port, protocol, interface, address)
        self.ports.append(p)
        protocol.makeConnection(p)
        return p

    def flush(self, limit: int = 100_000) -> int:
        """Deliver queued datagrams (and any they cause), at most ``limit``."""
        count = 0
        while self.queue and count < limit:
            batch, self.queue = self.queue, []
            for sender, packet, (group, port) in batch:
                count += 1
                self.largest = max(self.largest, len(packet))
                self._deliver(sender, packet, group, port)
        return count

    def _deliver(self, sender: FakeMulticastPort, packet: bytes, group: str,
                 port: int) -> None:
        bound = [p for p in self.ports if p.port == port]
        if self.multicast_all and any(group in p.joined for p in bound):
            targets = bound
        else:
            targets = [p for p in bound if group in p.joined]
        for p in targets:
            if p is sender and not sender.loopback:
                continue
            if self.drop is not None and self.drop(packet, sender, p):
                self.dropped += 1
                continue
            self.delivered += 1
            p.protocol.datagramReceived(packet, (sender.address, sender.port))

    def inject(self, packet: bytes, group: str, port: int,
               source: str = "127.0.0.99") -> None:
        """Deliver ``packet`` now, as if a stranger at ``source`` sent it."""
        for p in [p for p in self.ports if p.port == port and group in p.joined]:
            p.protocol.datagramReceived(packet, (source, port))


# -- a cluster transport in memory --------------------------------------------------
#
# :class:`MemoryTransport` provides ``IClusterTransport`` itself, with no
# multicast underneath: what the cluster needs of any transport, and no more.


@implementer(IClusterTransport)
class MemoryTransport:
    """
    One member of a :class:`MemoryBus`: an ``IClusterTransport`` in memory.

    A datagram sent to a group reaches every *other* started transport of
    the bus that has joined the group when the bus delivers it.
    :meth:`cut` and :meth:`restore` play a link that goes away and comes
    back (a Redis restart).
    """

    def __init__(self, bus: MemoryBus, source: str | None = None) -> None:
        self.bus = bus
        #: What receivers are told a datagram came from.
        self.source = source or bus.next_source()
        self.receive: Callable[[bytes, Any], object] | None = None
        self.connected: Callable[[], object] | None = None
        #: Why the link is cut (see :meth:`cut`), else ``None``.
        self.outage: str | None = None
        self.joined: set[str] = set()
        #: Every (group, datagram) this transport handed on.
        self.sent: list[tuple[str, bytes]] = []

    @property
    def started(self) -> bool:
        return self.receive is not None

    def start(self, receive: Any, connected: Any = None) -> None:
        self.receive = receive
        self.connected = connected
        if self not in self.bus.transports:
            self.bus.transports.append(self)

    def trouble(self) -> str | None:
        return self.outage if self.started else "not started"

    def cut(self, why: str = "the bus is away") -> None:
        """Lose the link: nothing is sent (``send`` says so) nor received until :meth:`restore`."""
        self.outage = why

    def restore(self) -> None:
        """The link is back: tell the cluster (``connected``), as a reconnection would."""
        self.outage = None
        if self.connected is not None and self.started:
            self.connected()

    def stop(self) -> Deferred:
        self.unplug()
        self.joined.clear()
        return succeed(None)

    def unplug(self) -> None:
        """Leave the bus without a word (a crash): nothing more in or out."""
        if self in self.bus.transports:
            self.bus.transports.remove(self)
        self.receive = None

    def join(self, group: str) -> None:
        self.joined.add(group)

    def leave(self, group: str) -> None:
        self.joined.discard(group)

    def send(self, group: str, data: bytes) -> bool:
        if not self.started or self.outage is not None:
            return False
        data = bytes(data)
        self.sent.append((group, data))
        self.bus.queue.append((self, group, data))
        return True


class MemoryBus:
    """
    The network that :class:`MemoryTransport` objects share: datagrams wait
    in a queue until :meth:`flush`, so that tests choose when, and whether,
    each is delivered.  ``drop`` (a function of datagram, sender and receiver)
    loses datagrams on purpose.

        bus = MemoryBus()
        a, b = MemoryTransport(bus), MemoryTransport(bus)
        ...
        bus.flush()
    """

    def __init__(self) -> None:
        self.transports: list[MemoryTransport] = []
        self.queue: list[tuple[MemoryTransport, str, bytes]] = []
        self.drop: Callable[[bytes, MemoryTransport, MemoryTransport], bool] | None = None
        self.delivered = 0
        self.dropped = 0
        self.largest = 0
        self._next = 1

    def next_source(self) -> str:
        name = f"memory-{self._next}"
        self._next += 1
        return name

    def flush(self, limit: int = 100_000) -> int:
        """Deliver queued datagrams (and any they cause), at most ``limit``."""
        count = 0
        while self.queue and count < limit:
            batch, self.queue = self.queue, []
            for sender, group, data in batch:
                count += 1
                self.largest = max(self.largest, len(data))
                for t in [t for t in self.transports if t is not sender and group in t.joined]:
                    if self.drop is not None and self.drop(data, sender, t):
                        self.dropped += 1
                        continue
                    if t.receive is None or t.outage is not None:
                        continue  # unplugged by an earlier delivery, or cut off
                    self.delivered += 1
                    t.receive(data, sender.source)
        return count


# -- nodes ticked together -----------------------------------------------------------


class FakeCluster:
    """
    Nodes with their cluster services on one ``Clock`` and one
    :class:`FakeMulticast`, ticked together: a cluster in memory.

        c = FakeCluster(["a", "b"])
        alice, bob = FakePlayer(c.nodes[0], "alice"), FakePlayer(c.nodes[1], "bob")
        c.step(10)            # one second at 10 Hz: bob is mirrored on alice's node

    With ``bus`` (a :class:`MemoryBus`), the services use a
    :class:`MemoryTransport` each on it instead of multicast.  With
    ``store`` (a :class:`~mmo.store.accounts.MemoryAccountStore`), every
    node shares its accounts and saved state.

    Players stay on the node they log in to (``placement="connection"``)
    unless ``placement="regions"`` is given: then a login on a node that
    does not own the player's region is answered with a ``Redirect``.
    """

    KEY = b"k" * 32

    def __init__(self, node_ids: list[str] | tuple[str, ...] = ("n0", "n1", "n2"),
                 key: bytes = KEY, clock: Clock | None = None, bus: MemoryBus | None = None,
                 store: Any = None, **overrides: Any) -> None:
        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(1000)
        self.net = FakeMulticast()
        self.bus = bus
        self.key = key
        overrides.setdefault("placement", "connection")
        self.store = store
        self.overrides = overrides
        self.nodes: list[Node] = []
        self.services: list[Any] = []
        for node_id in node_ids:
            self.add(node_id)

    def add(self, node_id: str, key: bytes | None = None, **overrides: Any) -> tuple[Node, Any]:
        """Start one more node (and its cluster service) on the network."""
        import random

        from ..cluster.service import ClusterService

        node = make_node(self.clock, node_id=node_id, key=key or self.key, store=self.store,
                         **{**self.overrides, **overrides})
        transport = MemoryTransport(self.bus, node_id) if self.bus is not None else None
        service = ClusterService(node, node.settings.cluster, self.clock, self.net,
                                 rng=random.Random(len(self.nodes)), key=key or self.key,
                                 transport=transport)
        service.tcp_port = node.settings.node.tcp
        node.cluster = service
        service.startService()
        self.nodes.append(node)
        self.services.append(service)
        return node, service

    def step(self, ticks: int = 1) -> None:
        """Run ``ticks`` ticks of every node, delivering datagrams after each."""
        for _ in range(ticks):
            self.clock.advance(self.nodes[0].tick_interval)
            for node in self.nodes:
                node.tick()
            self.net.flush()
            if self.bus is not None:
                self.bus.flush()

    def kill(self, i: int) -> None:
        """Node ``i`` vanishes without a word (kill -9): its datagrams stop."""
        service = self.services[i]
        for loop in service._loops:
            loop.stop()
        transport = service.transport
        if isinstance(transport, MemoryTransport):
            transport.unplug()
        else:
            port = transport.port  # type: ignore[attr-defined]
            self.net.ports.remove(port)
            port.listening = False
            transport.port = None  # type: ignore[attr-defined]
        self.nodes[i].cluster = None


