"""
The cluster's transport seam: both implementations of ``IClusterTransport``,
the cluster service running over either, and multicast over a real socket.
"""

from __future__ import annotations

import random
import socket
import sys
from collections.abc import Callable, Iterator

import pytest
from support import Inbox, free_port, spin
from twisted.internet.interfaces import IReactorMulticast
from zope.interface.verify import verifyObject

from mmo.cluster import codec
from mmo.cluster.multicast import IP_MULTICAST_ALL, MulticastTransport
from mmo.interfaces import IClusterTransport, INumbers
from mmo.testing import FakeCluster, FakeMulticast, FakePlayer, MemoryBus, MemoryTransport
from mmo.wire import messages as m

KEY = b"k" * 32
HZ = 10
CELLS = (codec.CELL_DELTA, codec.CELL_KEYFRAME)


def move(p: FakePlayer, x: float, y: float) -> None:
    p.entity.last_move -= 1.0
    p.send(m.Move(1, x, y))


# -- both implementations provide the interface ------------------------------------


def test_both_transports_provide_the_interface():
    net = FakeMulticast()
    verifyObject(IReactorMulticast, net)
    multicast = MulticastTransport(net, 30001, "127.0.0.1", 0)
    verifyObject(IClusterTransport, multicast)
    verifyObject(INumbers, multicast)
    verifyObject(IClusterTransport, MemoryTransport(MemoryBus()))
    # Started as well as new.
    multicast.start(Inbox())
    verifyObject(IClusterTransport, multicast)


# -- the memory transport ------------------------------------------------------------


def test_memory_bus_delivers_to_the_other_members_of_a_group_on_flush():
    bus = MemoryBus()
    a, b, c = (MemoryTransport(bus, name) for name in "abc")
    inboxes = {t.source: Inbox() for t in (a, b, c)}
    for t in (a, b, c):
        t.start(inboxes[t.source])
    for t in (a, b):
        t.join("239.255.0.1")
    c.join("239.255.0.2")
    assert a.send("239.255.0.1", b"one")
    assert inboxes["b"].got == []  # queued until the flush
    assert bus.flush() == 1
    assert inboxes["b"].got == [(b"one", "a")]
    assert inboxes["a"].got == [] and inboxes["c"].got == []  # not to itself, not to c
    b.leave("239.255.0.1")
    a.send("239.255.0.1", b"two")
    bus.flush()
    assert inboxes["b"].data == [b"one"]
    bus.drop = lambda data, sender, receiver: receiver is c
    b.send("239.255.0.2", b"lost")
    bus.flush()
    assert inboxes["c"].got == [] and bus.dropped == 1
    c.stop()
    assert not c.send("239.255.0.2", b"after stop")
    assert not MemoryTransport(bus).send("239.255.0.1", b"never started")


# -- the multicast transport on the in-memory multicast network --------------------


def test_multicast_transport_sets_up_its_socket_and_counts_refused_joins():
    net = FakeMulticast(max_memberships=2)
    t = MulticastTransport(net, 30001, "127.0.0.1", 0)
    t.join("239.255.0.1")  # before start: joined when the socket opens
    inbox = Inbox()
    t.start(inbox)
    port = t.port
    assert (port.port, port.ttl, port.loopback, port.outgoing) == (30001, 0, True, "127.0.0.1")
    assert port.joined == {"239.255.0.1"}
    t.join("239.255.0.1")
    t.join("239.255.0.2")
    t.join("239.255.0.3")  # over the kernel's limit: refused, logged, counted
    assert port.joined == {"239.255.0.1", "239.255.0.2"}
    assert t.numbers() == {"join_failures": 1}
    assert t.send("239.255.0.1", b"x")
    assert port.written == [(b"x", ("239.255.0.1", 30001))]
    net.flush()
    assert inbox.data == [b"x"]  # loopback: a node of this host hears its own
    t.leave("239.255.0.2")
    assert port.joined == {"239.255.0.1"}
    t.stop()
    assert port.joined == set() and not port.listening and net.ports == []
    assert not t.send("239.255.0.1", b"y")


def test_send_errors_and_join_failures_reach_the_node_metrics():
    c = FakeCluster([], key=KEY)
    c.net.max_memberships = 0  # every join refused, the control group's first
    _node, svc = c.add("n0")
    c.add("n1")

    def refuse(packet: bytes, addr: tuple[str, int] | None = None) -> None:
        raise OSError(101, "Network is unreachable")

    sent = svc.stats.sent  # the first heartbeat and metrics, sent at start
    svc.transport.port.write = refuse
    c.step(HZ)
    numbers = c.nodes[0].snapshot()
    assert numbers["send_errors"] > 0 and numbers["datagrams_sent"] == sent
    assert numbers["join_failures"] >= 1 and numbers["groups_joined"] >= 1


