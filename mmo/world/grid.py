"""
Zones and their grid of cells: who is where, and what changed this tick.

A zone is a rectangle cut into square cells whose side is the area-of-
interest radius; an entity sees its own cell and the 8 around it.  An entity
changes cell only when it is more than ``hysteresis`` units past its cell's
edge, each axis on its own, so a player standing on a border does not
flicker in and out of its neighbours' views, and one crossing an edge is
never taken over another edge that it is within ``hysteresis`` of.

Membership changes are applied once per tick by :meth:`Zone.settle`, which
records, per cell, who arrived (and from which cell), who departed (and to
which cell) and who moved.  Viewers read those records to update what they
see without scanning every entity.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..wire.messages import Kind


class Entity:
    """Anything with a position in a zone: a player, an NPC, a mirror."""

    __slots__ = (
        "id", "name", "kind", "zone", "x", "y", "cell", "owner", "viewer",
        "data", "dirty", "last_move", "budget", "fence", "__weakref__",
    )

    def __init__(
        self, entity_id: int, name: str, kind: int = Kind.PLAYER,
        owner: str | None = None,
    ) -> None:
        self.id = entity_id
        self.name = name
        self.kind = kind
        self.zone: Zone | None = None
        self.x = 0.0
        self.y = 0.0
        self.cell = -1
        #: ``None`` for entities this node owns; the owner's node id for mirrors.
        self.owner = owner
        self.viewer: Any = None
        #: The key/value record game extensions keep for this entity.
        self.data: dict[str, Any] = {}
        self.dirty = False
        #: When the movement budget was last topped up, and the distance the
        #: entity may still cover (see :meth:`World.check_move`).
        self.last_move = 0.0
        self.budget = 0.0
        #: A box ``(x0, y0, x1, y1)`` to hear of the entity leaving: a move
        #: that ends outside it lists the entity in its zone's ``fenced``.
        self.fence: tuple[float, float, float, float] | None = None

    def __repr__(self) -> str:
        zone = self.zone.name if self.zone else None
        return f"<Entity {self.id} {self.name!r} {zone} ({self.x:.1f}, {self.y:.1f})>"


@dataclass(frozen=True)
class ZoneSpec:
    """A zone's configuration: ``name:WIDTHxHEIGHT`` in flags."""

    name: str
    width: float
    height: float

    @classmethod
    def parse(cls, text: str) -> ZoneSpec:
        try:
            name, size = text.split(":", 1)
            w, h = size.lower().split("x", 1)
            spec = cls(name.strip(), float(w), float(h))
        except ValueError:
            raise ValueError(f"zone {text!r} is not NAME:WIDTHxHEIGHT") from None
        if not spec.name or not (spec.width > 0 and spec.height > 0):
            raise ValueError(f"zone {text!r} needs a name and a positive size")
        if spec.width > 1e6 or spec.height > 1e6:
            raise ValueError(f"zone {text!r} is larger than 1,000,000 units")
        return spec

    def __str__(self) -> str:
        return f"{self.name}:{self.width:g}x{self.height:g}"


