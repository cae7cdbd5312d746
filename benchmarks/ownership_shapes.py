"""
Ownership shapes: how evenly, and with how much border, each way of owning
regions cuts the zones of ``benchmarks/scaling.py``.

Pure computation, no nodes: for N nodes of P players (the zone sized as
``scaling.py`` sizes it, players uniform over it), each scheme gives every
cell an owner, and the table gives

- **balance**: the busiest node's expected players over the mean (1.0 is
  even; a node owning nothing counts as 0 players);
- **border**: the share of cells within ``--reach`` cells (the publish
  reach of ``mmo.server.placement``: 1, a 3 x 3 square, with the default
  hysteresis and margin; 2 with a margin up to a cell past the hysteresis)
  of a cell another node owns, which are the cells a node publishes and its
  neighbours mirror;
- **heaviest**: the busiest node's own players plus its mirrors (players
  of other nodes' cells within reach of its own), over the mean players a
  node: roughly the entities its tick holds;
- **moved**: cells whose owner changes when one node leaves, over the cells
  that node owned (1.0: only its own), the worst over every node leaving;
  ``extra`` counts cells of other nodes that moved (should be 0).

Schemes: ``blocks`` (today's weighted rendezvous over blocks of
``region_block`` x ``region_block`` regions, as the ``regions`` placement
runs it), ``pinned`` (``scaling.grid_pins``: N rectangles), and consistent
hashing along a Hilbert curve of regions of ``Nc`` cells a side:
``hilbert next kK`` (each node K points on the curve by hash, owning the
arc up to each), ``hilbert near kK`` (the same points, each region to the
nearest point), ``hilbert seg LL`` (``--wide``: weighted rendezvous over
runs of L regions of the curve); ``plane near kK`` (K points a node in
the plane, each region to the nearest: Voronoi cells); and, not minimal,
``hilbert equal`` (N equal arcs in the order of the nodes' hashes).
``--names`` repeats the balance, border and heaviest over sets of other
node ids (the hashes depend on them): median (and worst balance).

    python -P benchmarks/ownership_shapes.py
    python -P benchmarks/ownership_shapes.py --names 20 --nodes 16
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from mmo.settings import RegionSettings
from mmo.world.grid import ZoneSpec
from mmo.world.regions import Ownership, RegionLayout, block_owner, parse_pins

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scaling import grid_pins, zone_side  # noqa: E402

CELL = 100.0
#: Cells a node publishes around a border (mmo.server.placement.published,
#: mmo.world.regions.publish_reach); ``--reach`` sets it.
REACH = 1

#: A scheme: (node ids, their weights) -> owner of every cell (row-major).
Scheme = Callable[[dict[str, float]], list[str]]


# -- the Hilbert curve -------------------------------------------------------------


def xy2d(n: int, x: int, y: int) -> int:
    """The index of ``(x, y)`` on the Hilbert curve of an ``n`` x ``n`` square."""
    d = 0
    s = n >> 1
    while s:
        rx = 1 if x & s else 0
        ry = 1 if y & s else 0
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = n - 1 - x, n - 1 - y
            x, y = y, x
        s >>= 1
    return d


def d2xy(n: int, d: int) -> tuple[int, int]:
    x = y = 0
    s = 1
    while s < n:
        rx = 1 & (d >> 1)
        ry = 1 & (d ^ rx)
        if ry == 0:
            if rx == 1:
                x, y = s - 1 - x, s - 1 - y
            x, y = y, x
        x += s * rx
        y += s * ry
        d >>= 2
        s <<= 1
    return x, y


def curve_ranks(cols: int, rows: int) -> list[int]:
    """Each region's rank (row-major) among the zone's regions along the curve."""
    n = 1
    while n < max(cols, rows):
        n <<= 1
    order = sorted(range(cols * rows), key=lambda i: xy2d(n, i % cols, i // cols))
    ranks = [0] * (cols * rows)
    for r, i in enumerate(order):
        ranks[i] = r
    return ranks


def _h64(*parts: object) -> int:
    data = b"\0".join(str(p).encode() for p in parts)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def curve_points(weights: dict[str, float], k: int) -> tuple[list[tuple[int, str]], list[int]]:
    """Each node's ``round(k * weight)`` points on the ring, in order, and their keys."""
    points = sorted((_h64("w", j, node), node) for node, w in weights.items()
                    for j in range(max(1, round(k * w))))
    return points, [p for p, _ in points]


