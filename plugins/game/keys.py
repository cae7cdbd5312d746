"""
The NPC extension's own configuration: the ``npcs`` key (``--npcs
world:50``, repeatable) and the typed settings made from it.  Kept apart
from :mod:`mmo.plugins.game.npcs` so that the dropin declares the key
without importing the extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmo.config import ConfigError, Key, text


def parse_npcs(spec: str) -> tuple[str, int]:
    """``"ZONE:COUNT"`` -> ``(zone, count)``; raises ``ValueError``."""
    zone, sep, count = spec.rpartition(":")
    if not sep or not zone:
        raise ValueError(f"{spec!r} is not ZONE:COUNT")
    try:
        n = int(count)
    except ValueError:
        raise ValueError(f"{spec!r} is not ZONE:COUNT (COUNT must be an integer)") from None
    if not 0 <= n <= 1_000_000:
        raise ValueError(f"{spec!r}: COUNT must be between 0 and 1000000")
    return zone, n


def npc_count(value: object) -> str:
    """``ZONE:COUNT``: how many NPCs wander a zone."""
    zone_name, count = parse_npcs(text(value))
    return f"{zone_name}:{count}"


NPC_KEYS = [
    Key("npcs", [], "NPCs wandering a zone, as ZONE:COUNT (needs the npcs "
        "extension), e.g. world:50.", npc_count, repeat=True),
]


@dataclass(frozen=True)
class NpcSettings:
    """How many NPCs wander each zone."""

    #: (zone name, count) pairs, in the order given.
    npcs: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NpcSettings:
        zones = [z.name for z in values["zone"]]
        pairs = []
        for spec in values.get("npcs", ()):
            zone, count = parse_npcs(spec)
            if zone not in zones:
                raise ConfigError(f"--npcs {spec}: no zone named {zone!r}; zones: "
                                  + ", ".join(zones))
            pairs.append((zone, count))
        return cls(tuple(pairs))
