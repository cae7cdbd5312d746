"""
Which multicast group carries which cell, and which cells this node needs.

A block of ``count`` group addresses starting at ``base`` is hashed over
``(zone, tile)``, a tile being a square of ``tile`` x ``tile`` cells: the
cells a player sees together mostly share a group, and their records share
datagrams.  Several tiles share a group, so receivers filter by the
``(zone, cell)`` in the payload.  :class:`Interest` follows this node's
players through the per-tick records of the grid and says which cells (the
one each player is in and the 8 around it) became wanted or unwanted; the
world's list of viewers that came or went tells it of the players that
took over, or left, an entity standing still.  It also counts the cells
the node follows because it owns them (:meth:`Interest.follow`: the cells
of its regions, where another node's ``Handoff`` may land).
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..world.grid import Zone
from ..world.world import World

Cell = tuple[str, int]


def _to_int(address: str) -> int:
    return struct.unpack(">I", socket.inet_aton(address))[0]


def _to_str(n: int) -> str:
    return socket.inet_ntoa(struct.pack(">I", n))


def cell_block(control: str, base: str, count: int) -> list[str]:
    """
    The cell groups: ``count`` addresses from ``base`` (``"auto"``: the one
    after the control group).  Every address must be multicast, the control
    group not among them.
    """
    start = _to_int(control) + 1 if base == "auto" else _to_int(base)
    groups = [_to_str(start + i) for i in range(count)]
    for g in (groups[0], groups[-1]):
        if not 224 <= int(g.split(".")[0]) <= 239:
            raise ValueError(f"cell group block {groups[0]}..{groups[-1]} leaves 224.0.0.0/4")
    if control in groups:
        raise ValueError(f"the control group {control} is inside the cell group block")
    return groups


def metrics_group(control: str, base: str, count: int, group: str) -> str:
    """
    The group the nodes' metrics go to (``group``, or with ``"auto"`` the
    address after the cell block): monitors join it, nodes do not, so that
    a node's cost does not grow with every other node's metrics.
    """
    if group != "auto":
        found = group
    else:
        found = _to_str(_to_int(cell_block(control, base, count)[-1]) + 1)
        if not 224 <= int(found.split(".")[0]) <= 239:
            raise ValueError(f"the metrics group after the cell block, {found}, is not "
                             "multicast: set it")
    if found == control or found in cell_block(control, base, count):
        raise ValueError(f"the metrics group {found} is the control group or a cell group")
    return found


def zone_cols(world: World) -> Callable[[str], int]:
    """A zone's width in cells, read from ``world`` (1 for a zone it lacks)."""

    def cols(zone: str) -> int:
        z = world.zones.get(zone)
        return z.cols if z is not None else 1

    return cols


def cluster_groups(settings: Any, cols: Callable[[str], int]) -> tuple[CellGroups, str]:
    """
    The cell groups and the metrics group of ``settings`` (a node's or a
    monitor's: ``mgroup``, ``cell_group_base``, ``cell_group_count``,
    ``cell_group_tile``, ``metrics_group``), the same on both; ``ValueError``
    saying why when they cannot be.
    """
    block = cell_block(settings.mgroup, settings.cell_group_base, settings.cell_group_count)
    groups = CellGroups(block, settings.cell_group_tile, cols)
    return groups, metrics_group(settings.mgroup, settings.cell_group_base,
                                 settings.cell_group_count, settings.metrics_group)