def hilbert_points(rc: int, k: int, cols: int, rows: int) -> Scheme:
    """Each node ``round(k * weight)`` points on the curve; a region goes to the next point."""
    rcols, rrows = -(-cols // rc), -(-rows // rc)
    ranks = curve_ranks(rcols, rrows)
    total = rcols * rrows

    def owners(weights: dict[str, float]) -> list[str]:
        points, keys = curve_points(weights, k)
        by_region = []
        for r in ranks:
            at = bisect.bisect_left(keys, ((2 * r + 1) << 64) // (2 * total))
            by_region.append(points[at % len(points)][1])
        return [by_region[(cy // rc) * rcols + cx // rc]
                for cy in range(rows) for cx in range(cols)]

    return owners


def hilbert_nearest(rc: int, k: int, cols: int, rows: int) -> Scheme:
    """
    Each node ``round(k * weight)`` points on the curve (a ring); a region
    goes to the node of the nearest point: a node's arc is half the gap to
    the point before and half the gap to the point after, so that its size
    averages two gaps; one that leaves splits its arcs between the nodes of
    the points beside them (nearest point is a preference order: nothing
    else moves).
    """
    rcols, rrows = -(-cols // rc), -(-rows // rc)
    ranks = curve_ranks(rcols, rrows)
    total = rcols * rrows
    ring = 1 << 64

    def owners(weights: dict[str, float]) -> list[str]:
        points, keys = curve_points(weights, k)
        by_region = []
        for r in ranks:
            t = ((2 * r + 1) << 64) // (2 * total)
            at = bisect.bisect_left(keys, t)
            after, before = points[at % len(points)], points[at - 1]
            da, db = (after[0] - t) % ring, (t - before[0]) % ring
            by_region.append(min((da, after[1]), (db, before[1]))[1])
        return [by_region[(cy // rc) * rcols + cx // rc]
                for cy in range(rows) for cx in range(cols)]

    return owners


def plane_nearest(rc: int, k: int, cols: int, rows: int) -> Scheme:
    """Each node ``round(k * weight)`` points in the zone by hash; a region goes to the nearest."""
    rcols, rrows = -(-cols // rc), -(-rows // rc)

    def owners(weights: dict[str, float]) -> list[str]:
        points = []
        for node, w in weights.items():
            for j in range(max(1, round(k * w))):
                h = _h64("w", j, node)
                points.append((2 * (h >> 32) * rcols, 2 * (h & 0xFFFFFFFF) * rrows, node))
        by_region = []
        for ry in range(rrows):
            cy = (2 * ry + 1) << 32
            for rx in range(rcols):
                cx = (2 * rx + 1) << 32
                by_region.append(min(((px - cx) ** 2 + (py - cy) ** 2, node)
                                     for px, py, node in points)[1])
        return [by_region[(cy // rc) * rcols + cx // rc]
                for cy in range(rows) for cx in range(cols)]

    return owners


def hilbert_equal(rc: int, cols: int, rows: int) -> Scheme:
    """
    Not minimal, for comparison: the curve cut into one arc a node, its
    length proportional to the node's weight, the nodes in the order of
    their hashes.  Even and compact, but a node leaving shifts every
    boundary after it.
    """
    rcols, rrows = -(-cols // rc), -(-rows // rc)
    ranks = curve_ranks(rcols, rrows)
    total = rcols * rrows

    def owners(weights: dict[str, float]) -> list[str]:
        order = sorted(weights, key=lambda n: (_h64("w", n), n))
        whole = sum(weights.values())
        ends, acc = [], 0.0
        for node in order:
            acc += weights[node]
            ends.append(acc / whole * total)
        by_region = [order[min(bisect.bisect_right(ends, r + 0.5), len(order) - 1)]
                     for r in ranks]
        return [by_region[(cy // rc) * rcols + cx // rc]
                for cy in range(rows) for cx in range(cols)]

    return owners


def hilbert_segments(rc: int, length: int, cols: int, rows: int) -> Scheme:
    """Weighted rendezvous over runs of ``length`` regions along the curve."""
    rcols, rrows = -(-cols // rc), -(-rows // rc)
    ranks = curve_ranks(rcols, rrows)

    def owners(weights: dict[str, float]) -> list[str]:
        segs: dict[int, str] = {}
        by_region = []
        for r in ranks:
            s = r // length
            if s not in segs:
                segs[s] = block_owner(("w", s, -1), weights)
            by_region.append(segs[s])
        return [by_region[(cy // rc) * rcols + cx // rc]
                for cy in range(rows) for cx in range(cols)]

    return owners


# -- the project's own schemes -----------------------------------------------------


def blocks(side: float, rc: int, block: int) -> Scheme:
    zone = ZoneSpec("w", side, side)

    def owners(weights: dict[str, float]) -> list[str]:
        own = Ownership(RegionLayout([zone], CELL, rc, block), weights)
        z = own.layout.zone("w")
        return [own.owner(("w", cx // rc, cy // rc))
                for cy in range(z.rows) for cx in range(z.cols)]

    return owners


def pinned(side: float, cells: int, ids: list[str]) -> Scheme:
    zone = ZoneSpec("w", side, side)
    rc, pins = grid_pins(len(ids), cells, ids)
    parsed = parse_pins(" ".join(pins))

    def owners(weights: dict[str, float]) -> list[str]:
        own = Ownership(RegionLayout([zone], CELL, rc, 1), weights, parsed)
        z = own.layout.zone("w")
        return [own.owner(("w", cx // rc, cy // rc))
                for cy in range(z.rows) for cx in range(z.cols)]

    return owners


# -- measures ----------------------------------------------------------------------


def cell_areas(side: float, cols: int) -> list[float]:
    widths = [min(CELL, side - c * CELL) for c in range(cols)]
    return [wy * wx for wy in widths for wx in widths]


def balance(owner: list[str], areas: list[float], ids: list[str]) -> float:
    load = dict.fromkeys(ids, 0.0)
    for o, a in zip(owner, areas, strict=True):
        load[o] += a
    return max(load.values()) / (sum(load.values()) / len(ids))


def border(owner: list[str], cols: int) -> float:
    rows = len(owner) // cols
    near = 0
    for cy in range(rows):
        for cx in range(cols):
            me = owner[cy * cols + cx]
            if any(owner[ny * cols + nx] != me
                   for ny in range(max(cy - REACH, 0), min(cy + REACH + 1, rows))
                   for nx in range(max(cx - REACH, 0), min(cx + REACH + 1, cols))):
                near += 1
    return near / len(owner)


def heaviest(owner: list[str], areas: list[float], cols: int, ids: list[str]) -> float:
    """
    The busiest node's own players and mirrors (players in other nodes' cells
    within reach of its own), over the mean of its own: what its tick holds.
    """
    rows = len(owner) // cols
    near: dict[str, set[int]] = {n: set() for n in ids}
    load = dict.fromkeys(ids, 0.0)
    for cy in range(rows):
        for cx in range(cols):
            me = owner[cy * cols + cx]
            load[me] += areas[cy * cols + cx]
            for ny in range(max(cy - REACH, 0), min(cy + REACH + 1, rows)):
                for nx in range(max(cx - REACH, 0), min(cx + REACH + 1, cols)):
                    if owner[ny * cols + nx] != me:
                        near[me].add(ny * cols + nx)
    mean = sum(areas) / len(ids)
    return max(load[n] + sum(areas[c] for c in near[n]) for n in ids) / mean


def moves(scheme: Scheme, before: list[str], ids: list[str]) -> tuple[float, int]:
    """Worst (moved / the leaver's cells) and the most other cells moved, over each leaver."""
    worst, extra = 0.0, 0
    for gone in ids:
        after = scheme({n: 1.0 for n in ids if n != gone})
        own = sum(1 for o in before if o == gone)
        moved = sum(1 for a, b in zip(after, before, strict=True) if a != b)
        others = sum(1 for a, b in zip(after, before, strict=True) if a != b and b != gone)
        worst = max(worst, moved / own if own else (0.0 if moved == 0 else math.inf))
        extra = max(extra, others)
    return worst, extra


def schemes(side: float, cols: int, ids: list[str], wide: bool) -> dict[str, Scheme]:
    found: dict[str, Scheme] = {
        f"blocks {RegionSettings.cells}c x{RegionSettings.block}":
            blocks(side, RegionSettings.cells, RegionSettings.block),
    }
    if wide:
        found["blocks 5c x1"] = blocks(side, 5, 1)
        found["blocks 2c x2"] = blocks(side, 2, 2)
    if len(ids) & (len(ids) - 1) == 0:
        found["pinned"] = pinned(side, cols, ids)
    for rc in ((1, 2, 5) if wide else (1,)):
        for k in ((1, 2, 4, 8, 16) if wide else (2, 4, 8)):
            found[f"hilbert next {rc}c k{k}"] = hilbert_points(rc, k, cols, cols)
    for rc in ((1, 5) if wide else (1, 5)):
        for k in ((1, 2, 4, 8, 16) if wide else ((1, 2, 4, 8) if rc == 1 else (2, 4))):
            found[f"hilbert near {rc}c k{k}"] = hilbert_nearest(rc, k, cols, cols)
    for rc in ((1, 5) if wide else (1,)):
        for k in ((1, 2, 4, 8) if wide else (1, 2, 4)):
            found[f"plane near {rc}c k{k}"] = plane_nearest(rc, k, cols, cols)
    found["hilbert equal 1c"] = hilbert_equal(1, cols, cols)
    if wide:
        for rc, lengths in ((1, (16, 64)), (2, (4, 16))):
            for length in lengths:
                found[f"hilbert seg {rc}c L{length}"] = hilbert_segments(rc, length, cols, cols)
    return found


def main(argv: list[str] | None = None) -> int:
    global REACH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="2,4,8,16")
    ap.add_argument("--players", default="300,2000", help="players a node")
    ap.add_argument("--names", type=int, default=0,
                    help="also this many other sets of node ids: median and worst balance")
    ap.add_argument("--wide", action="store_true",
                    help="more variants (region sizes, points, segments, smaller blocks)")
    ap.add_argument("--no-moves", action="store_true", help="skip the leave check (slow)")
    ap.add_argument("--reach", type=int, default=REACH,
                    help="cells published around a border (default: %(default)s, the "
                         "default settings' publish_reach)")
    args = ap.parse_args(argv)
    REACH = args.reach
    head = "| P | N | cells | scheme | balance | border | heaviest | moved | extra |"
    if args.names:
        head += " balance med / worst | border med | heaviest med |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for players in (int(p) for p in args.players.split(",")):
        for n in (int(x) for x in args.nodes.split(",")):
            side = float(f"{zone_side(n * players):.0f}")
            cols = math.ceil(side / CELL)
            areas = cell_areas(side, cols)
            ids = [f"node-{i}" for i in range(n)]
            for name, scheme in schemes(side, cols, ids, args.wide).items():
                weights = dict.fromkeys(ids, 1.0)
                owner = scheme(weights)
                row = [str(players), str(n), f"{cols}x{cols}", name,
                       f"{balance(owner, areas, ids):.2f}", f"{border(owner, cols):.2f}",
                       f"{heaviest(owner, areas, cols, ids):.2f}"]
                if args.no_moves:
                    row += ["", ""]
                else:
                    worst, extra = moves(scheme, owner, ids)
                    row += [f"{worst:.2f}", str(extra)]
                if args.names and name != "pinned":
                    bal, bor, hv = [], [], []
                    for s in range(args.names):
                        other = [f"s{s}-n{i}" for i in range(n)]
                        o = scheme(dict.fromkeys(other, 1.0))
                        bal.append(balance(o, areas, other))
                        bor.append(border(o, cols))
                        hv.append(heaviest(o, areas, cols, other))
                    row += [f"{statistics.median(bal):.2f} / {max(bal):.2f}",
                            f"{statistics.median(bor):.2f}", f"{statistics.median(hv):.2f}"]
                elif args.names:
                    row += ["", "", ""]
                print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
