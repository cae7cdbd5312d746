"""
What the monitor shows, computed from a :class:`~.model.ClusterModel`:
the totals, the node table's rows, the chart series, the map's dots and
regions, with their texts and colours.  The window and the text view both draw
these, so they always show the same numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ..wire.messages import Kind
from .model import GONE, LIVE, SERIES, STALE, ClusterModel, NodeState

#: Node colours, in order of appearance (distinct on a dark or light map).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
#: Foreground and background of a row in each state.
STATE_COLOURS = {
    LIVE: ("#1b5e20", "#e8f5e9"),
    STALE: ("#8d5300", "#fff3cd"),
    GONE: ("#b71c1c", "#f3d6d6"),
}
EVENT_COLOURS = {"info": "#303030", "warn": "#8d5300", "bad": "#b71c1c"}
COLUMNS = ("node", "address", "players", "entities", "events/s", "tick Hz",
           "p99 ms", "TCP out/s", "mcast out/s", "regions", "heard", "state")
#: Columns that hold numbers (right-aligned).
NUMERIC = frozenset(range(2, 10))
#: How opaque a region's tint is on the map (of 255): the dots stay readable.
REGION_ALPHA = 0x38
#: Chart titles and units, by series.
CHARTS = {
    "players": ("players", ""),
    "events_per_sec": ("events per second", "/s"),
    "tick_ms_p99": ("tick time p99", "ms"),
    "bytes_out_per_sec": ("bandwidth out (TCP + cluster)", "B/s"),
}


def colour_of(node: NodeState) -> str:
    return PALETTE[node.index % len(PALETTE)]


def human_bytes(n: float) -> str:
    """``1234567`` -> ``1.23 MB``: three significant digits at most."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 999.5 or unit == "TB":
            if unit == "B":
                return f"{n:.0f} B"
            return f"{n:.3g} {unit}" if abs(n) < 100 else f"{n:.0f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_number(n: float) -> str:
    """Thousands separated; one decimal below 100."""
    return f"{n:,.1f}" if abs(n) < 100 and n != int(n) else f"{n:,.0f}"


def ago(seconds: float) -> str:
    return "now" if seconds < 0.95 else f"{seconds:.0f}s ago"


@dataclass(frozen=True)
class Row:
    """One line of the node table, as shown, plus what it is drawn with."""

    node: str
    address: str
    players: int
    entities: int
    events_per_sec: float
    tick_hz: float
    tick_ms_p99: float
    bytes_out_per_sec: float
    cluster_bytes_out_per_sec: float
    #: Regions of the shown zone the node owns.
    regions: int
    last_heard: float
    state: str
    colour: str

    def cells(self) -> tuple[str, ...]:
        """The texts of the row's cells, in :data:`COLUMNS` order."""
        return (self.node, self.address, f"{self.players:,}", f"{self.entities:,}",
                human_number(self.events_per_sec), f"{self.tick_hz:.1f}",
                f"{self.tick_ms_p99:.2f}", human_bytes(self.bytes_out_per_sec),
                human_bytes(self.cluster_bytes_out_per_sec), f"{self.regions:,}",
                ago(self.last_heard), self.state)


def rows(model: ClusterModel, now: float) -> list[Row]:
    """The node table: live first, then stale, then gone; by id within each."""
    order = {LIVE: 0, STALE: 1, GONE: 2}
    regions = model.regions.counts()
    out = []
    for n in sorted(model.nodes.values(), key=lambda n: (order[n.state], n.node_id)):
        hb = n.heartbeat
        out.append(Row(
            n.node_id, f"{hb.address}:{hb.tcp_port}" if hb else "?", n.players,
            int(n.number("entities", hb.entities if hb else 0)),
            n.number("events_per_sec"), n.number("tick_hz"), n.number("tick_ms_p99"),
            n.number("bytes_out_per_sec"), n.number("cluster_bytes_out_per_sec"),
            regions.get(n.node_id, 0), max(0.0, now - n.heard), n.state, colour_of(n)))
    return out