class CellGroups:
    """
    ``(zone, cell)`` -> group address, the same on every node: the group of
    the cell's tile, the square of ``tile`` x ``tile`` cells holding it.
    ``cols(zone)`` is the zone's width in cells (cells are numbered
    ``row * cols + col``); tiles are numbered the same way over the zone's
    ``ceil(cols / tile)`` columns of tiles, and a tile's number is hashed
    as a cell's was: with ``tile`` 1, the tile is the cell.
    """

    def __init__(self, groups: list[str], tile: int = 1,
                 cols: Callable[[str], int] | None = None) -> None:
        if not groups:
            raise ValueError("at least one cell group is needed")
        if tile < 1:
            raise ValueError(f"a tile of {tile} cells")
        if tile > 1 and cols is None:
            raise ValueError("tiles of several cells need the zones' widths")
        self.groups = groups
        self.tile = tile
        self.cols = cols
        self._cache: dict[Cell, str] = {}

    def tile_of(self, zone: str, cell: int) -> int:
        """The number of the tile holding ``cell`` of ``zone``."""
        t = self.tile
        if t == 1 or self.cols is None:
            return cell
        cols = max(1, self.cols(zone))
        row, col = divmod(cell, cols)
        return (row // t) * -(-cols // t) + col // t

    def group_for(self, zone: str, cell: int) -> str:
        key = (zone, cell)
        g = self._cache.get(key)
        if g is None:
            tile = self.tile_of(zone, cell)
            g = self.groups[zlib.crc32(f"{zone}\x00{tile}".encode()) % len(self.groups)]
            if len(self._cache) >= 1 << 20:
                self._cache.clear()
            self._cache[key] = g
        return g

    def sort(self, cells: list[Cell]) -> dict[str, list[Cell]]:
        """``cells`` by the group each maps to."""
        out: dict[str, list[Cell]] = {}
        group_for = self.group_for
        for cell in cells:
            group = group_for(*cell)
            found = out.get(group)
            if found is None:
                out[group] = [cell]
            else:
                found.append(cell)
        return out


class Interest:
    """The cells this node's players can see, updated from each tick's records."""

    def __init__(self) -> None:
        #: viewer entity id -> the cell it is counted in
        self.viewers: dict[int, Cell] = {}
        self.cells: Counter[Cell] = Counter()
        #: The cells followed because this node owns them (each counted once).
        self.owned: frozenset[Cell] = frozenset()
        self._world: World | None = None

    def __contains__(self, cell: Cell) -> bool:
        return cell in self.cells

    def seen(self) -> list[Cell]:
        """The cells some player of this node sees (not only owned)."""
        owned = self.owned
        return [c for c, n in self.cells.items() if n > (c in owned)]

    def follow(self, cells: frozenset[Cell]) -> tuple[list[Cell], list[Cell]]:
        """
        Follow ``cells`` as owned from now on (instead of the last set);
        return the cells gained and lost, as :meth:`update` does.
        """
        old, self.owned = self.owned, cells
        counts = self.cells
        gained = []
        for c in cells - old:
            counts[c] += 1
            if counts[c] == 1:
                gained.append(c)
        lost = []
        for c in old - cells:
            counts[c] -= 1
            if counts[c] <= 0:
                del counts[c]
                lost.append(c)
        return gained, lost

    def update(self, world: World) -> tuple[list[Cell], list[Cell]]:
        """Read this tick's records; return the cells gained and lost."""
        first = world is not self._world
        self._world = world
        # cell -> whether it was wanted before this update (first touch only)
        touched: dict[Cell, bool] = {}
        viewers = self.viewers
        for zone in world.zones.values():
            zname = zone.name
            for key, gone in zone.departed.items():
                for eid, to in gone:
                    if viewers.get(eid) == (zname, key):
                        e = world.entities.get(eid)
                        if e is None or e.zone is not zone or e.cell != key:
                            if e is not None and e.zone is zone and e.cell == to:
                                # A step into the next cell (most): only the
                                # cells it sees no more, or newly, change.
                                self._step(eid, zone, key, to, touched)
                            else:
                                self._drop(eid, touched)
        for zone in world.zones.values():
            for key, came in zone.arrived.items():
                for e, _frm in came:
                    if (e.viewer is not None and e.zone is zone and e.cell == key
                            and viewers.get(e.id) != (zone.name, key)):
                        self._drop(e.id, touched)
                        self._add(e.id, zone.name, key, touched)
        # A player took over an entity that stood still (a handoff's
        # arrival), or left one standing (handed away): no zone recorded it,
        # the world did, since the last update.  The first update compares
        # every viewer (the world kept no list before it asked for one).
        changed = world.viewers_changed
        if first or changed is None:
            changed = list(viewers.keys() | world.viewers.keys())
            world.viewers_changed = []
        elif changed:
            world.viewers_changed = []
        for eid in changed:
            if eid in world.viewers:
                if eid not in viewers:
                    e = world.entities.get(eid)
                    if e is not None and e.zone is not None:
                        self._add(eid, e.zone.name, e.cell, touched)
            elif eid in viewers:
                self._drop(eid, touched)
        cells = self.cells
        gained = [c for c, was in touched.items() if not was and c in cells]
        lost = [c for c, was in touched.items() if was and c not in cells]
        return gained, lost

    def _add(self, eid: int, zone: str, key: int, touched: dict[Cell, bool]) -> None:
        assert self._world is not None
        self.viewers[eid] = (zone, key)
        self._count(zone, (), self._world.zones[zone].neighbours(key), touched)

    def _step(self, eid: int, zone: Zone, old: int, new: int,
              touched: dict[Cell, bool]) -> None:
        """Viewer ``eid`` went from cell ``old`` of ``zone`` to ``new``."""
        self.viewers[eid] = (zone.name, new)
        before = zone.neighbours(old)
        after = zone.neighbours(new)
        self._count(zone.name, [n for n in before if n not in after],
                    [n for n in after if n not in before], touched)

    def _drop(self, eid: int, touched: dict[Cell, bool]) -> None:
        old = self.viewers.pop(eid, None)
        if old is None:
            return
        assert self._world is not None
        zone, key = old
        self._count(zone, self._world.zones[zone].neighbours(key), (), touched)

    def _count(self, zone: str, unseen: Any, seen: Any, touched: dict[Cell, bool]) -> None:
        """One viewer fewer in the cells ``unseen`` of ``zone``, one more in ``seen``."""
        cells = self.cells
        for n in unseen:
            c = (zone, n)
            touched.setdefault(c, c in cells)
            cells[c] -= 1
            if cells[c] <= 0:
                del cells[c]
        for n in seen:
            c = (zone, n)
            touched.setdefault(c, c in cells)
            cells[c] += 1
