"""
Server-side NPCs that wander a zone.

The ``npcs`` config key says how many per zone (``--npcs world:50``).  NPCs
are ordinary entities owned by the node that spawns them, so its players
see them like any other entity and the cluster publishes them like its
players.  They walk in straight lines at half ``max_speed``, turn or rest
every few seconds and bounce off the zone's edges.  All of them move in one
pass per tick (no timer per NPC), so thousands cost a few milliseconds.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from zope.interface import implementer

from mmo.config import ConfigError
from mmo.extensions import Extension, IExtension
from mmo.wire.messages import Kind

if TYPE_CHECKING:
    from mmo.server.node import Node
    from mmo.world.grid import Entity, Zone

#: Chance that an NPC rests instead of walking when it changes course.
REST_CHANCE = 0.3
#: Seconds an NPC keeps a course or a rest: between these two.
LEG_SECONDS = (1.0, 5.0)


def parse_npcs(text: str) -> tuple[str, int]:
    """``"ZONE:COUNT"`` -> ``(zone, count)``; raises ``ValueError``."""
    zone, sep, count = text.rpartition(":")
    if not sep or not zone:
        raise ValueError(f"{text!r} is not ZONE:COUNT")
    try:
        n = int(count)
    except ValueError:
        raise ValueError(f"{text!r} is not ZONE:COUNT (COUNT must be an integer)") from None
    if not 0 <= n <= 1_000_000:
        raise ValueError(f"{text!r}: COUNT must be between 0 and 1000000")
    return zone, n


class Walker:
    """One NPC's entity and course: velocity and ticks left on this leg."""

    __slots__ = ("entity", "vx", "vy", "left")

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.vx = 0.0
        self.vy = 0.0
        self.left = 0


@implementer(IExtension)
class Wanderers(Extension):
    """NPCs wandering the zones the ``npcs`` key names."""

    name = "npcs"
    node: Node

    def __init__(self) -> None:
        #: zone -> its walkers
        self.walkers: dict[Zone, list[Walker]] = {}
        self.rng = random.Random()
        self.speed = 25.0
        self.dt = 0.1
        self._serial = 0

    def start(self, node: Node) -> None:
        super().start(node)
        self.rng = node.rng
        settings = node.settings
        self.speed = settings["max_speed"] * 0.5
        self.dt = 1.0 / settings["tick_hz"]
        for text in settings.get("npcs", ()):
            zone_name, count = parse_npcs(text)
            zone = node.world.zones.get(zone_name)
            if zone is None:
                raise ConfigError(f"npcs {text!r}: no zone named {zone_name!r}; zones: "
                                  + ", ".join(node.world.zones))
            self.spawn(zone, count)

    def spawn(self, zone: Zone, count: int) -> list[Entity]:
        """Add ``count`` NPCs at random places of ``zone``."""
        world = self.node.world
        rng = self.rng
        now = self.node.clock.seconds()
        walkers = self.walkers.setdefault(zone, [])
        made = []
        for _ in range(count):
            self._serial += 1
            e = world.spawn(f"npc-{self._serial}", zone, rng.uniform(0, zone.width),
                            rng.uniform(0, zone.height), Kind.NPC, now=now)
            w = Walker(e)
            self._turn(w)
            walkers.append(w)
            made.append(e)
        return made

    def stop(self) -> None:
        world = self.node.world
        for walkers in self.walkers.values():
            for w in walkers:
                world.despawn(w.entity)
        self.walkers = {}

    def count(self) -> int:
        return sum(len(ws) for ws in self.walkers.values())

    def _turn(self, w: Walker) -> None:
        rng = self.rng
        low, high = LEG_SECONDS
        w.left = max(1, int(rng.uniform(low, high) / self.dt))
        if rng.random() < REST_CHANCE:
            w.vx = w.vy = 0.0
            return
        heading = rng.uniform(0.0, 2 * math.pi)
        speed = self.speed * rng.uniform(0.5, 1.0)
        w.vx = math.cos(heading) * speed
        w.vy = math.sin(heading) * speed

    def tick(self, number: int) -> None:
        dt = self.dt
        turn = self._turn
        for zone, walkers in self.walkers.items():
            width = zone.width
            height = zone.height
            move = zone.move
            for w in walkers:
                w.left -= 1
                if w.left <= 0:
                    turn(w)
                vx = w.vx
                vy = w.vy
                if vx == 0.0 and vy == 0.0:
                    continue
                e = w.entity
                if e.zone is not zone:
                    continue  # despawned by someone else
                x = e.x + vx * dt
                y = e.y + vy * dt
                # Bounce off the edges: reflect the step and the course.
                if x < 0.0:
                    x = min(-x, width)
                    w.vx = -vx
                elif x > width:
                    x = max(2 * width - x, 0.0)
                    w.vx = -vx
                if y < 0.0:
                    y = min(-y, height)
                    w.vy = -vy
                elif y > height:
                    y = max(2 * height - y, 0.0)
                    w.vy = -vy
                move(e, x, y)
