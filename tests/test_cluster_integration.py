"""
Three real ``twistd -n mmo`` nodes sharing one world over loopback multicast
(TTL 0: nothing leaves the host) or over a real ``redis-server`` on
127.0.0.1: the tests that take the ``net`` fixture run over both.  Every
wait has a deadline.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from redis_server import RespClient
from support import WireClient, cluster_args, wait_until

from mmo.cluster import codec
from mmo.cluster.auth import verify
from mmo.cluster.groups import CellGroups, cell_block, metrics_group
from mmo.wire import messages as m

KEYFRAME = 0.5
EXPIRY = 3 * KEYFRAME


def write_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


class View:
    """What one client knows: entity id -> [name, x, y], from its messages."""

    def __init__(self, client: WireClient) -> None:
        self.client = client
        self.entities: dict[int, list] = {}

    def feed(self, msgs) -> None:
        for msg in msgs:
            if isinstance(msg, m.Enter):
                for e in msg.entities:
                    self.entities[e.entity_id] = [e.name, e.x, e.y]
            elif isinstance(msg, m.Leave):
                for eid in msg.entity_ids:
                    self.entities.pop(eid, None)
            elif isinstance(msg, m.Moves):
                for eid, x, y in msg.moves:
                    if eid in self.entities:
                        self.entities[eid][1:] = [x, y]
            elif isinstance(msg, m.Resync):
                self.entities.clear()

    def update(self, seconds: float = 0.05) -> None:
        self.feed(self.client.drain(seconds))

    def by_name(self) -> dict[str, tuple[int, float, float]]:
        return {name: (eid, x, y) for eid, (name, x, y) in self.entities.items()}


def control_socket(group: str, port: int) -> socket.socket:
    """A socket on the control group, on loopback, as a monitor would have."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    s.settimeout(0.2)
    return s


class MulticastListener:
    """
    The datagrams of the control group and the metrics group (the address
    after the cell block), from a socket on loopback, as a monitor hears them.
    """

    def __init__(self, group: str, port: int) -> None:
        self.sock = control_socket(group, port)
        self.sock.setsockopt(
            socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
            socket.inet_aton(metrics_group(group, "auto", 16, "auto"))
            + socket.inet_aton("127.0.0.1"))

    def next(self) -> bytes | None:
        """The next datagram, or ``None`` after a short wait."""
        try:
            return self.sock.recvfrom(2048)[0]
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


class RedisListener:
    """The datagrams of the channels ``channels``, from a client subscribed to them."""

    def __init__(self, port: int, *channels: str) -> None:
        self.client = RespClient(port)
        for channel in channels:
            self.client.command("SUBSCRIBE", channel)
        self.got: list[bytes] = []

    def next(self) -> bytes | None:
        if not self.got:
            self.got = [data for _channel, data in self.client.messages(0.2)]
        return self.got.pop(0) if self.got else None

    def close(self) -> None:
        self.client.close()


class Multicast:
    """Nodes on a multicast group and port of this test's own; a stranger on loopback."""

    kind = "multicast"

    def __init__(self) -> None:
        self.args = cluster_args()
        self.group, self.port = self.args[1], int(self.args[3])

    def listen(self) -> MulticastListener:
        return MulticastListener(self.group, self.port)

    def inject(self, data: bytes) -> None:
        """Send ``data`` to the control group and to every cell group of the block."""
        first = struct.unpack(">I", socket.inet_aton(self.group))[0] + 1
        targets = [self.group] + [socket.inet_ntoa(struct.pack(">I", first + i))
                                  for i in range(16)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                           socket.inet_aton("127.0.0.1"))
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            for target in targets:
                out.sendto(data, (target, self.port))


class Redis:
    """Nodes on one Redis under a cluster name of this test's own; a stranger publishing."""

    kind = "redis"

    def __init__(self, server: Any) -> None:
        self.server = server
        self.name = f"it{random.randrange(10**9)}"
        self.args = ["--redis", server.url, "--cluster-name", self.name]

    def listen(self) -> RedisListener:
        return RedisListener(self.server.port, f"{self.name}:control", f"{self.name}:metrics")

    def inject(self, data: bytes) -> None:
        """Publish ``data`` on the control channel and every cell channel."""
        client = self.server.client()
        try:
            for channel in ["control"] + [f"cell:{i}" for i in range(16)]:
                client.command("PUBLISH", f"{self.name}:{channel}", data)
        finally:
            client.close()


@pytest.fixture(params=["multicast", "redis"])
def net(request: pytest.FixtureRequest) -> Multicast | Redis:
    """The cluster transport under test: loopback multicast, or a real Redis."""
    if request.param == "redis":
        return Redis(request.getfixturevalue("redis_server"))
    return Multicast()


