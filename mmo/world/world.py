"""
The world of one node: zones, entities, viewers, and the tick's bookkeeping.

Pure Python with no I/O and no clock of its own: the node passes the time
in.  Local players, NPCs and mirrors of remote entities all live here alike;
a :class:`Viewer` is what a player's session sees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..wire.messages import CorrectionReason, Kind
from .grid import Entity, Zone, ZoneSpec

_isfinite = math.isfinite
_sqrt = math.sqrt
_INVALID = CorrectionReason.INVALID
_OUT_OF_BOUNDS = CorrectionReason.OUT_OF_BOUNDS
_TOO_FAST = CorrectionReason.TOO_FAST


class Viewer:
    """
    What one entity's player sees: the set of visible entity ids, kept up to
    date by :meth:`World.update_views`.

    After each update, ``enters`` and ``leaves`` hold that tick's changes and
    ``cells`` the keys of the cells whose moves this viewer receives.
    """

    __slots__ = ("entity", "visible", "zone", "center", "cells", "cellset",
                 "enters", "leaves", "resync")

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.visible: set[int] = set()
        self.zone: Zone | None = None
        self.center = -1
        self.cells: tuple[int, ...] = ()
        self.cellset: frozenset[int] = frozenset()
        self.enters: list[Entity] = []
        self.leaves: list[int] = []
        #: Set to get a full view (``Resync`` then every visible entity).
        self.resync = False


class World:
    """Every zone, every entity, and the viewers of this node's players."""

    def __init__(
        self,
        zones: Iterable[ZoneSpec],
        cell_size: float = 100.0,
        max_speed: float = 50.0,
        hysteresis: float | None = None,
    ) -> None:
        self.cell_size = float(cell_size)
        self.max_speed = float(max_speed)
        self.zones: dict[str, Zone] = {}
        for spec in zones:
            if spec.name in self.zones:
                raise ValueError(f"zone {spec.name!r} is configured twice")
            self.zones[spec.name] = Zone(
                spec.name, spec.width, spec.height, cell_size, hysteresis
            )
        if not self.zones:
            raise ValueError("a world needs at least one zone")
        self.default_zone = next(iter(self.zones.values()))
        self.entities: dict[int, Entity] = {}
        self.viewers: dict[int, Viewer] = {}
        #: The ids of the entities whose viewer came or went (:meth:`watch`,
        #: :meth:`unwatch`, a spawn with a viewer, a despawn of one) since
        #: the reader last took the list (:class:`mmo.cluster.groups.Interest`):
        #: what the zones' records miss when a player takes over, or leaves,
        #: an entity standing still.  ``None`` until a reader sets a list:
        #: nothing is kept for nobody.
        self.viewers_changed: list[int] | None = None
        self._next_id = 1

    # -- entities ------------------------------------------------------------

    def allocate_id(self) -> int:
        """A node-local entity id, never 0, never one in use."""
        while True:
            eid = self._next_id
            self._next_id = eid + 1 if eid < 0xFFFFFFFF else 1
            if eid not in self.entities:
                return eid

    def spawn(
        self, name: str, zone: Zone, x: float, y: float,
        kind: int = Kind.PLAYER, owner: str | None = None, view: bool = False,
        now: float = 0.0,
    ) -> Entity:
        e = Entity(self.allocate_id(), name, kind, owner)
        e.last_move = now
        self.entities[e.id] = e
        zone.add(e, x, y)
        if view:
            v = Viewer(e)
            e.viewer = v
            self.viewers[e.id] = v
            if self.viewers_changed is not None:
                self.viewers_changed.append(e.id)
        return e

    def watch(self, e: Entity) -> Viewer:
        """Give ``e`` a viewer (a player arrived for it): it sees its area from the next tick."""
        v = e.viewer
        if v is None:
            v = e.viewer = Viewer(e)
            self.viewers[e.id] = v
            if self.viewers_changed is not None:
                self.viewers_changed.append(e.id)
        return v

    def unwatch(self, e: Entity) -> None:
        """``e`` has no player looking through it any more (it stays in the world)."""
        if self.viewers.pop(e.id, None) is not None and self.viewers_changed is not None:
            self.viewers_changed.append(e.id)
        e.viewer = None

    def despawn(self, e: Entity) -> None:
        if self.entities.pop(e.id, None) is None:
            return
        if e.zone is not None:
            e.zone.remove(e)
        if self.viewers.pop(e.id, None) is not None and self.viewers_changed is not None:
            self.viewers_changed.append(e.id)
        e.viewer = None

    def teleport(self, e: Entity, zone: Zone, x: float, y: float) -> None:
        """Move ``e`` anywhere, another zone included; views change at tick."""
        if e.zone is not None:
            e.zone.remove(e)
        zone.add(e, x, y)

    def check_move(
        self, e: Entity, x: float, y: float, now: float
    ) -> CorrectionReason | None:
        """
        Validate a player's move to ``(x, y)`` at time ``now``; apply it and
        return ``None``, or return why it was refused (the position stays).

        Speed is checked with a distance budget: it grows by ``max_speed``
        (plus 25 % for jitter) per second, up to one second's worth, and each
        move spends its length.  Two moves that arrive together (a network
        hiccup, a slow tick) are fine as long as the walk as a whole keeps to
        the speed; standing still never banks more than a second of travel.
        """
        zone = e.zone
        if zone is None:
            return _INVALID
        if not (_isfinite(x) and _isfinite(y)):
            return _INVALID
        if not (0.0 <= x <= zone.width and 0.0 <= y <= zone.height):  # zone.contains
            return _OUT_OF_BOUNDS
        rate = self.max_speed * 1.25
        # min() and max() spelled out, with the same results (NaN included).
        elapsed = now - e.last_move
        if elapsed < 0.0:
            elapsed = 0.0
        budget = e.budget + elapsed * rate
        if budget > rate:
            budget = rate
        e.last_move = now
        dx = x - e.x
        dy = y - e.y
        dist = _sqrt(dx * dx + dy * dy)
        if dist > budget + 1.0:
            e.budget = budget
            return _TOO_FAST
        # May dip to -1: the one unit of slack is lent, not given, so many
        # small moves cannot add up to more than the speed allows.
        e.budget = budget - dist
        zone.move(e, x, y)
        return None

    # -- the tick ------------------------------------------------------------

    def settle(self) -> None:
        """Apply this tick's moves to every zone's grid."""
        for zone in self.zones.values():
            zone.settle()

    def update_views(self) -> None:
        """Work out each viewer's enters and leaves for this tick."""
        # Viewers in the same cell share an area, and so its arrivals and
        # departures: those are gathered once per area and tick.
        areas: dict[tuple[Zone, int], tuple[list[int], list[Entity]]] = {}
        new_area = self._new_area
        # The same, per centre cell, for the zone of the viewer before (the
        # next viewer is most often in the same zone: no key tuple).
        last_zone: Zone | None = None
        zone_areas: dict[int, tuple[list[int], list[Entity]]] = {}
        for v in self.viewers.values():
            e = v.entity
            zone = e.zone
            if zone is None or v.resync or zone is not v.zone:
                new_area(v)
                continue
            if e.cell != v.center:
                # Another centre is still the same area when it has the same
                # cells: in a zone (or a strip of one) no wider than a view,
                # as a town everyone in it sees whole.  There, working the
                # area out again would cost every crossing the whole crowd.
                # (Neighbours come in one order: the same cells, the same tuple.)
                cells = zone.neighbours(e.cell)
                if cells != v.cells:
                    new_area(v)
                    continue
                v.center = e.cell
                v.cells = cells
            # Same area as last tick (most viewers): only the area's arrivals
            # and departures matter.  Written here rather than in a method,
            # as it runs for every viewer every tick.  Departures first, so
            # that an entity that left and came back within one tick (a
            # teleport) is seen to leave and enter again.
            enters: list[Entity] = []
            leaves: list[int] = []
            v.enters = enters
            v.leaves = leaves
            if zone is not last_zone:
                last_zone = zone
                zone_areas = {}
            changes = zone_areas.get(v.center)
            if changes is None:
                key = (zone, v.center)
                changes = areas.get(key)
                if changes is None:
                    changes = areas[key] = _area_changes(zone, v.cells, v.cellset)
                zone_areas[v.center] = changes
            gone, came = changes
            if gone:
                visible = v.visible
                for eid in gone:
                    if eid in visible:
                        visible.discard(eid)
                        leaves.append(eid)
            if came:
                visible = v.visible
                me = e.id
                for ent in came:
                    eid = ent.id
                    if eid != me and eid not in visible:
                        visible.add(eid)
                        enters.append(ent)

    def _new_area(self, v: Viewer) -> None:
        """
        ``v`` sees another area than last tick (its entity changed cell or
        zone), or asked for a full view, or sees nothing (no zone): what it
        sees is worked out again from the cells.
        """
        e = v.entity
        zone = e.zone
        enters: list[Entity] = []
        leaves: list[int] = []
        v.enters = enters
        v.leaves = leaves
        if zone is None:
            return
        visible = v.visible
        cells = zone.neighbours(e.cell)
        now_visible: dict[int, Entity] = {}
        for key in cells:
            members = zone.cells.get(key)
            if members:
                now_visible.update(members)
        now_visible.pop(e.id, None)
        if v.resync:
            leaves.extend(visible)
            enters.extend(now_visible.values())
        else:
            leaves.extend(visible.difference(now_visible))
            enters.extend(ent for eid, ent in now_visible.items() if eid not in visible)
        v.visible = set(now_visible)
        v.zone = zone
        v.center = e.cell
        v.cells = cells
        v.cellset = frozenset(cells)

    def end_tick(self) -> None:
        for zone in self.zones.values():
            zone.clear_tick()

    # -- queries -------------------------------------------------------------

    def players(self) -> Iterable[Entity]:
        return (e for e in self.entities.values() if e.kind == Kind.PLAYER)

    def find_player(self, name: str) -> Entity | None:
        for e in self.entities.values():
            if e.kind == Kind.PLAYER and e.name == name:
                return e
        return None


def _area_changes(
    zone: Zone, cells: tuple[int, ...], cellset: frozenset[int]
) -> tuple[list[int], list[Entity]]:
    """Who left the area of ``cells`` this tick, and who came into it."""
    gone: list[int] = []
    came: list[Entity] = []
    departed = zone.departed
    arrived = zone.arrived
    # Plain loops: the lists are short, and a generator costs more than they do.
    if departed:
        for key in cells:
            left = departed.get(key)
            if left:
                for eid, to in left:
                    if to not in cellset:
                        gone.append(eid)
    if arrived:
        for key in cells:
            entered = arrived.get(key)
            if entered:
                for ent, frm in entered:
                    if frm not in cellset and ent.zone is zone and (
                            ent.cell == key or (frm == -1 and ent.cell in cellset)):
                        # Where it is now (a record of a cell it has since
                        # left is stale), or, for one placed this tick, any
                        # cell of the area: placed and moved on to another
                        # cell of the area in one tick, only the placing says
                        # it came (its move stays inside the area).
                        came.append(ent)
    return gone, came
