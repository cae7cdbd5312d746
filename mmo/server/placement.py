"""
Which node simulates a player: the owner of the region it stands in.

Every node computes region owners the same way from the live nodes the
cluster tells it of (:mod:`mmo.world.regions`); alone, a node owns every
region.  A login (by password or token) whose player stands in another
node's region is answered with a ``Redirect`` to that node and a resume
token made out to it; a player a Redirect sent here stays, whatever this
node thinks, so that two nodes whose views of the cluster differ for a
moment never bounce a client between them.

With ``placement = "connection"`` a player stays on whichever node its
client reached (no Redirects).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from ..interfaces import INumbers
from ..settings import Settings
from ..wire import messages as m
from ..world.grid import Zone
from ..world.regions import Ownership, publish_reach
from .handoff import Handoffs


@implementer(INumbers)
class Placement:
    """Region ownership for one node, and the Redirects it sends."""

    log = Logger()

    def __init__(self, node: Any, settings: Settings) -> None:
        self.node = node
        self.enabled = settings.node.placement == "regions"
        self.ownership = Ownership(settings.regions.layout(settings.node), (node.node_id,),
                                   settings.regions.pins)
        self.redirects = 0
        self.region_cells = settings.regions.cells
        #: How many cells into this node's land other nodes' players can
        #: see (:func:`~mmo.world.regions.publish_reach`): 1 while the grid's
        #: hysteresis is at least the region margin (the defaults).
        self.reach = publish_reach(settings.regions.margin, settings.node.hysteresis,
                                   settings.node.cell_size)
        #: (zone, cell) -> whether other nodes' players may see into it.
        self._published: dict[tuple[str, int], bool] = {}
        #: Players crossing borders, both ways (:mod:`mmo.server.handoff`).
        self.handoffs = Handoffs(node, self, settings.regions.margin,
                                 settings.limits.resume_window)

    def nodes_changed(self, live: frozenset[str]) -> None:
        moved = self.ownership.update(live)
        self._published.clear()
        self.log.info("cluster: {n} live node(s); {moved} region(s) changed owner",
                      n=len(live), moved=len(moved))
        self.handoffs.nodes_changed(self.node.clock.seconds())

    def owned_cells(self) -> frozenset[tuple[str, int]]:
        """
        The cells of the regions this node owns (see
        :meth:`~mmo.world.regions.Ownership.cells_of`); none with
        ``placement = "connection"``.
        """
        if not self.enabled:
            return frozenset()
        return self.ownership.cells_of(self.node.node_id)

    def numbers(self) -> dict[str, Any]:
        out = self.handoffs.numbers()
        out["redirects"] = self.redirects
        return out

    def published(self, zone: Zone, key: int) -> bool:
        """
        Whether another node's players may see cell ``key`` of ``zone``: it
        lies within :attr:`reach` cells of a region another node owns (with
        the default hysteresis and margin, it touches one: a player of
        theirs is handed to us before the grid puts it in a cell of ours).
        Only those cells need publishing; with ``placement = "connection"``
        every cell does.
        """
        if not self.enabled:
            return True
        found = self._published.get((zone.name, key))
        if found is None:
            cx, cy = zone.cell_coords(key)
            rc, me, owner, name = self.region_cells, self.node.node_id, self.ownership.owner, zone.name
            r = self.reach
            found = any(
                owner((name, nx // rc, ny // rc)) != me
                for ny in range(max(cy - r, 0), min(cy + r + 1, zone.rows))
                for nx in range(max(cx - r, 0), min(cx + r + 1, zone.cols)))
            self._published[(zone.name, key)] = found
        return found

    def owner_at(self, zone: str, x: float, y: float) -> str:
        return self.ownership.owner_at(zone, x, y)

    def elsewhere(self, name: str, zone: Zone, x: float, y: float,
                  for_me: bool = False) -> m.Redirect | None:
        """
        A ``Redirect`` to the node that owns ``(x, y)`` of ``zone``, when that
        is another node players can be sent to; else ``None`` (play here).
        ``for_me``: a Redirect sent the player here, and it stays.
        """
        node = self.node
        if not self.enabled or for_me or node.cluster is None or node.resumes is None:
            return None
        owner = self.ownership.owner_at(zone.name, x, y)
        if owner == node.node_id:
            return None
        door = node.cluster.player_door(owner)
        if door is None:
            return None
        token = node.resumes.book.mint(name, zone.name, x, y, for_node=owner)
        self.redirects += 1
        self.log.info("player {name} sent to node {owner} at {host}:{port}, the owner of "
                      "its region", name=name, owner=owner, host=door[0], port=door[1])
        return m.Redirect(door[0], door[1], door[2], token)
