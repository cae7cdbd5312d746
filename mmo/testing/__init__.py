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

from .cluster import FakeCluster, FakeMulticast, FakeMulticastPort, MemoryBus, MemoryTransport
from .node import (
    FakePlayer,
    FakeTransport,
    RecordingExtension,
    extension_node,
    make_node,
    node_settings,
    node_values,
    run_ticks,
)

__all__ = [
    "FakeCluster", "FakeMulticast", "FakeMulticastPort", "FakePlayer", "FakeTransport",
    "MemoryBus", "MemoryTransport", "RecordingExtension", "extension_node", "make_node",
    "node_settings", "node_values", "run_ticks",
]
