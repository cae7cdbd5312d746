"""
Datagrams recorded from a running cluster and replayed to a node started
after the recording: every one refused and counted, nothing comes back
(no ghost of a departed node, none of its players, none of its chat).
In memory, on one ``Clock``: no sockets, no real time.
"""

from __future__ import annotations

from collections import Counter

import pytest
from twisted.logger import capturedLogs

from mmo.cluster import codec
from mmo.cluster.opener import ACCEPT, BEFORE_START, LOOPED, RESTARTED
from mmo.testing import FakeCluster, FakePlayer
from mmo.wire import messages as m
from mmo.world.grid import Entity

KEY = b"k" * 32
HZ = 10
OLD_LINES = {"old global", "old say", "old zone", "old whisper"}


def move(p: FakePlayer, x: float, y: float) -> None:
    p.entity.last_move -= 1.0
    p.send(m.Move(1, x, y))


def chat_texts(p: FakePlayer) -> set[str]:
    """Every chat line ``p`` got so far."""
    p.received()
    return {x.text for x in p.log if isinstance(x, m.ChatMessage)}


def recorded_cluster() -> tuple[FakeCluster, list[tuple[bytes, str, int]]]:
    """
    Three nodes with a player each in one cell; bob (on n1) talks on every
    channel, then n1 stops.  Returns the cluster and every datagram any
    node wrote: (data, group, port).
    """
    c = FakeCluster(["n0", "n1", "n2"], key=KEY, max_speed=100_000.0, keyframe_interval=1.0)
    ports = [svc.transport.port for svc in c.services]
    alice, bob, carol = (FakePlayer(node, name)
                         for node, name in zip(c.nodes, ["alice", "bob", "carol"], strict=True))
    for p, (x, y) in zip((alice, bob, carol), [(1050, 1050), (1060, 1050), (1050, 1060)],
                         strict=True):
        move(p, x, y)
    c.step(3)
    bob.send(m.Chat(m.Channel.GLOBAL, "old global"))
    bob.send(m.Chat(m.Channel.SAY, "old say"))
    bob.send(m.Chat(m.Channel.ZONE, "old zone"))
    bob.send(m.Chat(m.Channel.WHISPER, "old whisper", "carol"))
    c.step(HZ)
    assert OLD_LINES <= chat_texts(alice) | chat_texts(carol)
    # Carol walks off and back: her node asks for keyframes of the cells it gains.
    move(carol, 1550, 1560)
    c.step(1)
    move(carol, 1050, 1060)
    c.step(2)
    # A player came back on n0 with a token, and n0 handed one (of no zone) to n2.
    c.services[0].resumed("ghost", b"12345678", c.clock.seconds() + 30)
    c.services[0].hand_off(Entity(999, "nobody"), "n2", b"{}")
    # n0 asks where carol was; n2 (hers) answers.
    c.services[0].locate("carol")
    c.services[1].stopService()
    c.step(2)
    assert "bob" not in alice.names_seen()
    recorded = [(data, group, port) for p in ports for data, (group, port) in p.written]
    kinds = {data[3] for data, _g, _p in recorded}
    assert kinds == codec.TYPES, "the recording holds a datagram of every type"
    return c, recorded


@pytest.mark.parametrize("new_id", ["n3", "n1"])
def test_a_node_started_after_a_recording_refuses_all_of_it(new_id):
    c, recorded = recorded_cluster()
    c.step(HZ)  # a second later, a node starts (n1 again: a restart of the one that left)
    node, svc = c.add(new_id)
    dave = FakePlayer(node, "dave")
    move(dave, 1055, 1055)  # in the recorded cell: its group is joined
    c.step(1)
    joined = set(svc.transport.port.joined)
    before = Counter(svc.opener.counts)
    with capturedLogs() as events:
        for data, group, port in recorded:
            c.net.inject(data, group, port)
    got = Counter(svc.opener.counts)
    got.subtract(before)
    heard = [codec.peek_sender(d) for d, g, _p in recorded if g in joined]
    kinds = {d[3] for d, g, _p in recorded if g in joined and codec.peek_sender(d) != new_id}
    # Of every type (the same id hears its own old chat and bye as looped,
    # ignored), but metrics: they go to the metrics group, which no node joins.
    assert svc.metrics_group not in joined
    everything = codec.TYPES - {codec.METRICS}
    assert kinds == (everything if new_id == "n3" else everything - {codec.CHAT, codec.BYE})
    own = sum(1 for s in heard if s == new_id)
    assert +got == Counter({BEFORE_START: len(heard) - own, LOOPED: own})
    assert len(heard) - own > 20 and got[ACCEPT] == got[RESTARTED] == 0
    numbers = node.snapshot()
    assert numbers["datagrams_untimely"] == len(heard) - own
    assert numbers["replays"] >= numbers["datagrams_untimely"]
    # One log line for the burst (the first refusal, at once), saying why.
    lines = [e for e in events
             if e.get("log_source") is svc and "clock stamp" in str(e.get("what", ""))]
    assert len(lines) == 1 and "before this reader started" in lines[0]["why"]

    # The departed node and its player never appear; no old line is delivered.
    c.step(2)
    assert "n1" not in svc.mirrors.nodes or new_id == "n1"
    assert all(key[0] != "n1" for key in svc.mirrors.mirrors)
    assert node.world.find_player("bob") is None
    assert "bob" not in dave.names_seen()
    assert not chat_texts(dave) & OLD_LINES
    # While the live nodes are heard as usual.
    c.step(HZ)
    assert dave.names_seen() == {"alice", "carol"}
    assert set(svc.mirrors.nodes) == {"n0", "n2"}


def test_nodes_that_ran_all_along_refuse_the_recording_of_one_that_left():
    c, recorded = recorded_cluster()
    alice_node, alice_svc = c.nodes[0], c.services[0]
    accepted = alice_svc.opener.accepted
    for data, group, port in recorded:
        if codec.peek_sender(data) == "n1":
            c.net.inject(data, group, port)
    # n1 said bye: nothing more of that run is accepted.
    assert alice_svc.opener.accepted == accepted
    c.step(2)
    assert "n1" not in alice_svc.mirrors.nodes
    assert alice_node.world.find_player("bob") is None

