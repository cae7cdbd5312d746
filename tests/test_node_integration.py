"""The real ``twistd -n mmo`` over real sockets on 127.0.0.1."""

from __future__ import annotations

from support import WireClient

from mmo.wire import messages as m


def test_two_players_see_each_other(start_node):
    node = start_node()
    alice = WireClient(node.port)
    a = alice.login("alice")
    bob = WireClient(node.port)
    b = bob.login("bob")
    enter = alice.expect(m.Enter, lambda msg: any(e.name == "bob" for e in msg.entities))
    assert [e.entity_id for e in enter.entities if e.name == "bob"] == [b.entity_id]
    bob.expect(m.Enter, lambda msg: any(e.entity_id == a.entity_id for e in msg.entities))
