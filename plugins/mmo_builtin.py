"""The extensions shipped with mmo: chat commands and wandering NPCs."""

from mmo.extensions import ExtensionMaker
from mmo.plugins.game.keys import NPC_KEYS

commands = ExtensionMaker(
    "commands", "mmo.plugins.game.commands:ChatCommands",
    "Chat commands: /who, /where, /zones, /help.")
npcs = ExtensionMaker(
    "npcs", "mmo.plugins.game.npcs:Wanderers",
    "Server-side NPCs wandering the zones named by the npcs key.",
    keys=NPC_KEYS, settings="mmo.plugins.game.keys:NpcSettings")
