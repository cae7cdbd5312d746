"""
The monitor's keys (each is a TOML key and a flag of ``mmo-monitor``) and
:class:`MonitorSettings`, the typed settings made from them once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..config import (
    Key,
    Schema,
    boolean,
    group_or_auto,
    integer,
    ipv4,
    multicast_group,
    number,
    text,
    zone,
)
from ..settings import NODE_SCHEMA, RegionSettings
from ..world.grid import ZoneSpec
from ..world.regions import RegionLayout, RegionPin


def _node_key(name: str) -> Key:
    """The node's key ``name`` (same default and parser), its help saying it must match."""
    key = NODE_SCHEMA.keys[name]
    return replace(key, help=f"{key.help} Must be the nodes' --{key.option}, for the map's "
                             "regions to be theirs.")


#: How zones are cut into regions and pinned: the nodes' own keys.
REGION_KEYS = [_node_key("region_cells"), _node_key("region_block"), _node_key("region_map")]

MONITOR_KEYS = [
    # Where the cluster is (the same values as the nodes') ---------------------
    Key("mgroup", "239.255.0.1", "Multicast control group of the cluster "
        "(heartbeats).", multicast_group),
    Key("mport", 30001, "UDP port of every multicast group.", integer(1, 65535)),
    Key("iface", "127.0.0.1", "Address of the interface that joins the groups "
        "(127.0.0.1: a cluster on this host).", ipv4),
    Key("cluster_key_file", os.path.join("mmo-data", "cluster.key"),
        "The cluster's HMAC key file, shared with the nodes (never created by the "
        "monitor: it waits for a node to create it).", text),
    Key("cell_group_base", "auto", "First multicast group of the nodes' cell block; "
        "auto: the address after --mgroup.", group_or_auto),
    Key("cell_group_count", 16, "Groups in the nodes' cell block.", integer(1, 4096)),
    Key("cell_group_tile", 3, "The nodes' --cell-group-tile: cells a side of the "
        "tiles hashed over the cell block.", integer(1, 16)),
    Key("metrics_group", "auto", "The nodes' --metrics-group, where their metrics "
        "are; auto: the address after the cell block.", group_or_auto),
    # What to show --------------------------------------------------------------
    Key("zone", "world:2000x2000", "Zone drawn on the map, as NAME:WIDTHxHEIGHT "
        "(the nodes' --zone).", zone),
    Key("cell_size", 100.0, "The nodes' --cell-size (to know the zone's cell groups, which heartbeats "
        "correct, and its regions, which they do not).", number(1, 100000)),
    *REGION_KEYS,
    Key("expiry", 3.0, "Seconds after which a dot not heard from is dropped (the "
        "nodes' 3 keyframe intervals).", number(0.1, 3600)),
    Key("history", 300.0, "Seconds of history in the charts.", number(10, 86400)),
    Key("forget_after", 60.0, "Seconds a gone node stays in the table.",
        number(0, 86400)),
    # How to run ------------------------------------------------------------------
    Key("text", False, "No window: print the same numbers as text each second "
        "(for terminals without a screen).", boolean, flag=True),
    Key("duration", 0.0, "Stop after this many seconds (0: run until closed).",
        number(0, 1e7)),
    Key("screenshot", "", "Write a PNG of the window to this file after --after "
        "seconds, with what it shows as JSON beside it (FILE.json), then exit.", text),
    Key("after", 5.0, "Seconds before --screenshot is taken.", number(0, 86400)),
    Key("json", "", "Write what the monitor shows to this file as JSON at each "
        "redraw (twice a second; once with --text), replaced atomically.", text),
    Key("width", 1500, "Window width in pixels.", integer(400, 10000)),
    Key("height", 920, "Window height in pixels.", integer(300, 10000)),
]

MONITOR_SCHEMA = Schema(MONITOR_KEYS)


@dataclass(frozen=True)
class MonitorSettings:
    """
    Everything ``mmo-monitor`` was told, one field per key of
    :data:`MONITOR_SCHEMA`; made once from the checked values with
    ``mmo.config.build(MonitorSettings, values)``.
    """

    mgroup: str
    mport: int
    iface: str
    cluster_key_file: str
    cell_group_base: str
    cell_group_count: int
    cell_group_tile: int
    metrics_group: str
    zone: ZoneSpec
    cell_size: float
    region_cells: int
    region_block: int
    #: Each ``--region-map`` value's pins (see :attr:`regions`).
    region_map: tuple[tuple[RegionPin, ...], ...]
    expiry: float
    history: float
    forget_after: float
    text: bool
    duration: float
    screenshot: str
    after: float
    json: str
    width: int
    height: int

    @property
    def regions(self) -> RegionSettings:
        """
        The regions as the nodes cut them, with only the pins of the shown
        zone (a node checks the others against its own zones).
        """
        pins = tuple(p for group in self.region_map for p in group if p.zone == self.zone.name)
        return RegionSettings(self.region_cells, self.region_block, pins=pins)

    def check_regions(self) -> None:
        """Raise ``ValueError`` for a pin of regions the shown zone does not have."""
        regions = self.regions
        RegionLayout([self.zone], self.cell_size, regions.cells,
                     regions.block).check_pins(regions.pins)
