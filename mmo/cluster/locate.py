"""
Where was a player last seen?  Asked by a node a player came back to with a
resume token (its own node may have died), answered by every node that
knows: one that still has the player, or mirrors it, or saw its mirror go.

The asking node sends ``Where`` on the control group and waits
:data:`WAIT` seconds for ``Here`` answers; the freshest wins (its own
knowledge included).  Alone, or with nobody answering, it goes on with what
it knows.  At most :data:`MAX_PENDING` questions wait at once (a resume
storm then goes on without asking), so questions never grow memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed

from . import codec
from .control import Here, Where

#: Seconds a node waits for answers.
WAIT = 0.25
#: Questions waiting at once, at most.
MAX_PENDING = 10_000

Seen = tuple[float, str, float, float]


class Locator:
    """One node's questions about players, and its answers to the others'."""

    def __init__(self, node_id: str, clock: Any, send: Callable[[int, bytes], None],
                 known: Callable[[str], Seen | None],
                 others: Callable[[], int]) -> None:
        self.node_id = node_id
        self.clock = clock
        self.send = send
        #: What this node knows of a player: (seconds, zone, x, y) or None.
        self.known = known
        #: How many other live nodes there are.
        self.others = others
        self.pending: dict[int, tuple[Deferred, list[Seen]]] = {}
        self._next = 0
        self.asked = 0
        self.answered = 0

    def locate(self, name: str) -> Deferred:
        """Fire with the freshest ``(seconds, zone, x, y)`` known in the cluster, or None."""
        mine = self.known(name)
        if not self.others() or len(self.pending) >= MAX_PENDING:
            return succeed(mine)
        self._next = (self._next + 1) & 0xFFFFFFFF
        query = self._next
        d: Deferred = Deferred()
        self.pending[query] = (d, [mine] if mine is not None else [])
        self.send(codec.WHERE, Where(query, name).body())
        self.asked += 1
        self.clock.callLater(WAIT, self._done, query)
        return d

    def _done(self, query: int) -> None:
        d, seen = self.pending.pop(query)
        d.callback(max(seen) if seen else None)

    def asked_by(self, sender: str, where: Where) -> None:
        """Another node asks: answer if this node knows anything of the player."""
        seen = self.known(where.name)
        if seen is None:
            return
        heard, zone, x, y = seen
        self.send(codec.HERE, Here(where.query, heard, x, y, sender, where.name, zone).body())
        self.answered += 1

    def answer(self, here: Here) -> None:
        """An answer: kept if it is to a question of ours still waiting."""
        if here.asker != self.node_id:
            return
        waiting = self.pending.get(here.query)
        if waiting is not None:
            waiting[1].append((here.heard, here.zone, here.x, here.y))
