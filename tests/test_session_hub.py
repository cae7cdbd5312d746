"""
The node's players polled through one hub (:mod:`mmo.server.hub`), over real
sockets on 127.0.0.1: in process on a private reactor (logins, moves, flow
control, closes from either side, a reset, the reactor's shutdown; the same
outcomes with the hub and without it), and in the real ``twistd mmo``,
whose epoll sets are read from ``/proc``.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import NodeProcess, WireClient, spin, wait_until
from twisted.internet.testing import StringTransport

from mmo.server.hub import Hub, SessionHub, can_adopt
from mmo.server.intake import CLOSED
from mmo.server.session import PlayerSession, PlayerSessions
from mmo.testing.node import make_node
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the hub needs epoll")


class Client:
    """A player's end: a non-blocking socket the test reads when it spins the reactor."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.decoder = FrameDecoder.for_client()
        self.got: list[m.Message] = []
        self.eof = False

    def send(self, *msgs: m.Message) -> None:
        self.sock.sendall(b"".join(msg.encode() for msg in msgs))

    def read(self) -> list[m.Message]:
        while not self.eof:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except ConnectionError:
                data = b""
            if not data:
                self.eof = True
                break
            self.got.extend(self.decoder.feed(data))
        return self.got

    def has(self, kind: type[m.Message]) -> bool:
        return any(isinstance(msg, kind) for msg in self.read())


class Server:
    """A node listening on 127.0.0.1 with the sessions' factory, on a private reactor."""

    def __init__(self, reactor: Any, hub: bool) -> None:
        self.reactor = reactor
        self.node = make_node(clock=reactor, placement="connection", max_per_ip=0)
        self.session_hub = SessionHub() if hub else None
        self.factory = PlayerSessions(self.node, self.session_hub)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.clients: list[Client] = []

    @property
    def hub(self) -> Hub:
        assert self.session_hub is not None and self.session_hub.hub is not None
        return self.session_hub.hub

    def session(self, name: str) -> PlayerSession:
        return self.node.sessions[name]  # type: ignore[return-value]

    def player(self, name: str) -> Client:
        client = Client(self.port.getHost().port)
        self.clients.append(client)
        client.send(m.Hello(m.PROTOCOL_VERSION, "test"), m.Login(name, "pw"))
        self.turn(lambda: client.has(m.EnterWorld), f"{name} in the world")
        return client

    def turn(self, done: Any, what: str) -> None:
        def step() -> bool:
            for client in self.clients:
                client.read()
            return bool(done())
        spin(self.reactor, step, what=what)

    def close(self) -> None:
        for client in self.clients:
            client.sock.close()
        self.port.stopListening()


@pytest.fixture(params=["hub", "reactor"])
def server(request: Any, reactor: Any) -> Iterator[Server]:
    s = Server(reactor, request.param == "hub")
    yield s
    s.close()


def readers_of(server: Server) -> list[Any]:
    """Where the players' sockets wait to be read: the hub's set, or the reactor's."""
    if server.session_hub is not None:
        return list(server.hub.links.values())
    return list(server.reactor.getReaders())


def test_players_are_read_through_one_hub_that_the_reactor_reads_once(reactor: Any) -> None:
    server = Server(reactor, hub=True)
    try:
        server.player("ann")
        server.player("bob")
        hub = server.hub
        transports = [server.session(n).transport for n in ("ann", "bob")]
        for t in transports:
            assert t.reactor is hub.view  # type: ignore[union-attr]
            assert t not in reactor.getReaders() and t not in reactor.getWriters()
        assert set(hub.links.values()) == set(transports)
        assert hub in reactor.getReaders()
    finally:
        server.close()


def test_without_the_hub_each_socket_is_the_reactors(reactor: Any) -> None:
    server = Server(reactor, hub=False)
    try:
        server.player("ann")
        t = server.session("ann").transport
        assert t.reactor is reactor  # type: ignore[union-attr]
        assert t in reactor.getReaders()
        assert not any(isinstance(r, Hub) for r in reactor.getReaders())
    finally:
        server.close()


def test_moves_arrive_and_updates_go_out(server: Server) -> None:
    ann = server.player("ann")
    bob = server.player("bob")
    session = server.session("ann")
    e = session.entity
    assert e is not None
    x0, read = e.x, session.bytes_in
    ann.send(m.Move(1, x0 + 0.5, e.y))
    server.turn(lambda: session.bytes_in > read, "ann's move")
    server.node.tick()
    assert e.x == pytest.approx(x0 + 0.5)
    server.turn(lambda: any(isinstance(msg, m.Moves) and any(i == e.id for i, _, _ in msg.moves)
                            for msg in bob.read()), "ann's move on bob's screen")


def test_flow_control_stops_and_starts_reading_where_the_socket_waits(server: Server) -> None:
    server.player("ann")
    t: Any = server.session("ann").transport
    t.pauseProducing()
    assert t not in readers_of(server)
    if server.session_hub is not None:
        assert not server.hub.masks.get(t.fileno(), 0) & select.EPOLLIN
    t.resumeProducing()
    assert t in readers_of(server)


def test_a_client_that_closes_ends_its_session_and_leaves_the_set(server: Server) -> None:
    ann = server.player("ann")
    session = server.session("ann")
    ann.sock.close()
    server.clients.remove(ann)
    server.turn(lambda: session.state == CLOSED, "the session's end")
    assert "ann" not in server.node.sessions
    assert session.transport not in readers_of(server)
    if server.session_hub is not None:
        assert server.hub.links == {} and server.hub.masks == {}


