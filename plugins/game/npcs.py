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

from zope.interface import implementer

from mmo.extensions import Extension, IExtension, IGame
from mmo.wire.messages import Kind
from mmo.world.grid import Entity, Zone

from .keys import NpcSettings, parse_npcs

__all__ = ["Walker", "Wanderers", "parse_npcs"]

#: Chance that an NPC rests instead of walking when it changes course.
REST_CHANCE = 0.3
#: Seconds an NPC keeps a course or a rest: between these two.
LEG_SECONDS = (1.0, 5.0)


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

    def __init__(self, settings: NpcSettings | None = None) -> None:
        self.settings = settings or NpcSettings()
        #: zone -> its walkers
        self.walkers: dict[Zone, list[Walker]] = {}
        self.rng = random.Random()
        self.speed = 25.0
        self.dt = 0.1
        self._serial = 0

    def start(self, game: IGame) -> None:
        super().start(game)
        self.rng = game.rng
        self.speed = game.world.max_speed * 0.5
        self.dt = 1.0 / game.tick_rate
        for zone_name, count in self.settings.npcs:
            self.spawn(game.world.zones[zone_name], count)

    def spawn(self, zone: Zone, count: int) -> list[Entity]:
        """Add ``count`` NPCs at random places of ``zone``."""
        world = self.game.world
        rng = self.rng
        now = self.game.clock.seconds()
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
        world = self.game.world
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
