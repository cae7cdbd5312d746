"""
Regions: which node simulates which part of the world.

Pure Python with no I/O.  Each zone's grid of cells is cut into **regions**,
squares of ``region_cells`` x ``region_cells`` whole cells (the last row and
column of a zone may be partial; a zone smaller than one region is one
region).  A region is named by ``(zone, rx, ry)``.

Each region has exactly one owner node at a time, and every node computes
the same owner from the same set of live nodes (known from heartbeats):

- **Pins** first: an operator may pin regions, or whole zones, to node ids
  (``region_map``).  A pin wins while its node is live; pins are tried in
  the order given, so ``world:0,0=a`` then ``world:0,0=b`` names a standby.
  When no pinned node of a region is live, the region falls back to hashing
  among the live nodes, and comes back to its pinned node when that node
  is live again.
- **Weighted rendezvous hashing over blocks** otherwise: regions are grouped
  in blocks of ``block`` x ``block`` regions, and each block goes to the
  node with the highest score ``-weight / ln(u)``, ``u`` a uniform number in
  (0, 1) drawn from a BLAKE2b hash of (zone, block, node): a node's share of
  blocks is proportional to its weight.  Neighbouring regions of one block
  share an owner, so that a node's territory has fewer borders.  A node
  that joins takes only the blocks it now wins; a node that leaves gives up
  only its own: nothing else moves.  With equal weights the hashes are
  compared as integers (no floating point), so that nodes on any platform
  agree bit for bit.

:class:`Ownership` caches the owner of each region looked up, for one live
node set, and recomputes only when the set changes: :meth:`Ownership.owner_at`
is a division and a dictionary lookup, cheap enough for every move.

:func:`crossed` is the border rule for players: a player stays with the
region it is owned by until it is more than ``margin`` world units outside
that region, so one walking along a border does not bounce between owners.
:func:`publish_reach` says how far into a node's land other nodes' players
can see, given that rule and the grid's hysteresis.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .grid import ZoneSpec

#: A region's name: (zone, rx, ry).
RegionId = tuple[str, int, int]

#: Live nodes: ids, or ids with weights (a node's share is proportional).
NodeSet = Iterable[str] | Mapping[str, float]

#: A zone of at most this many cells has its regions' cells followed by
#: their owner (:meth:`Ownership.cells_of`), so that a ``Handoff`` sent on
#: the group of the player's cell reaches the new owner; in a larger zone
#: each node would hold a count per cell of its share, and handoffs go on
#: the control group instead.  Every node computes the same from the zones.
FOLLOW_LIMIT = 65_536


def owners_follow(cols: int, rows: int) -> bool:
    """Whether the owners of a zone of ``cols`` x ``rows`` cells follow its cells."""
    return cols * rows <= FOLLOW_LIMIT


# -- geometry ----------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneRegions:
    """The regions of one zone: ``region_cells`` cells per side."""

    zone: str
    width: float
    height: float
    cell_size: float
    region_cells: int

    def __post_init__(self) -> None:
        if self.cell_size <= 0:
            raise ValueError("cell size must be positive")
        if self.region_cells < 1:
            raise ValueError("a region is at least one cell")

    @property
    def cols(self) -> int:
        """Cells per row (as the zone's grid counts them)."""
        return max(1, int(-(-self.width // self.cell_size)))

    @property
    def rows(self) -> int:
        return max(1, int(-(-self.height // self.cell_size)))

    @property
    def region_cols(self) -> int:
        """Regions per row; the last may have fewer cells."""
        return -(-self.cols // self.region_cells)

    @property
    def region_rows(self) -> int:
        return -(-self.rows // self.region_cells)

    @property
    def side(self) -> float:
        """A whole region's side in world units."""
        return self.region_cells * self.cell_size

    def region_at(self, x: float, y: float) -> tuple[int, int]:
        """The region of the cell at ``(x, y)`` (positions outside clamp to the edge)."""
        cs = self.cell_size
        cx = min(max(int(x // cs), 0), self.cols - 1)
        cy = min(max(int(y // cs), 0), self.rows - 1)
        return cx // self.region_cells, cy // self.region_cells

    def contains(self, rx: int, ry: int) -> bool:
        return 0 <= rx < self.region_cols and 0 <= ry < self.region_rows

    def bounds(self, rx: int, ry: int) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of the region, clipped to the zone."""
        side = self.side
        return (rx * side, ry * side, min((rx + 1) * side, self.width),
                min((ry + 1) * side, self.height))

    def cells(self, rx: int, ry: int) -> tuple[range, range]:
        """The cell columns and rows of the region."""
        n = self.region_cells
        return (range(rx * n, min((rx + 1) * n, self.cols)),
                range(ry * n, min((ry + 1) * n, self.rows)))

    def regions(self) -> Iterator[RegionId]:
        for ry in range(self.region_rows):
            for rx in range(self.region_cols):
                yield self.zone, rx, ry


class RegionLayout:
    """
    The regions of every zone, and the blocks they are hashed in.

    ``block`` is the side of a hashing block in regions: the ``block`` x
    ``block`` regions of one block always share an owner (pins apart).
    """

    def __init__(self, zones: Iterable[ZoneSpec], cell_size: float, region_cells: int,
                 block: int = 1) -> None:
        if block < 1:
            raise ValueError("a block is at least one region")
        self.cell_size = float(cell_size)
        self.region_cells = int(region_cells)
        self.block = int(block)
        self.zones: dict[str, ZoneRegions] = {}
        for spec in zones:
            if spec.name in self.zones:
                raise ValueError(f"zone {spec.name!r} is configured twice")
            self.zones[spec.name] = ZoneRegions(
                spec.name, spec.width, spec.height, self.cell_size, self.region_cells)

    def zone(self, name: str) -> ZoneRegions:
        try:
            return self.zones[name]
        except KeyError:
            raise KeyError(f"no zone named {name!r}") from None

    def region_at(self, zone: str, x: float, y: float) -> RegionId:
        rx, ry = self.zone(zone).region_at(x, y)
        return zone, rx, ry

    def block_of(self, region: RegionId) -> RegionId:
        zone, rx, ry = region
        return zone, rx // self.block, ry // self.block

    def regions(self) -> Iterator[RegionId]:
        """Every region of every zone (as many as the zones have: mind large worlds)."""
        for z in self.zones.values():
            yield from z.regions()

    def check_pins(self, pins: Sequence[RegionPin]) -> None:
        """Raise ``ValueError`` for a pin of an unknown zone or of regions it does not have."""
        for pin in pins:
            z = self.zones.get(pin.zone)
            if z is None:
                raise ValueError(f"{pin}: no zone named {pin.zone!r} (zones: "
                                 f"{', '.join(self.zones)})")
            if pin.rx is not None and pin.ry is not None and (
                    pin.rx[1] >= z.region_cols or pin.ry[1] >= z.region_rows):
                raise ValueError(
                    f"{pin}: zone {pin.zone!r} has regions 0..{z.region_cols - 1} across "
                    f"and 0..{z.region_rows - 1} down ({z.region_cells} cells a side)")


# -- pins --------------------------------------------------------------------------

_NODE = r"[^\s=;]+"
_SPAN = r"(\d+)(?:-(\d+))?"
_PIN = re.compile(rf"\s*([^\s=:]+)(?::\s*{_SPAN}\s*,\s*{_SPAN})?\s*")


@dataclass(frozen=True)
class RegionPin:
    """
    Regions pinned to a node: a whole zone (``rx`` and ``ry`` ``None``) or
    the regions with ``rx[0] <= rx <= rx[1]`` and ``ry[0] <= ry <= ry[1]``.
    Written ``zone=node``, ``zone:rx,ry=node`` or ``zone:rx0-rx1,ry0-ry1=node``.
    """

    zone: str
    node: str
    rx: tuple[int, int] | None = None
    ry: tuple[int, int] | None = None

    def covers(self, region: RegionId) -> bool:
        zone, rx, ry = region
        if zone != self.zone:
            return False
        if self.rx is None or self.ry is None:
            return True
        return self.rx[0] <= rx <= self.rx[1] and self.ry[0] <= ry <= self.ry[1]

    @classmethod
    def parse(cls, text: str) -> RegionPin:
        """One pin from ``ZONE[:RX,RY]=NODE`` (RX and RY may be ranges ``A-B``)."""
        where, sep, node = text.partition("=")
        return cls.of(where, node if sep else "", text)

    @classmethod
    def of(cls, where: str, node: object, text: str | None = None) -> RegionPin:
        """The pin of ``where`` (``ZONE`` or ``ZONE:RX,RY``) to ``node``."""
        shown = text if text is not None else f"{where}={node}"
        form = "ZONE=NODE, ZONE:RX,RY=NODE or ZONE:RX0-RX1,RY0-RY1=NODE"
        if not isinstance(node, str) or not re.fullmatch(_NODE, node.strip()):
            raise ValueError(f"region pin {shown!r} names no node id ({form})")
        m = _PIN.fullmatch(where)
        if m is None:
            raise ValueError(f"region pin {shown!r} is not {form}")
        zone, x0, x1, y0, y1 = m.groups()
        if x0 is None:
            return cls(zone, node.strip())
        rx = (int(x0), int(x1 if x1 is not None else x0))
        ry = (int(y0), int(y1 if y1 is not None else y0))
        if rx[0] > rx[1] or ry[0] > ry[1]:
            raise ValueError(f"region pin {shown!r}: a range runs from low to high")
        return cls(zone, node.strip(), rx, ry)

    def __str__(self) -> str:
        if self.rx is None or self.ry is None:
            return f"{self.zone}={self.node}"

        def span(r: tuple[int, int]) -> str:
            return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"

        return f"{self.zone}:{span(self.rx)},{span(self.ry)}={self.node}"


def parse_pins(value: object) -> tuple[RegionPin, ...]:
    """
    Pins from a string (``"world:0,0=a"``; several separated by spaces or
    ``;``) or a mapping (a TOML table ``{"world:0,0" = "a", arena = "b"}``).
    """
    if isinstance(value, RegionPin):
        return (value,)
    if isinstance(value, Mapping):
        return tuple(RegionPin.of(str(k), v) for k, v in value.items())
    if not isinstance(value, str):
        raise ValueError("a region pin is ZONE[:RX,RY]=NODE, or a table of them")
    return tuple(RegionPin.parse(p) for p in re.split(r"[;\s]+", value.strip()) if p)


# -- ownership ---------------------------------------------------------------------


def _weights(nodes: NodeSet) -> dict[str, float]:
    if isinstance(nodes, Mapping):
        weights = {str(k): float(v) for k, v in nodes.items()}
    else:
        weights = {str(k): 1.0 for k in nodes}
    for node, w in weights.items():
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"node {node!r} has weight {w}: weights are positive numbers")
    if not weights:
        raise ValueError("no live node to own regions")
    return weights


def _hash(zone: str, bx: int, by: int, node: str) -> int:
    """A 64-bit hash of a block and a node, the same on every host and run."""
    data = b"\0".join((zone.encode(), str(bx).encode(), str(by).encode(), node.encode()))
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def block_owner(block: RegionId, nodes: Mapping[str, float]) -> str:
    """The node that wins ``block`` (``(zone, bx, by)``) by weighted rendezvous hashing."""
    zone, bx, by = block
    if len(set(nodes.values())) == 1:
        # Equal weights: the highest hash wins (ties: the larger id), in integers.
        return max(nodes, key=lambda n: (_hash(zone, bx, by, n), n))
    # Ties of the float scores (hashes a few units apart) fall back to the
    # hashes, as with equal weights, so that both ways agree.
    def score(node: str) -> tuple[float, int, str]:
        h = _hash(zone, bx, by, node)
        # The top 53 bits, centred: exact in a double, strictly inside (0, 1).
        u = ((h >> 11) + 0.5) / 2.0 ** 53
        return -nodes[node] / math.log(u), h, node

    return max(nodes, key=score)


class Ownership:
    """
    The owner of every region for one set of live nodes, as every node
    computes it: pins first (while their node is live), then weighted
    rendezvous hashing of the region's block.

    Owners are computed when first asked for and cached until the node set
    changes (:meth:`update`).
    """

    def __init__(self, layout: RegionLayout, nodes: NodeSet,
                 pins: Sequence[RegionPin] = ()) -> None:
        layout.check_pins(pins)
        self.layout = layout
        self.pins: dict[str, tuple[RegionPin, ...]] = {}
        for pin in pins:
            self.pins[pin.zone] = (*self.pins.get(pin.zone, ()), pin)
        self.weights = _weights(nodes)
        self._regions: dict[RegionId, str] = {}
        self._blocks: dict[RegionId, str] = {}

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(self.weights)

    def update(self, nodes: NodeSet) -> dict[RegionId, tuple[str, str]]:
        """
        Take a new live node set; return the regions, of those looked up so
        far, whose owner changed: region -> (old owner, new owner).  The
        same set (and weights) costs nothing.
        """
        weights = _weights(nodes)
        if weights == self.weights:
            return {}
        old = self._regions
        self.weights = weights
        self._regions = {}
        self._blocks = {}
        moved = {}
        for region, before in old.items():
            after = self.owner(region)
            if after != before:
                moved[region] = (before, after)
        return moved

    def owner(self, region: RegionId) -> str:
        """The node that owns ``region`` (``(zone, rx, ry)``)."""
        found = self._regions.get(region)
        if found is None:
            found = self._regions[region] = self._compute(region)
        return found

    def owner_at(self, zone: str, x: float, y: float) -> str:
        """The node that owns the region at ``(x, y)`` of ``zone``."""
        return self.owner(self.layout.region_at(zone, x, y))

    def pinned(self, region: RegionId) -> str | None:
        """The live node a pin gives ``region`` to, or ``None`` (hashed)."""
        for pin in self.pins.get(region[0], ()):
            if pin.node in self.weights and pin.covers(region):
                return pin.node
        return None

    def _compute(self, region: RegionId) -> str:
        node = self.pinned(region)
        if node is not None:
            return node
        block = self.layout.block_of(region)
        found = self._blocks.get(block)
        if found is None:
            found = self._blocks[block] = block_owner(block, self.weights)
        return found

    def regions_of(self, node: str) -> list[RegionId]:
        """Every region ``node`` owns (walks every region of every zone)."""
        return [r for r in self.layout.regions() if self.owner(r) == node]

    def cells_of(self, node: str) -> frozenset[tuple[str, int]]:
        """
        The cells of every region ``node`` owns, as ``(zone, key)`` with
        ``key = row * cols + col``, in the zones whose owners follow them
        (:func:`owners_follow`); walks every region of those zones.
        """
        found: list[tuple[str, int]] = []
        for z in self.layout.zones.values():
            cols = z.cols
            if not owners_follow(cols, z.rows):
                continue
            for region in z.regions():
                if self.owner(region) == node:
                    xs, ys = z.cells(region[1], region[2])
                    found.extend((z.zone, y * cols + x) for y in ys for x in xs)
        return frozenset(found)

    def shares(self) -> dict[str, int]:
        """How many regions each live node owns (walks every region)."""
        counts = dict.fromkeys(sorted(self.weights), 0)
        for r in self.layout.regions():
            counts[self.owner(r)] += 1
        return counts


# -- borders -----------------------------------------------------------------------


def crossed(layout: RegionLayout, current: RegionId, x: float, y: float,
            margin: float) -> RegionId | None:
    """
    The region a player owned in ``current`` has moved into, once it is more
    than ``margin`` world units outside ``current`` (on any side); ``None``
    while it is inside or within the margin, so that a player walking along
    a border stays with one owner.
    """
    zone, rx, ry = current
    z = layout.zone(zone)
    side = z.side
    x0, y0 = rx * side, ry * side
    if x0 - margin <= x <= x0 + side + margin and y0 - margin <= y <= y0 + side + margin:
        return None
    found = (zone, *z.region_at(x, y))
    return None if found == current else found


def publish_reach(margin: float, hysteresis: float, cell_size: float) -> int:
    """
    How many cells into a node's land another node's players can see: the
    cells of its land that it must publish, counted from the border.

    A player sees the cell the grid puts it in and the 8 around it.  It is
    put in a cell of another node's land once it is more than
    ``hysteresis`` past the edge, and handed to that node once it is more
    than ``margin`` past; both are checked in the same tick, before any
    view is worked out.  With ``margin <= hysteresis`` it is handed over
    first, never stands in a cell of another's land, and sees one cell into
    it.  Each ``cell_size`` further that the margin lets it walk in while
    still another's player adds a cell.
    """
    return 1 + max(0, math.ceil((margin - hysteresis) / cell_size))