def test_a_reset_ends_its_session_and_spares_the_others(server: Server) -> None:
    ann = server.player("ann")
    server.player("bob")
    session = server.session("ann")
    ann.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ann.sock.close()
    server.clients.remove(ann)
    server.turn(lambda: session.state == CLOSED, "the session's end")
    assert set(server.node.sessions) == {"bob"}
    bob_transport = server.session("bob").transport
    assert bob_transport in readers_of(server)


def test_a_bad_frame_gets_an_error_and_a_clean_close(server: Server) -> None:
    ann = server.player("ann")
    session = server.session("ann")
    # A frame longer than the node reads: an Error, then the server's FIN.
    ann.sock.sendall(struct.pack("!I", 1 << 30) + b"\x01")
    server.turn(lambda: ann.eof, "the close")
    assert any(isinstance(msg, m.Error) for msg in ann.got)
    ann.sock.close()
    server.clients.remove(ann)
    server.turn(lambda: session.state == CLOSED, "the session's end")
    if server.session_hub is not None:
        assert server.hub.links == {}


def test_the_reactors_shutdown_ends_every_player(server: Server) -> None:
    server.player("ann")
    server.player("bob")
    sessions = [server.session(n) for n in ("ann", "bob")]
    server.reactor.disconnectAll()
    assert all(s.state == CLOSED for s in sessions)
    assert server.node.sessions == {}
    if server.session_hub is not None:
        assert server.hub.poller.closed


def test_only_plain_tcp_transports_of_the_hubs_reactor_are_adopted(reactor: Any) -> None:
    hubs = SessionHub()
    transport = StringTransport()
    assert not can_adopt(reactor, transport)
    assert not hubs.adopt(transport)
    assert hubs.hub is None


# -- the real twistd ---------------------------------------------------------------


def epoll_sets(pid: int) -> dict[int, set[int]]:
    """The process's epoll descriptors and the descriptors each watches (``/proc``)."""
    sets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            info = Path(f"/proc/{pid}/fdinfo/{name}").read_text()
        except OSError:
            continue
        if target == "anon_inode:[eventpoll]":
            sets[int(name)] = {int(line.split()[1]) for line in info.splitlines()
                               if line.startswith("tfd:")}
    return sets


def player_fds(pid: int, clients: list[WireClient]) -> set[int]:
    """The node's descriptors of the connections from ``clients`` (by their ports)."""
    ports = {c.sock.getsockname()[1] for c in clients}
    inodes = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) in ports:  # the peer is a client
            inodes.add(f"socket:[{fields[9]}]")
    fds = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") in inodes:
                fds.add(int(name))
        except OSError:
            continue
    return fds


def logged_in(node: NodeProcess, names: tuple[str, ...]) -> list[WireClient]:
    clients = []
    for name in names:
        c = WireClient(node.port)
        clients.append(c)
        c.login(name)
    return clients


@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs /proc")
def test_twistd_mmo_reads_its_players_through_one_hub(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "on")
    clients: list[WireClient] = []
    try:
        clients = logged_in(node, ("ann", "bob", "cid"))
        pid = node.proc.pid
        players = player_fds(pid, clients)
        assert len(players) == 3
        sets = epoll_sets(pid)
        (hub,) = (fd for fd, watched in sets.items() if watched == players)
        # The reactor's set watches the hub, and none of the players itself.
        (reactor,) = (watched for watched in sets.values() if hub in watched)
        assert not reactor & players
    finally:
        for c in clients:
            c.close()
        node.stop()


@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs /proc")
def test_twistd_mmo_without_the_hub_leaves_each_player_to_the_reactor(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "off", "--no-session-hub")
    clients: list[WireClient] = []
    try:
        clients = logged_in(node, ("ann", "bob"))
        pid = node.proc.pid
        players = player_fds(pid, clients)
        assert len(players) == 2
        sets = epoll_sets(pid)
        assert not set().union(*sets.values()) & set(sets)  # no epoll inside another
        assert any(players <= watched for watched in sets.values())
    finally:
        for c in clients:
            c.close()
        node.stop()


def test_one_wake_reads_every_ready_player(reactor: Any) -> None:
    # Twisted's reactor reads every ready socket in one pass; so does the
    # node's hub: a player left for the next pass would wait behind the tick.
    server = Server(reactor, hub=True)
    try:
        clients = [server.player(f"p{i}") for i in range(20)]
        hub = server.hub
        sessions = [server.session(f"p{i}") for i in range(20)]
        read = [s.bytes_in for s in sessions]
        for c in clients:
            c.send(m.Ping(1, 0.0))
        # Every socket ready (loopback delivers at once), then one wake.
        wait_until(lambda: len(hub.poller.poll(0, 64)) == 20, what="20 ready sockets")
        hub.doRead()
        assert all(s.bytes_in > r for s, r in zip(sessions, read, strict=True))
    finally:
        server.close()


def test_the_generators_hub_reads_at_most_its_share_a_wake(reactor: Any) -> None:
    hub = Hub(reactor, "capped", max_events=5)
    pairs = [socket.socketpair() for _ in range(12)]
    reads: list[int] = []

    class Link:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def fileno(self) -> int:
            return self.sock.fileno()

        def doRead(self) -> None:
            reads.append(len(self.sock.recv(100)))

    try:
        for ours, theirs in pairs:
            ours.setblocking(False)
            hub.addReader(Link(ours))
            theirs.send(b"x")
        hub.doRead()
        assert len(reads) == 5
        hub.doRead()
        hub.doRead()
        assert len(reads) == 12
    finally:
        hub.close()
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
