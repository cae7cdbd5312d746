"""
The built-in chat commands: ``/who``, ``/where``, ``/zones`` and ``/help``.

Replies are ``SYSTEM`` chat lines to the player who asked.  ``/who`` and
``/zones`` count the players of the whole cluster that this node knows of:
its own and the mirrors of other nodes' players in the cells its players
can see.
"""

from __future__ import annotations

from collections import Counter

from zope.interface import implementer

from mmo.extensions import Extension, IExtension, IPlayer

#: Names listed by ``/who`` before "and N more".
WHO_LIMIT = 50


@implementer(IExtension)
class ChatCommands(Extension):
    """``/who``, ``/where``, ``/zones``, ``/help``."""

    name = "commands"
    commands = {
        "who": "the players online, with their zones",
        "where": "your zone, position and cell, and how many entities you see",
        "zones": "every zone, its size and its players",
        "help": "this list",
    }

    def command(self, player: IPlayer, name: str, args: str) -> None:
        getattr(self, f"do_{name}")(player, args)

    def do_who(self, player: IPlayer, args: str) -> None:
        game = self.game
        found = sorted(
            (e.name, e.zone.name if e.zone else "", e.owner or game.node_id)
            for e in game.world.players())
        shown = ", ".join(f"{n} ({z}, {o})" for n, z, o in found[:WHO_LIMIT])
        more = f" and {len(found) - WHO_LIMIT} more" if len(found) > WHO_LIMIT else ""
        count = "1 player" if len(found) == 1 else f"{len(found)} players"
        player.tell(f"{count} online: {shown}{more}")

    def do_where(self, player: IPlayer, args: str) -> None:
        e = player.entity
        zone = e.zone
        if zone is None:
            player.tell("you are nowhere")
            return
        cx, cy = zone.cell_coords(e.cell)
        seen = len(e.viewer.visible) if e.viewer is not None else 0
        player.tell(f"you are in zone {zone.name} at ({e.x:.1f}, {e.y:.1f}), cell "
                    f"({cx}, {cy}), on node {self.game.node_id}; you see {seen} entities")

    def do_zones(self, player: IPlayer, args: str) -> None:
        world = self.game.world
        counts = Counter(e.zone.name for e in world.players() if e.zone is not None)
        parts = []
        for zone in world.zones.values():
            n = counts[zone.name]
            parts.append(f"{zone.name} {zone.width:g}x{zone.height:g} "
                         f"({n} player{'' if n == 1 else 's'})")
        player.tell("zones: " + "; ".join(parts))

    def do_help(self, player: IPlayer, args: str) -> None:
        lines = [f"/{name}: {text}" for name, text in sorted(self.game.commands().items())]
        player.tell("commands: " + "; ".join(lines))
