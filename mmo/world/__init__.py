"""Zones, the grid, area of interest: pure Python, no I/O."""

from .grid import Entity, Zone, ZoneSpec
from .world import Viewer, World

__all__ = ["Entity", "Zone", "ZoneSpec", "Viewer", "World"]