def metrics_of(listener: Any, key: bytes, node_id: str, timeout: float) -> dict:
    """The next metrics datagram ``node_id`` sends (on the metrics group)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = listener.next()
        if data is None:
            continue
        signed = verify(key, data)
        if signed is None:
            continue
        header = codec.read_header(signed)
        if header.sender == node_id and header.type == codec.METRICS:
            return codec.decode_body(header, signed)
    raise AssertionError(f"no metrics from {node_id} within {timeout}s")


@pytest.fixture
def cluster(start_node, tmp_path, net):
    args = [*net.args, "--cluster-key-file", str(tmp_path / "cluster.key"),
            "--keyframe-interval", str(KEYFRAME), "--heartbeat-interval", str(KEYFRAME),
            "--max-speed", "100000"]
    key = write_key(tmp_path / "cluster.key")

    def start(i: int, *extra: str):
        return start_node(*args, "--node-id", f"node{i}", *extra, name=f"node{i}")

    nodes = [start(i) for i in range(3)]
    for node in nodes:
        wait_until(lambda node=node: node.output.count(" appeared") >= 2, 10,
                   what="each node hears the other two")
    return nodes, start, net, key


def join(node, name: str, x: float, y: float) -> tuple[WireClient, View]:
    client = WireClient(node.port)
    client.login(name)
    client.send(m.Move(1, x, y))
    return client, View(client)


def wait_seen(view: View, names: set[str], timeout: float = 5.0) -> None:
    def ok():
        view.update()
        return names <= set(view.by_name())
    wait_until(ok, timeout, what=f"{names} seen, have {set(view.by_name())}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def move_latencies(mover: WireClient, view: View, name: str, start: tuple[float, float],
                   count: int) -> list[float]:
    """Seconds from each of ``count`` moves to ``view`` showing it (a player on another node)."""
    out = []
    rng = random.Random(count)
    for i in range(count):
        x, y = start[0] + (i % 2) * 5 + 1, start[1] + i % 7
        # At any moment of the nodes' ticks, not just after the one that showed
        # the last move (a bounded read, not a wait for anything).
        view.update(rng.uniform(0, 0.1))
        mover.send(m.Move(100 + i, x, y))
        sent = time.monotonic()

        def shown(x=x, y=y):
            view.update(0.005)
            got = view.by_name().get(name)
            return got is not None and abs(got[1] - x) < 0.01 and abs(got[2] - y) < 0.01
        wait_until(shown, 1.0, interval=0.0, what=f"move {i} of {name} seen")
        out.append(time.monotonic() - sent)
    return out


def test_three_nodes_share_one_world(cluster, tmp_path):
    nodes, start, net, key = cluster
    spots = {"alice": (1050, 1050), "bob": (1060, 1050), "carol": (1050, 1060)}
    players = {name: join(node, name, *spots[name]) for node, name in zip(nodes, spots, strict=True)}
    for name, (_c, view) in players.items():
        wait_seen(view, set(spots) - {name})

    # Chat crosses nodes: said near, shouted to all, whispered to one.
    alice, bob, carol = (players[n][0] for n in ("alice", "bob", "carol"))
    alice.send(m.Chat(m.Channel.SAY, "hello, neighbours"))
    for client in (bob, carol):
        client.expect(m.ChatMessage, lambda msg: msg.text == "hello, neighbours"
                      and msg.sender == "alice" and msg.channel == m.Channel.SAY)
    bob.send(m.Chat(m.Channel.GLOBAL, "to everyone"))
    for client in (alice, carol):
        client.expect(m.ChatMessage, lambda msg: msg.text == "to everyone")
    carol.send(m.Chat(m.Channel.WHISPER, "just you", "alice"))
    alice.expect(m.ChatMessage, lambda msg: msg.channel == m.Channel.WHISPER
                 and msg.sender == "carol" and msg.text == "just you")
    carol.expect(m.ChatMessage, lambda msg: msg.sender == "to alice")

    # How long a move takes to reach a player on another node.
    latencies = move_latencies(alice, players["bob"][1], "alice", spots["alice"], 40)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    (tmp_path / "latency.json").write_text(json.dumps(
        {"transport": net.kind, "moves": len(latencies), "p50_ms": round(p50 * 1000, 1),
         "p99_ms": round(p99 * 1000, 1)}))
    print(f"move seen on another node over {net.kind}: p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms ({len(latencies)} moves)")
    assert p99 < 0.5
    alice.send(m.Move(2, *spots["alice"]))

    # Each sees the other two move within 500 ms.
    for mover, (client, _v) in players.items():
        x, y = spots[mover][0] + 7, spots[mover][1] + 3
        client.send(m.Move(200, x, y))
        started = time.monotonic()
        for name, (_c, view) in players.items():
            if name == mover:
                continue

            def moved(view=view, mover=mover, x=x, y=y):
                view.update(0.01)
                got = view.by_name().get(mover)
                return got is not None and abs(got[1] - x) < 0.01 and abs(got[2] - y) < 0.01
            wait_until(moved, 0.5, interval=0.0, what=f"{name} sees {mover} move")
        assert time.monotonic() - started < 0.6

    # Bob walks away: the others get a leave.
    bob, _ = players["bob"]
    bob.send(m.Move(300, 1900, 1900))
    for name in ("alice", "carol"):
        view = players[name][1]
        wait_until(lambda view=view: (view.update(), "bob" not in view.by_name())[1], 3,
                   what=f"{name} sees bob leave")
    bob.send(m.Move(301, 1055, 1055))
    wait_seen(players["alice"][1], {"bob"})

    # kill -9 carol's node: her player is gone within 3 keyframe intervals.
    killed_at = time.monotonic()
    nodes[2].proc.kill()
    nodes[2].proc.wait(5)
    for name in ("alice", "bob"):
        view = players[name][1]
        wait_until(lambda view=view: (view.update(), "carol" not in view.by_name())[1],
                   EXPIRY + 1.5, what=f"{name} sees carol expire")
    elapsed = time.monotonic() - killed_at
    assert elapsed <= EXPIRY + 0.5, f"carol expired after {elapsed:.2f}s"
    # Her mirror may expire first (last heard in a keyframe), the node itself
    # at most a heartbeat interval later (last heard in a heartbeat).
    wait_until(lambda: "expired" in nodes[0].output, KEYFRAME + 1.0,
               what="node 0 logs carol's node expired")

    # Restart it: the player comes back.
    node2 = start(2)
    carol, carol_view = join(node2, "carol", 1050, 1060)
    wait_seen(carol_view, {"alice", "bob"})
    for name in ("alice", "bob"):
        wait_seen(players[name][1], {"carol"})


def test_wrong_key_datagram_changes_nothing_and_is_counted(cluster):
    nodes, _start, net, key = cluster
    listener = net.listen()
    try:
        before = metrics_of(listener, key, "node0", 5)["auth_failures"]
        alice, view = join(nodes[0], "alice", 1050, 1050)
        body = codec.cell_bodies("world", 210, 1, [codec.full_item(9, 0, 1050, 1050, "mallory")],
                                 [], [], 1000)[0]
        forged = codec.Sealer(b"w" * 32, "node9", 1).seal(codec.CELL_DELTA, body)
        # To the control group and to every cell group of the block.
        net.inject(forged)
        wait_until(lambda: metrics_of(listener, key, "node0", 5)["auth_failures"] >= before + 1,
                   10, what="auth failures counted")
        view.update(2 * KEYFRAME)
        assert "mallory" not in view.by_name()
        values = metrics_of(listener, key, "node0", 5)
        for k in ("connected_clients", "events_per_sec", "tick_hz", "tick_ms_p99",
                  "datagrams_received", "datagrams_dropped", "mirrored_entities"):
            assert k in values
        assert values["connected_clients"] == 1
        assert "failed authentication" in nodes[0].output
    finally:
        listener.close()


def test_views_converge_under_20_percent_loss(start_node, tmp_path):
    args = [*cluster_args(), "--cluster-key-file", str(tmp_path / "cluster.key"),
            "--keyframe-interval", str(KEYFRAME), "--heartbeat-interval", str(KEYFRAME),
            "--max-speed", "100000", "--testing-drop-received", "0.2"]
    write_key(tmp_path / "cluster.key")
    nodes = [start_node(*args, "--node-id", f"lossy{i}", name=f"lossy{i}") for i in range(3)]
    rng = random.Random(3)
    where: dict[str, tuple[float, float]] = {}
    players = {}
    for i, node in enumerate(nodes):
        for j in range(3):
            name = f"p{i}{j}"
            where[name] = (1020 + 60 * rng.random(), 1020 + 60 * rng.random())
            players[name] = join(node, name, *where[name])
    seq = 10
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # bounded: two seconds of random walk
        seq += 1
        for name, (client, view) in players.items():
            x, y = where[name]
            where[name] = (min(max(x + rng.uniform(-3, 3), 1010), 1090),
                           min(max(y + rng.uniform(-3, 3), 1010), 1090))
            client.send(m.Move(seq, *where[name]))
            view.update(0)
        time.sleep(0.1)  # the walk's pace, not a wait for a result
    stopped = time.monotonic()

    wrong: list[str] = []

    def converged():
        wrong.clear()
        for name, (_c, view) in players.items():
            view.update(0.01)
            seen = view.by_name()
            for other, (x, y) in where.items():
                got = seen.get(other)
                if other != name and (
                        got is None or abs(got[1] - x) > 0.01 or abs(got[2] - y) > 0.01):
                    wrong.append(f"{name} sees {other} at {got}, owner has ({x}, {y})")
        return not wrong

    try:
        wait_until(converged, KEYFRAME + 0.5, interval=0.0, what="views match the owners")
    except AssertionError as e:
        raise AssertionError(f"{e}: {wrong}") from None
    took = time.monotonic() - stopped
    assert took <= KEYFRAME + 0.5


def group_of(data: bytes, key: bytes, control: str, cells: CellGroups) -> str:
    """The group a recorded datagram was sent to: its cell's, or the control group."""
    signed = verify(key, data)
    assert signed is not None
    header = codec.read_header(signed)
    if header.type in (codec.CELL_DELTA, codec.CELL_KEYFRAME):
        groups = {cells.group_for(u.zone, u.cell) for u in codec.decode_body(header, signed)}
        assert len(groups) == 1, "the records of one datagram are of one group"
        return groups.pop()
    return control


