"""
Which node owns each region of the monitor's zone, computed as the nodes do.

The nodes cut each zone into regions and give each region an owner among
the live nodes (:mod:`mmo.world.regions`).  :class:`RegionView` does the
same for the one zone the monitor shows, with the live nodes the monitor
knows from heartbeats: every node whose heartbeat it has heard until it says
bye or goes silent for the nodes' expiry.  It needs the nodes'
``region_cells``, ``region_block`` and ``region_map``; with other values it
draws other regions than the nodes use.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..settings import RegionSettings
from ..world.grid import ZoneSpec
from ..world.regions import Ownership, RegionLayout

#: A region's rectangle: ``(x0, y0, x1, y1)`` in world units, clipped to the zone.
Bounds = tuple[float, float, float, float]


class RegionView:
    """
    The regions of one zone and their owners for the live nodes given to
    :meth:`nodes_changed`.  :attr:`version` counts the times owners were
    recomputed (the live node set changed), so that a view redraws only then.
    """

    def __init__(self, zone: ZoneSpec, cell_size: float,
                 regions: RegionSettings | None = None) -> None:
        regions = regions if regions is not None else RegionSettings()
        self.layout = RegionLayout([zone], cell_size, regions.cells, regions.block)
        self.zone = self.layout.zone(zone.name)
        self.pins = tuple(p for p in regions.pins if p.zone == zone.name)
        self.layout.check_pins(self.pins)
        self.ownership: Ownership | None = None
        self.version = 0
        self._owners: list[tuple[Bounds, str]] = []
        self._counts: dict[str, int] = {}

    @property
    def nodes(self) -> frozenset[str]:
        """The live nodes owners are computed for."""
        return self.ownership.nodes if self.ownership is not None else frozenset()

    def nodes_changed(self, live: Iterable[str]) -> bool:
        """Take the live node set; recompute owners if it changed (then return True)."""
        live = frozenset(live)
        if live == self.nodes:
            return False
        if not live:
            self.ownership = None
        elif self.ownership is None:
            self.ownership = Ownership(self.layout, live, self.pins)
        else:
            self.ownership.update(live)
        self._owners = []
        self._counts = dict.fromkeys(sorted(live), 0)
        if self.ownership is not None:
            for region in self.zone.regions():
                _zone, rx, ry = region
                owner = self.ownership.owner(region)
                self._owners.append((self.zone.bounds(rx, ry), owner))
                self._counts[owner] += 1
        self.version += 1
        return True

    def owners(self) -> list[tuple[Bounds, str]]:
        """Each region of the zone, row by row: its bounds and owner (none without live nodes)."""
        return list(self._owners)

    def counts(self) -> dict[str, int]:
        """How many of the zone's regions each live node owns (0 for those that own none)."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        """Regions in the zone."""
        return self.zone.region_cols * self.zone.region_rows
