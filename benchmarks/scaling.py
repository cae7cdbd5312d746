"""
Scaling: a node's cost as the cluster grows, with players placed as today
(each on a random node) and by regions (each on the owner of the region it
stands in, :mod:`mmo.world.regions`).

In one process, on the fakes of :mod:`mmo.testing`: N nodes (``FakeCluster``
on a ``MemoryBus``, one clock), P players per node random-walking at 40 u/s
(one move a tick through ``PlayerSession.dataReceived``), in one zone sized
so that each player sees about 50 others (its area grows with N x P), each
player's socket a byte counter.  Per node, the process CPU time of its
players' input, its tick (with what it sends to the cluster) and the
cluster datagrams delivered to it is summed and divided by the ticks; the
table gives the mean over nodes, the largest node, the entities each node
holds (its own and mirrors) and, for each placement, the ratio of the mean
to its value at N = 1.

With regions (``placement = "regions"``), the nodes hand players over
themselves when they cross a border (past ``region_margin``): the old
owner's tick sends the ``Handoff`` and the ``Redirect``, which count in its
cost; the new owner's handling of the datagram counts in its cost, and so
does the player's arrival there (its new session, the token's check and
the full view the node writes: ``arrival_ms``).  The client's part
(decoding that view) and the benchmark's own loop that finds the walkers
to move (``follow_ms_per_tick``) are not a node's cost.

The cyclic garbage collector's collections are left out of every figure
and given apart (``gc_ms``: the process's, per node and tick), because N
nodes in one process share one heap that every full collection walks
whole (:class:`CollectorClock`).

    python benchmarks/scaling.py                     # N = 1..16, 300 players a node
    python benchmarks/scaling.py --nodes 1,4 --players 200 --ticks 30
    python benchmarks/scaling.py --smoke             # a few seconds
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import operator
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mmo.store.accounts import MemoryAccountStore
from mmo.testing import FakeCluster, FakePlayer, MemoryBus
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder
from mmo.world.regions import Ownership

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tick_cost import CountingTransport  # noqa: E402


class CollectorClock:
    """
    The process's CPU time without the cyclic garbage collector's
    collections, which it counts apart (:attr:`spent`).

    N nodes in one process share one heap, and a full collection walks all
    of it: at 16 nodes of 2,000 the collections took 27 % (lone nodes) to
    37 % (a cluster) of the measured ticks, against 7 % for one node; in a
    cluster of processes each node's collector walks only its own heap.
    """

    def __init__(self) -> None:
        self.spent = 0.0
        self._started = 0.0

    def __call__(self) -> float:
        return time.process_time() - self.spent

    def observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.spent += time.process_time() - self._started


#: What every figure here is measured with (it observes the collector from main()).
cpu_time = CollectorClock()

#: World units a player walks per tick (40 u/s at 10 Hz, under max_speed 50).
STEP = 4.0
#: Players each player sees, on average (its 3 x 3 cells).
SEEN = 50


class Walker:
    """One player: its position, heading, connection and (with regions) its region."""

    __slots__ = ("name", "x", "y", "heading", "node", "player", "region", "seq")

    def __init__(self, name: str, x: float, y: float, heading: float) -> None:
        self.name = name
        self.x, self.y, self.heading = x, y, heading
        self.node = 0
        self.player: Any = None
        self.region: Any = None
        self.seq = 0

    def walk(self, rng: random.Random, side: float) -> bytes:
        self.heading += rng.uniform(-0.5, 0.5)
        x = self.x + STEP * math.cos(self.heading)
        y = self.y + STEP * math.sin(self.heading)
        if not 0 <= x <= side:
            self.heading = math.pi - self.heading
            x = min(max(x, 0.0), side)
        if not 0 <= y <= side:
            self.heading = -self.heading
            y = min(max(y, 0.0), side)
        self.x, self.y = x, y
        self.seq += 1
        return m.Move(self.seq, x, y).encode()


def zone_side(players: int, cell: float = 100.0) -> float:
    """The side of a square zone where each of ``players`` sees about :data:`SEEN` others."""
    return (players * 9 * cell * cell / SEEN) ** 0.5


def connect(cluster: FakeCluster, w: Walker, zone: str) -> None:
    """Log ``w`` in on node ``w.node`` at its position (its saved state in the shared store)."""
    node = cluster.nodes[w.node]
    store = cluster.store
    store.authenticate(w.name, "pw", True)  # fires at once: hashing is inline
    store.save_state(w.name, {"zone": zone, "x": w.x, "y": w.y, "data": {}})
    transport = CountingTransport()
    w.player = FakePlayer(node, w.name, transport=transport)
    transport.counting = True


def redirect_token(data: bytes) -> str:
    """The token of the ``Redirect`` frame in ``data`` (a session's last write)."""
    for msg in FrameDecoder.for_client().feed(data):
        if isinstance(msg, m.Redirect):
            return msg.token
    raise AssertionError("a session ended without a Redirect")


def _direct(f: Any, *args: Any, **kwargs: Any) -> Any:
    return f(*args, **kwargs)


#: How the measured ticks call the nodes' work: directly, or with
#: ``--count-instructions`` through ``operator.call``, the C function that
#: callgrind is told to count in (``--collect-atstart=no
#: --toggle-collect=_operator_call``), so that its total is the nodes' own
#: work in the measured ticks, without start-up, logins, the players' side
#: or this benchmark's loops, and without the machine's noise or its caches.
node_call: Any = _direct


def _feed(frames: list[tuple[Any, bytes]]) -> None:
    for session, frame in frames:
        session.dataReceived(frame)


def _receive(receive: Any, items: list[tuple[bytes, str]]) -> None:
    for data, source in items:
        receive(data, source)


def deliver(bus: MemoryBus, cpu: dict[Any, float], received: dict[Any, int]) -> None:
    """
    :meth:`MemoryBus.flush`, each receiver's datagrams handed over in one
    timed run (per receiver, in order), so that each node's share is its own.
    """
    while bus.queue:
        batch, bus.queue = bus.queue, []
        per: dict[Any, list[tuple[bytes, str]]] = defaultdict(list)
        for sender, group, data in batch:
            for t in bus.transports:
                if t is not sender and group in t.joined:
                    per[t].append((data, sender.source))
        for t, items in per.items():
            receive = t.receive
            if receive is None:
                continue
            t0 = cpu_time()
            node_call(_receive, receive, items)
            cpu[t] += cpu_time() - t0
            received[t] += len(items)


def grid_pins(nodes: int, cells: int, ids: list[str]) -> tuple[int, list[str]]:
    """
    A square zone of ``cells`` x ``cells`` cells cut into ``nodes`` rectangles
    as equal as whole cells allow (a near-square grid of them), one a node:
    the region side in cells (the largest that fits every cut) and the pins.
    """
    across = 1 << (max(nodes.bit_length() - 1, 0) + 1) // 2
    down = nodes // across
    if across * down != nodes:
        raise SystemExit(f"scaling: --placements pinned needs a power of two of nodes, not {nodes}")
    xs = [round(i * cells / across) for i in range(across + 1)]
    ys = [round(i * cells / down) for i in range(down + 1)]
    widths = [b - a for edges in (xs, ys) for a, b in itertools.pairwise(edges)]
    side = math.gcd(*widths)
    pins = [f"w:{xs[i] // side}-{xs[i + 1] // side - 1},{ys[j] // side}-{ys[j + 1] // side - 1}"
            f"={ids[j * across + i]}" for j in range(down) for i in range(across)]
    return side, pins


def run(nodes: int, players: int, placement: str, ticks: int, warmup: int,
        seconds: float, seed: int, region_cells: int, region_block: int,
        groups: int, tile: int | None = None) -> dict[str, Any]:
    """One cluster of ``nodes`` nodes, ``players`` each, placed ``today`` or by ``regions``."""
    rng = random.Random(seed)
    total = nodes * players
    side = zone_side(total)
    ids = [f"node-{i}" for i in range(nodes)]
    bus = MemoryBus()
    store = MemoryAccountStore(1)
    pins: list[str] = []
    if placement == "pinned":
        # An operator's map: one cell a region, the zone cut into N rectangles
        # as equal as whole cells allow.
        region_cells, pins = grid_pins(nodes, math.ceil(float(f"{side:.0f}") / 100.0), ids)
        region_block = 1
    cluster = FakeCluster(
        ids, bus=bus, store=store, zone=[f"w:{side:.0f}x{side:.0f}"], max_per_ip=0,
        max_players=1_000_000, extension=[], cell_group_count=groups,
        **({} if tile is None else {"cell_group_tile": tile}),
        region_cells=region_cells, region_block=region_block,
        region_map=[" ".join(pins)] if pins else [],
        placement="connection" if placement == "today" else "regions")
    side = float(f"{side:.0f}")
    regions = cluster.nodes[0].settings.regions
    layout = regions.layout(cluster.nodes[0].settings.node)
    owners = Ownership(layout, ids, regions.pins)
    index = {node_id: i for i, node_id in enumerate(ids)}
    cluster.step(2)  # heartbeats: every node knows every other
    walkers = [Walker(f"p{i}", rng.uniform(0, side), rng.uniform(0, side),
                      rng.uniform(0, 2 * math.pi)) for i in range(total)]
    for w in walkers:
        if placement != "today":
            w.region = layout.region_at("w", w.x, w.y)
            w.node = index[owners.owner(w.region)]
        else:
            w.node = rng.randrange(nodes)
        connect(cluster, w, "w")
    # What each node's tick spends on the cluster (publishing its cells).
    publish = [0.0] * nodes

    def timed(i: int, ticked: Any) -> Any:
        def wrapper(tick: int) -> None:
            t0 = cpu_time()
            ticked(tick)
            publish[i] += cpu_time() - t0
        return wrapper

    for i, node in enumerate(cluster.nodes):
        node.cluster.ticked = timed(i, node.cluster.ticked)  # type: ignore[union-attr]
    transports = [s.transport for s in cluster.services]
    node_of = {t: i for i, t in enumerate(transports)}
    cpu = [0.0] * nodes
    input_cpu = 0.0
    bus_cpu: dict[Any, float] = defaultdict(float)
    received: dict[Any, int] = defaultdict(int)
    handoffs = 0
    arrival_cpu = 0.0
    follow_cpu = 0.0
    measured = 0
    entities = [0] * nodes
    mirrored = [0] * nodes
    started = time.monotonic()
    collected = cpu_time.spent
    for tick in range(warmup + ticks):
        measuring = tick >= warmup
        if tick == warmup:
            started = time.monotonic()
            publish = [0.0] * nodes
            collected = cpu_time.spent
        if measuring and measured and time.monotonic() - started > seconds:
            break
        cluster.clock.advance(cluster.nodes[0].tick_interval)
        frames: list[list[tuple[Any, bytes]]] = [[] for _ in range(nodes)]
        for w in walkers:
            frames[w.node].append((w.player.session, w.walk(rng, side)))
        call = node_call if measuring else _direct
        for i, node in enumerate(cluster.nodes):
            t0 = cpu_time()
            call(_feed, frames[i])
            t1 = cpu_time()
            call(node.tick)
            if measuring:
                cpu[i] += cpu_time() - t0
                input_cpu += t1 - t0
        if not measuring:
            bus.flush()
            continue
        deliver(bus, bus_cpu, received)
        measured += 1
        if placement != "today":
            # The nodes hand players over themselves (Handoff, then Redirect):
            # a walker whose session ended follows its Redirect to the node
            # that now waits for it, with the token it carries.
            t0 = cpu_time()
            arrived = 0.0
            for w in walkers:
                if not w.player.session.ended:
                    continue
                token = redirect_token(w.player.transport.last)
                w.node = next(i for i, node in enumerate(cluster.nodes)
                              if w.name in node.placement.handoffs.arrivals)
                # The new node's part (its session, the token's check, the
                # full view it writes) counts in its cost; the client's
                # (decoding that view) and this loop's do not.
                resume = m.Hello().encode() + m.Resume(token).encode()
                transport = CountingTransport()
                transport.counting = True
                a0 = cpu_time()
                w.player = node_call(FakePlayer, cluster.nodes[w.node], w.name,
                                     transport=transport, login=False)
                node_call(w.player.session.dataReceived, resume)
                spent = cpu_time() - a0
                cpu[w.node] += spent
                arrived += spent
                e = w.player.entity
                assert e is not None, f"{w.name} did not resume on node {w.node}"
                w.x, w.y = e.x, e.y
                w.region = layout.region_at("w", e.x, e.y)
                handoffs += 1
            arrival_cpu += arrived
            follow_cpu += cpu_time() - t0 - arrived
        for i, node in enumerate(cluster.nodes):
            entities[i] += len(node.world.entities)
            mirrored[i] += len(node.cluster.mirrors.mirrors)  # type: ignore[attr-defined]
    ticks_done = max(measured, 1)
    for t, spent in bus_cpu.items():
        cpu[node_of[t]] += spent
    per_node = [c / ticks_done * 1000 for c in cpu]
    per_tick = 1000 / nodes / ticks_done
    # Every player on the owner of its region, and within its region's margin.
    misplaced = 0
    if placement != "today":
        for w in walkers:
            node = cluster.nodes[w.node]
            placed = node.placement.handoffs.bounds.get(w.name)
            if (w.player.session.ended or node.sessions.get(w.name) is not w.player.session
                    or placed is None or ids[w.node] != owners.owner(placed[0])):
                misplaced += 1
    return {
        "nodes": nodes, "placement": placement, "players": total, "zone_side": side,
        "ticks": measured,
        "cpu_ms_per_tick_mean": round(sum(per_node) / nodes, 3),
        "cpu_ms_per_tick_max": round(max(per_node), 3),
        "input_ms": round(input_cpu * per_tick, 3),
        "tick_ms": round((sum(cpu) - input_cpu - sum(bus_cpu.values()) - arrival_cpu)
                         * per_tick, 3),
        "cluster_in_ms": round(sum(bus_cpu.values()) * per_tick, 3),
        "publish_ms": round(sum(publish) * per_tick, 3),
        "entities_per_node": round(sum(entities) / nodes / ticks_done, 1),
        "mirrored_per_node": round(sum(mirrored) / nodes / ticks_done, 1),
        "datagrams_in_per_node_tick": round(
            sum(received.values()) / nodes / ticks_done, 1),
        "players_per_node_max": max(
            sum(1 for w in walkers if w.node == i) for i in range(nodes)),
        "handoffs_per_tick": round(handoffs / ticks_done, 2),
        "arrival_ms": round(arrival_cpu * per_tick, 3),
        "gc_ms": round((cpu_time.spent - collected) * per_tick, 3),
        "follow_ms_per_tick": round(follow_cpu / ticks_done * 1000, 3),
        "misplaced": misplaced,
    }


def run_alone(nodes: int, players: int, ticks: int, warmup: int, seconds: float,
              seed: int, region_cells: int, region_block: int, groups: int,
              tile: int | None = None) -> dict[str, Any]:
    """
    The control: ``nodes`` lone nodes (each its own one-node cluster, bus and
    zone sized for its ``players``), ticked in turn in this one process.

    Each costs what a node alone costs, but with the memory of ``nodes``
    nodes passing through the one core's caches, as in a cluster of
    ``nodes`` here: a cluster's cost over this is what having neighbours
    costs, without what running N nodes in one process costs.
    """
    rng = random.Random(seed)
    side = float(f"{zone_side(players):.0f}")
    clusters = []
    for n in range(nodes):
        cluster = FakeCluster(
            [f"alone-{n}"], bus=MemoryBus(), store=MemoryAccountStore(1),
            zone=[f"w:{side:.0f}x{side:.0f}"], max_per_ip=0, max_players=1_000_000,
            extension=[], cell_group_count=groups, region_cells=region_cells,
            region_block=region_block, placement="regions",
            **({} if tile is None else {"cell_group_tile": tile}))
        cluster.step(2)
        walkers = [Walker(f"p{i}", rng.uniform(0, side), rng.uniform(0, side),
                          rng.uniform(0, 2 * math.pi)) for i in range(players)]
        for w in walkers:
            connect(cluster, w, "w")
        clusters.append((cluster, walkers))
    cpu = [0.0] * nodes
    input_cpu = 0.0
    measured = 0
    started = time.monotonic()
    collected = cpu_time.spent
    for tick in range(warmup + ticks):
        measuring = tick >= warmup
        if tick == warmup:
            started = time.monotonic()
            collected = cpu_time.spent
        if measuring and measured and time.monotonic() - started > seconds:
            break
        call = node_call if measuring else _direct
        for i, (cluster, walkers) in enumerate(clusters):
            node = cluster.nodes[0]
            cluster.clock.advance(node.tick_interval)
            frames = [(w.player.session, w.walk(rng, side)) for w in walkers]
            t0 = cpu_time()
            call(_feed, frames)
            t1 = cpu_time()
            call(node.tick)
            call(cluster.bus.flush)
            if measuring:
                cpu[i] += cpu_time() - t0
                input_cpu += t1 - t0
        if measuring:
            measured += 1
    ticks_done = max(measured, 1)
    per_node = [c / ticks_done * 1000 for c in cpu]
    return {
        "nodes": nodes, "placement": "alone", "players": nodes * players, "zone_side": side,
        "ticks": measured,
        "cpu_ms_per_tick_mean": round(sum(per_node) / nodes, 3),
        "cpu_ms_per_tick_max": round(max(per_node), 3),
        "input_ms": round(input_cpu * 1000 / nodes / ticks_done, 3),
        "tick_ms": round((sum(cpu) - input_cpu) * 1000 / nodes / ticks_done, 3),
        "gc_ms": round((cpu_time.spent - collected) * 1000 / nodes / ticks_done, 3),
        "entities_per_node": float(players), "mirrored_per_node": 0.0,
        "players_per_node_max": players,
    }


COLUMNS = ["nodes", "placement", "players", "ticks", "cpu_ms_per_tick_mean", "ratio_to_1",
           "over_alone",
           "cpu_ms_per_tick_max", "input_ms", "tick_ms", "publish_ms", "cluster_in_ms",
           "entities_per_node", "mirrored_per_node",
           "datagrams_in_per_node_tick", "players_per_node_max", "handoffs_per_tick",
           "arrival_ms", "follow_ms_per_tick", "gc_ms"]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="1,2,4,8,16", help="cluster sizes, comma-separated")
    ap.add_argument("--players", type=int, default=300, help="players per node")
    ap.add_argument("--ticks", type=int, default=50, help="ticks measured per run")
    ap.add_argument("--warmup", type=int, default=10, help="ticks before measuring")
    ap.add_argument("--seconds", type=float, default=120.0,
                    help="wall-clock limit of each run's measured ticks")
    ap.add_argument("--region-cells", type=int, default=None,
                    help="region side in cells (default: the node's default)")
    ap.add_argument("--region-block", type=int, default=None,
                    help="hashing block side in regions (default: the node's default)")
    ap.add_argument("--groups", type=int, default=4096,
                    help="cell groups (cell_group_count) of every node")
    ap.add_argument("--tile", type=int, default=None,
                    help="cells a side of the tiles sharing a group (cell_group_tile; "
                         "default: the node's default)")
    ap.add_argument("--placements", default="today,alone,regions",
                    help="which placements to run, of: today (each player on a random "
                         "node), regions (on its region's owner, regions hashed), pinned "
                         "(regions pinned so that each node owns one of N rectangles as "
                         "equal as whole cells allow: an operator's map), alone (the control: N lone nodes "
                         "side by side in this process)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each size and placement, interleaved; the table keeps "
                         "each one's cheapest (noise on a shared machine only adds)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds: N = 1, 2, 4, 30 players a node, 8 ticks")
    ap.add_argument("--out", default="", help="write the results as JSON here")
    ap.add_argument("--count-instructions", action="store_true",
                    help="call the nodes' work in the measured ticks through operator.call, "
                         "for callgrind's --toggle-collect=_operator_call")
    args = ap.parse_args(argv)
    gc.callbacks.append(cpu_time.observe)
    if args.count_instructions:
        global node_call
        node_call = getattr(operator, "call", None)
        if node_call is None:
            raise SystemExit("scaling: --count-instructions needs Python 3.11 (operator.call)")
        # The collector is off: here one collection walks all N nodes' heaps
        # at once (see CollectorClock), which a node of a real cluster never does.
        gc.disable()
        print("# counting: run under valgrind --tool=callgrind --collect-atstart=no "
              "--toggle-collect=_operator_call; a node's instructions a tick are "
              "callgrind's total over nodes x ticks (one size and placement a run)",
              flush=True)
    if args.smoke:
        args.nodes, args.players, args.ticks, args.warmup = "1,2,4", 30, 8, 3
        args.seconds = min(args.seconds, 10.0)
    from mmo.settings import RegionSettings

    cells = args.region_cells or RegionSettings.cells
    block = args.region_block or RegionSettings.block
    sizes = [int(n) for n in args.nodes.split(",")]
    print(f"# scaling: {args.players} players a node, {args.ticks} ticks measured "
          f"(after {args.warmup}), regions of {cells} cells in blocks of {block}, "
          f"{args.groups} cell groups, tiles of {args.tile or 'default'}; "
          f"{' '.join(sys.argv)}", flush=True)
    print("# regions: the nodes hand a player crossing a border over themselves "
          "(Handoff, Redirect, resume with its token); alone: N lone nodes ticked in "
          "turn in this process, the control for running N nodes in one process",
          flush=True)
    placements = args.placements.split(",")
    rows: list[dict[str, Any]] = []
    for n in sizes:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(max(args.repeat, 1)):
            for placement in placements:
                if placement == "alone":
                    r = run_alone(n, args.players, args.ticks, args.warmup, args.seconds,
                                  args.seed, cells, block, args.groups, args.tile)
                else:
                    r = run(n, args.players, placement, args.ticks, args.warmup,
                            args.seconds, args.seed, cells, block, args.groups, args.tile)
                print(f"# N={n} {placement}: {r['cpu_ms_per_tick_mean']} ms a tick per "
                      f"node, {r['entities_per_node']} entities a node", flush=True)
                kept = best.get(placement)
                if kept is None or r["cpu_ms_per_tick_mean"] < kept["cpu_ms_per_tick_mean"]:
                    best[placement] = r
        rows.extend(best[p] for p in placements)
    base = {r["placement"]: r["cpu_ms_per_tick_mean"] for r in rows if r["nodes"] == sizes[0]}
    alone = {r["nodes"]: r["cpu_ms_per_tick_mean"] for r in rows if r["placement"] == "alone"}
    for r in rows:
        r["ratio_to_1"] = round(r["cpu_ms_per_tick_mean"] / base[r["placement"]], 2)
        if r["nodes"] in alone:
            r["over_alone"] = round(r["cpu_ms_per_tick_mean"] / alone[r["nodes"]], 2)
    print(table(rows))
    ratios = {p: {r["nodes"]: r["ratio_to_1"] for r in rows if r["placement"] == p}
              for p in args.placements.split(",")}
    print(f"\n## ratios (a node's mean CPU per tick at N / at N = {sizes[0]})")
    print("| placement | " + " | ".join(f"N={n}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for p, by_n in ratios.items():
        print(f"| {p} | " + " | ".join(str(by_n[n]) for n in sizes) + " |")
    if alone:
        print("\n## a node's mean CPU per tick at N / N lone nodes' in this process (alone)")
        print("| placement | " + " | ".join(f"N={n}" for n in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for p in placements:
            if p != "alone":
                print(f"| {p} | " + " | ".join(
                    str(next(r["over_alone"] for r in rows
                             if r["placement"] == p and r["nodes"] == n)) for n in sizes) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"rows": rows, "ratios": ratios, "over_alone": {
                p: {r["nodes"]: r.get("over_alone") for r in rows if r["placement"] == p}
                for p in placements if p != "alone"}, "region_cells": cells, "region_block": block,
             "players_per_node": args.players, "groups": args.groups}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