@dataclass(frozen=True)
class Totals:
    """The cluster in one line."""

    live: int
    stale: int
    gone: int
    players: int
    events_per_sec: float
    bytes_out_per_sec: float
    tick_ms_p99: float
    #: Players on the map, and NPCs.
    dots: int
    npcs: int
    received: int
    auth_failures: int
    malformed: int
    replays: int
    no_key: int

    def items(self) -> list[tuple[str, str]]:
        """``(label, value)`` pairs, in the order they are shown."""
        nodes = f"{self.live}"
        if self.stale or self.gone:
            nodes += "".join(f" +{n} {state}" for n, state in
                             ((self.stale, STALE), (self.gone, GONE)) if n)
        return [
            ("nodes", nodes),
            ("players", f"{self.players:,}"),
            ("events/s", human_number(self.events_per_sec)),
            ("out/s", human_bytes(self.bytes_out_per_sec)),
            ("worst tick p99", f"{self.tick_ms_p99:.1f} ms"),
            ("on map", f"{self.dots:,}" + (f" +{self.npcs:,} NPCs" if self.npcs else "")),
            ("auth failures", f"{self.auth_failures:,}"),
        ]


def totals(model: ClusterModel) -> Totals:
    states = Counter(n.state for n in model.nodes.values())
    s = model.sample(0.0).total
    c = model.counters
    npcs = sum(1 for d in model.dots() if d[3] == Kind.NPC)
    return Totals(
        states[LIVE], states[STALE], states[GONE], int(s["players"]), s["events_per_sec"],
        s["bytes_out_per_sec"] + s["cluster_bytes_out_per_sec"], s["tick_ms_p99"],
        len(model.mirrors.mirrors) - npcs, npcs, c.received, c.auth_failures, c.malformed, c.replays,
        c.no_key)


def series(model: ClusterModel, name: str, now: float) -> dict[str, tuple[list[float], list[float]]]:
    """
    ``node id -> (seconds before now, values)`` of one chart, plus
    ``"total"`` (the worst node for tick time).  Bandwidth is TCP and
    cluster bytes out together.
    """
    out: dict[str, tuple[list[float], list[float]]] = {}

    def value(numbers: dict[str, float]) -> float:
        if name == "bytes_out_per_sec":
            return numbers[name] + numbers["cluster_bytes_out_per_sec"]
        return numbers[name]

    assert name in SERIES
    for sample in model.history:
        if not sample.per_node:
            continue
        t = sample.time - now
        for node_id, numbers in sample.per_node.items():
            xs, ys = out.setdefault(node_id, ([], []))
            xs.append(t)
            ys.append(value(numbers))
        xs, ys = out.setdefault("total", ([], []))
        xs.append(t)
        ys.append(value(sample.total))
    return out


def node_colours(model: ClusterModel) -> dict[str, str]:
    return {n.node_id: colour_of(n) for n in model.nodes.values()}


def dots_by_node(model: ClusterModel, npcs: bool = False) -> dict[str, list[tuple[float, float]]]:
    """The map: each node's players (or, with ``npcs``, its NPCs)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for x, y, owner, kind in model.dots():
        if (kind == Kind.NPC) == npcs:
            out.setdefault(owner, []).append((x, y))
    return out


def regions(model: ClusterModel) -> list[tuple[tuple[float, float, float, float], str, str]]:
    """The map's regions: ``((x0, y0, x1, y1), owner, owner's colour)`` of each."""
    colours = node_colours(model)
    return [(bounds, owner, colours.get(owner, "#888888"))
            for bounds, owner in model.regions.owners()]


def snapshot(model: ClusterModel, now: float) -> dict[str, Any]:
    """Everything shown, as plain data (the text view's ``--json``)."""
    t = totals(model)
    return {
        "zone": str(model.zone_spec),
        "totals": asdict(t),
        "nodes": [{**asdict(r), "cells": list(r.cells())} for r in rows(model, now)],
        "dots": {"total": t.dots,
                 "by_node": {k: len(v) for k, v in dots_by_node(model).items()},
                 "npcs": {k: len(v) for k, v in dots_by_node(model, npcs=True).items()}},
        "regions": {"total": model.regions.total, "by_node": model.regions.counts()},
        "events": [e.text for e in model.events],
    }