# -- the cluster over any transport ---------------------------------------------------


@pytest.fixture(params=["multicast", "memory"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[FakeCluster, Callable[..., None]]]:
    """Two nodes in memory, over multicast (the fake network) or the memory bus."""
    bus = MemoryBus() if request.param == "memory" else None
    c = FakeCluster(["n0", "n1"], key=KEY, bus=bus, max_speed=100_000.0,
                    keyframe_interval=1.0)

    def lose(to: int, kinds: tuple[int, ...] | None) -> None:
        """Lose the datagrams of ``kinds`` on their way to node ``to`` (None: stop losing)."""
        t = c.services[to].transport
        receiver = t if bus is not None else t.port  # type: ignore[attr-defined]
        drop = None if kinds is None else (
            lambda data, sender, r: r is receiver and data[3] in kinds)
        if bus is not None:
            bus.drop = drop
        else:
            c.net.drop = drop

    yield c, lose


def test_players_on_two_nodes_see_each_other_on_any_transport(pair):
    c, _lose = pair
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    move(alice, 1050, 1050)
    move(bob, 1060, 1050)
    c.step(3)
    assert alice.names_seen() == {"bob"} and bob.names_seen() == {"alice"}
    move(bob, 1070, 1055)
    c.step(2)
    mirror = c.nodes[0].world.find_player("bob")
    assert mirror is not None and mirror.owner == "n1"
    assert (mirror.x, mirror.y) == pytest.approx((1070, 1055))
    # Each node joined the control group and the groups of its players' cells.
    svc = c.services[0]
    assert svc.control in svc.transport.joined and len(svc.transport.joined) > 1
    if c.bus is not None:
        assert c.net.ports == []  # no multicast at all


def test_lost_datagrams_are_recovered_by_keyframes_on_any_transport(pair):
    c, lose = pair
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    move(alice, 1000, 1000)
    move(bob, 1010, 1000)
    c.step(3)
    lose(0, CELLS)  # alice's node hears no cell update at all
    dave = FakePlayer(c.nodes[1], "dave")
    move(dave, 1012, 1002)
    bob.disconnect()
    c.step(5)
    assert "dave" not in alice.names_seen() and "bob" in alice.names_seen()
    lose(0, (codec.CELL_DELTA,))  # deltas still lost: only keyframes get through
    c.step(HZ + 2)
    assert alice.names_seen() == {"dave"}
    assert c.services[0].mirrors.expired_entities == 0


def test_a_node_that_vanishes_expires_and_a_clean_stop_says_bye(pair):
    c, _lose = pair
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    move(alice, 1000, 1000)
    move(bob, 1010, 1000)
    c.step(3)
    c.kill(1)
    c.step(int(3.5 * HZ))
    assert "bob" not in alice.names_seen()
    assert c.services[0].mirrors.expired_nodes == 1
    node, svc = c.add("n2")
    carol = FakePlayer(node, "carol")
    move(carol, 1005, 1000)
    c.step(3)
    assert "carol" in alice.names_seen()
    svc.stopService()
    c.step(2)
    assert "carol" not in alice.names_seen()
    assert c.services[0].mirrors.expired_nodes == 1  # the bye, not expiry
    assert svc.transport.joined == set()


# -- a transport that loses the other nodes and finds them again ------------------------


def kinds_sent(transport: MemoryTransport, since: int = 0) -> list[int]:
    return [data[3] for _group, data in transport.sent[since:]]


def test_transports_say_what_keeps_them_from_the_other_nodes():
    net = FakeMulticast()
    multicast = MulticastTransport(net, 30001, "127.0.0.1", 0)
    assert multicast.trouble() == "the multicast socket is closed"
    multicast.start(Inbox(), connected=lambda: None)
    assert multicast.trouble() is None
    memory = MemoryTransport(MemoryBus())
    assert memory.trouble() == "not started"
    told: list[str] = []
    memory.start(Inbox(), lambda: told.append("connected"))
    assert memory.trouble() is None
    memory.cut("Redis restarting")
    assert memory.trouble() == "Redis restarting" and not memory.send("g", b"x")
    memory.restore()
    assert memory.trouble() is None and told == ["connected"] and memory.send("g", b"x")


def test_a_node_cut_off_plays_alone_and_catches_up_at_once_when_back():
    c = FakeCluster(["n0", "n1"], key=KEY, bus=MemoryBus(), max_speed=100_000.0,
                    keyframe_interval=1.0)
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    carl = FakePlayer(c.nodes[0], "carl")
    move(alice, 1000, 1000)
    move(carl, 1005, 1000)
    move(bob, 1010, 1000)
    c.step(3)
    assert alice.names_seen() == {"bob", "carl"}
    a, b = c.services
    assert a.ready() is None and a.numbers()["transport_up"] == 1
    for svc in c.services:
        svc.transport.cut("no connection to Redis")
    assert a.ready() == "no connection to Redis" and a.numbers()["transport_up"] == 0
    errors = a.stats.send_errors
    # A short outage: bob walks on, and every datagram about it is lost.
    move(bob, 1020, 1000)
    move(carl, 1008, 1000)
    c.step(4)
    assert a.stats.send_errors > errors  # dropped and counted, not queued
    mirror = c.nodes[0].world.find_player("bob")
    assert mirror is not None and mirror.x == pytest.approx(1010)
    local = c.nodes[0].world.find_player("carl")
    assert local is not None and local.x == pytest.approx(1008)  # own players play on
    sent = len(a.transport.sent), len(b.transport.sent)
    for svc in c.services:
        svc.transport.restore()
    # At once a heartbeat, then keyframe requests and keyframes the next tick,
    # rather than at the next periodic keyframe.
    assert kinds_sent(a.transport, sent[0]) == [codec.HEARTBEAT]
    c.step(1)
    assert codec.KEYFRAME_REQUEST in kinds_sent(a.transport, sent[0])
    assert codec.CELL_KEYFRAME in kinds_sent(b.transport, sent[1])
    c.step(1)
    mirror = c.nodes[0].world.find_player("bob")
    assert mirror is not None and mirror.x == pytest.approx(1020)
    assert a.ready() is None and a.numbers()["transport_up"] == 1


def test_a_long_outage_expires_the_others_and_they_come_back():
    c = FakeCluster(["n0", "n1"], key=KEY, bus=MemoryBus(), max_speed=100_000.0,
                    keyframe_interval=1.0)
    alice = FakePlayer(c.nodes[0], "alice")
    bob = FakePlayer(c.nodes[1], "bob")
    move(alice, 1000, 1000)
    move(bob, 1010, 1000)
    c.step(3)
    for svc in c.services:
        svc.transport.cut("no connection to Redis")
    c.step(int(3.5 * HZ))
    assert "bob" not in alice.names_seen()  # a one-node world meanwhile
    assert c.services[0].mirrors.expired_nodes == 1
    move(bob, 1030, 1000)
    c.step(1)
    for svc in c.services:
        svc.transport.restore()
    c.step(3)
    assert alice.names_seen() == {"bob"}
    mirror = c.nodes[0].world.find_player("bob")
    assert mirror is not None and mirror.x == pytest.approx(1030)


# -- multicast over a real socket on loopback ------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux multicast options")
def test_multicast_transport_over_a_real_socket_on_loopback(reactor):
    group = f"239.255.{random.randint(1, 254)}.{random.randint(1, 254)}"
    port = free_port(socket.SOCK_DGRAM)
    a = MulticastTransport(reactor, port, "127.0.0.1", ttl=0)
    b = MulticastTransport(reactor, port, "127.0.0.1", ttl=0)
    got_a, got_b = Inbox(), Inbox()
    a.start(got_a)
    b.start(got_b)
    try:
        sock = a.port.socket
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 0
        assert sock.getsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL) == 0
        out_if = sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
        assert socket.inet_ntoa(out_if) == "127.0.0.1"
        a.join(group)
        b.join(group)
        assert a.send(group, b"hello")
        spin(reactor, lambda: got_b.data, what="datagram for b")
        assert got_b.got[0][0] == b"hello" and got_b.got[0][1][0] == "127.0.0.1"
        # b leaves; a (still joined, loopback on) hears its own next datagram,
        # which proves it was delivered on this host, and b does not.
        b.leave(group)
        assert a.send(group, b"after leave")
        spin(reactor, lambda: b"after leave" in got_a.data, what="a's own datagram")
        for _ in range(5):
            reactor.iterate(0.02)
        assert got_b.data == [b"hello"]
        assert (a.join_failures, b.join_failures) == (0, 0)
    finally:
        a.stop()
        b.stop()
    assert a.port is None and not a.send(group, b"closed")