class Zone:
    """One zone's grid and this tick's changes in it."""

    def __init__(
        self, name: str, width: float, height: float, cell_size: float,
        hysteresis: float | None = None,
    ) -> None:
        if cell_size <= 0:
            raise ValueError("cell size must be positive")
        self.name = name
        self.width = float(width)
        self.height = float(height)
        self.cell_size = float(cell_size)
        self.hysteresis = (
            cell_size * 0.1 if hysteresis is None else float(hysteresis)
        )
        self.cols = max(1, int(-(-self.width // self.cell_size)))
        self.rows = max(1, int(-(-self.height // self.cell_size)))
        #: cell key -> {entity id: entity}
        self.cells: dict[int, dict[int, Entity]] = {}
        self._neighbours: dict[int, tuple[int, ...]] = {}
        # This tick's records, keyed by cell.
        self.arrived: dict[int, list[tuple[Entity, int]]] = {}
        self.departed: dict[int, list[tuple[int, int]]] = {}
        self.moved: dict[int, list[Entity]] = {}
        #: The entities whose moves this tick ended outside their fence.
        self.fenced: list[Entity] = []
        self._dirty: list[Entity] = []

    # -- geometry ----------------------------------------------------------

    def clamp(self, x: float, y: float) -> tuple[float, float]:
        return min(max(x, 0.0), self.width), min(max(y, 0.0), self.height)

    def contains(self, x: float, y: float) -> bool:
        return 0.0 <= x <= self.width and 0.0 <= y <= self.height

    def cell_at(self, x: float, y: float) -> int:
        cs = self.cell_size
        cx = min(max(int(x // cs), 0), self.cols - 1)
        cy = min(max(int(y // cs), 0), self.rows - 1)
        return cy * self.cols + cx

    def cell_coords(self, key: int) -> tuple[int, int]:
        return key % self.cols, key // self.cols

    def neighbours(self, key: int) -> tuple[int, ...]:
        """The cell and the up to 8 around it: what an entity there sees."""
        found = self._neighbours.get(key)
        if found is None:
            cx, cy = self.cell_coords(key)
            found = tuple(
                ny * self.cols + nx
                for ny in range(max(cy - 1, 0), min(cy + 2, self.rows))
                for nx in range(max(cx - 1, 0), min(cx + 2, self.cols))
            )
            self._neighbours[key] = found
        return found

    def _next_cell(self, e: Entity) -> int:
        """
        The cell ``e`` belongs to now, with hysteresis on borders: on each
        axis, its cell's column (row) until it is more than ``hysteresis``
        past that column's (row's) edge.  So an entity's cell is always
        within ``hysteresis`` of its position, on both axes: a diagonal step
        far past one edge and just past the other moves it one cell over,
        not two (region handoffs rely on it: ``publish_reach``).
        """
        raw = self.cell_at(e.x, e.y)
        if raw == e.cell or e.cell < 0:
            return raw
        cs, h = self.cell_size, self.hysteresis
        cols = self.cols
        cx, cy = e.cell % cols, e.cell // cols
        nx, ny = raw % cols, raw // cols
        if cx * cs - h <= e.x <= (cx + 1) * cs + h:
            nx = cx
        if cy * cs - h <= e.y <= (cy + 1) * cs + h:
            ny = cy
        return ny * cols + nx

    # -- membership --------------------------------------------------------

    def add(self, e: Entity, x: float, y: float) -> None:
        """Place ``e`` here; viewers see it arrive at the next :meth:`settle`."""
        e.zone = self
        e.x, e.y = self.clamp(x, y)
        e.cell = key = self.cell_at(e.x, e.y)
        self.cells.setdefault(key, {})[e.id] = e
        self.arrived.setdefault(key, []).append((e, -1))

    def remove(self, e: Entity) -> None:
        key = e.cell
        members = self.cells.get(key)
        if members is not None:
            members.pop(e.id, None)
            if not members:
                del self.cells[key]
        self.departed.setdefault(key, []).append((e.id, -1))
        e.zone = None
        e.cell = -1

    def move(self, e: Entity, x: float, y: float) -> None:
        """Set ``e``'s position (already validated); cells settle at tick."""
        e.x = x
        e.y = y
        if not e.dirty:
            e.dirty = True
            self._dirty.append(e)

    def settle(self) -> None:
        """Apply this tick's moves to the grid and record what changed."""
        moved, fenced = self.moved, self.fenced
        cs, cols, h = self.cell_size, self.cols, self.hysteresis
        last_col, last_row = cols - 1, self.rows - 1
        for e in self._dirty:
            e.dirty = False
            if e.zone is not self:
                continue
            old = e.cell
            x = e.x
            y = e.y
            f = e.fence
            if f is not None and not (f[0] <= x <= f[2] and f[1] <= y <= f[3]):
                fenced.append(e)
            # Most moves stay in their cell, or within the hysteresis of
            # it: both checked inline (positions are inside the zone, so
            # only the far edges need clamping).
            cx = int(x // cs)
            cy = int(y // cs)
            if cy * cols + cx == old and cx <= last_col and cy <= last_row:
                new = old
            elif old >= 0 and ((old % cols) * cs - h <= x <= (old % cols + 1) * cs + h
                               and (old // cols) * cs - h <= y <= (old // cols + 1) * cs + h):
                new = old
            else:
                new = self._next_cell(e)
            if new != old:
                self._change_cell(e, old, new)
            bucket = moved.get(new)
            if bucket is None:
                moved[new] = [e]
            else:
                bucket.append(e)
        self._dirty = []

    def snap(self, e: Entity) -> None:
        """
        Put ``e`` in the cell of its position now, hysteresis aside, as a
        cell change of this tick (viewers see it step over, no Leave and
        Enter for those who see both cells).  For an entity that changed
        owner: its new owner's cell, not one its old owner's hysteresis kept.
        """
        new = self.cell_at(e.x, e.y)
        old = e.cell
        if e.zone is self and new != old and old >= 0:
            self._change_cell(e, old, new)

    def _change_cell(self, e: Entity, old: int, new: int) -> None:
        """Move ``e`` from cell ``old`` to ``new`` and record it for this tick's viewers."""
        cells = self.cells
        members = cells[old]
        del members[e.id]
        if not members:
            del cells[old]
        cells.setdefault(new, {})[e.id] = e
        e.cell = new
        self.departed.setdefault(old, []).append((e.id, new))
        self.arrived.setdefault(new, []).append((e, old))

    def clear_tick(self) -> None:
        """Forget this tick's records, once every viewer has read them."""
        self.arrived = {}
        self.departed = {}
        self.moved = {}
        self.fenced = []

    def entities(self) -> Iterator[Entity]:
        for members in self.cells.values():
            yield from members.values()

    def count(self) -> int:
        return sum(len(m) for m in self.cells.values())