def test_a_restarted_node_refuses_datagrams_recorded_before_it_started(start_node, tmp_path):
    args = [*cluster_args(), "--cluster-key-file", str(tmp_path / "cluster.key"),
            "--keyframe-interval", str(KEYFRAME), "--heartbeat-interval", str(KEYFRAME),
            "--max-speed", "100000"]
    key = write_key(tmp_path / "cluster.key")
    group, port = args[1], int(args[3])
    # The nodes' defaults: tiles of 3 cells a side; world 20 columns wide, arena 5.
    cells = CellGroups(cell_block(group, "auto", 16), 3, {"world": 20, "arena": 5}.get)
    # A plain socket on every group of the cluster, recording what the nodes send.
    recorder = control_socket(group, port)
    for cell_group in [*cells.groups, metrics_group(group, "auto", 16, "auto")]:
        recorder.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                            socket.inet_aton(cell_group) + socket.inet_aton("127.0.0.1"))
    recorded: list[bytes] = []

    def record(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # bounded: the recording's length
            try:
                recorded.append(recorder.recvfrom(2048)[0])
            except TimeoutError:
                continue

    try:
        a = start_node(*args, "--node-id", "node0", name="node0")
        b = start_node(*args, "--node-id", "node1", name="node1")
        alice, alice_view = join(a, "alice", 1050, 1050)
        bob, _bob_view = join(b, "bob", 1060, 1050)
        wait_seen(alice_view, {"bob"})
        bob.send(m.Chat(m.Channel.GLOBAL, "old news"))
        alice.expect(m.ChatMessage, lambda msg: msg.text == "old news")
        record(3 * KEYFRAME)
        b.stop()  # a bye: bob's node leaves
        a.stop()
        record(0.3)
    finally:
        recorder.close()
    theirs = [d for d in recorded if codec.peek_sender(d) == "node1"]
    assert {d[3] for d in theirs} >= {codec.HEARTBEAT, codec.METRICS, codec.CHAT,
                                       codec.CELL_KEYFRAME, codec.BYE}

    # node0 starts again (a new process), with a player where bob was.
    again = start_node(*args, "--node-id", "node0", name="node0-again")
    ann, ann_view = join(again, "ann", 1055, 1050)
    watch = MulticastListener(group, port)
    try:
        wait_until(lambda: metrics_of(watch, key, "node0", 5)["groups_joined"] > 1, 10,
                   what="the restarted node follows ann's cells")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                           socket.inet_aton("127.0.0.1"))
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            for data in recorded:
                out.sendto(data, (group_of(data, key, group, cells), port))
        to_control = sum(1 for d in theirs if d[3] not in (codec.CELL_DELTA, codec.CELL_KEYFRAME))
        values = wait_until(
            lambda: (v := metrics_of(watch, key, "node0", 5))["datagrams_untimely"]
            >= to_control and v, 10, what="the replayed datagrams refused and counted")
        assert values["cluster_nodes"] == 0
    finally:
        watch.close()
    # Neither bob nor his old line comes back.
    got = ann.drain(2 * KEYFRAME)
    ann_view.feed(got)
    assert "bob" not in ann_view.by_name()
    assert not [msg for msg in got if isinstance(msg, m.ChatMessage) and msg.text == "old news"]
    assert "refused by their clock stamp" in again.output
    assert "node1 appeared" not in again.output
