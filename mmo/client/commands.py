"""
The small client's command language and how it shows what the player sees;
pure functions and a listener that writes lines, no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zope.interface import implementer

from ..wire import messages as m
from .base import error_name
from .protocol import ClientListener, IClientListener, SeenEntity

HELP = """\
commands:
  move X Y            step to (X, Y) (the server corrects a step that is too far)
  say TEXT            talk to the players near you
  zone TEXT           talk to everyone in your zone
  shout TEXT          talk to everyone on the cluster
  whisper NAME TEXT   talk to one player
  goto ZONE           change zone
  who                 list the players online
  ping                measure the round trip to the server
  where               your position and who you see
  wait SECONDS        pause (for scripts)
  help                this text
  quit                leave"""


class CommandError(ValueError):
    """A command line that cannot be run; the text says why."""


@dataclass(frozen=True)
class Command:
    """A parsed command: its name and its arguments."""

    name: str
    args: tuple = ()


_ALIASES = {"w": "whisper", "tell": "whisper", "exit": "quit", "/quit": "quit",
            "sleep": "wait", "global": "shout", "?": "help"}
_TEXT = ("say", "zone", "shout")


def parse_command(line: str) -> Command | None:
    """Parse one line; ``None`` for a blank line or a ``#`` comment."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    word, _, rest = line.partition(" ")
    word = _ALIASES.get(word.lower(), word.lower())
    rest = rest.strip()
    if word == "move":
        parts = rest.split()
        if len(parts) != 2:
            raise CommandError("usage: move X Y")
        try:
            return Command("move", (float(parts[0]), float(parts[1])))
        except ValueError:
            raise CommandError("move needs two numbers: move X Y") from None
    if word in _TEXT:
        if not rest:
            raise CommandError(f"usage: {word} TEXT")
        return Command(word, (rest,))
    if word == "whisper":
        target, _, text = rest.partition(" ")
        if not target or not text.strip():
            raise CommandError("usage: whisper NAME TEXT")
        return Command("whisper", (target, text.strip()))
    if word == "goto":
        if not rest or " " in rest:
            raise CommandError("usage: goto ZONE")
        return Command("goto", (rest,))
    if word == "wait":
        try:
            seconds = float(rest)
        except ValueError:
            raise CommandError("usage: wait SECONDS") from None
        if not 0 <= seconds <= 3600:
            raise CommandError("wait takes 0 to 3600 seconds")
        return Command("wait", (seconds,))
    if word in ("who", "ping", "where", "help", "quit"):
        if rest:
            raise CommandError(f"{word} takes no arguments")
        return Command(word)
    raise CommandError(f"unknown command {word!r} (try: help)")


def at(x: float, y: float) -> str:
    return f"({x:.1f}, {y:.1f})"


_CHANNELS: dict[int, str] = {m.Channel.SAY: "say", m.Channel.ZONE: "zone", m.Channel.WHISPER: "whisper",
             m.Channel.GLOBAL: "global", m.Channel.SYSTEM: "system"}
_REASONS = {r.value: r.name.lower() for r in m.CorrectionReason}
_NOTICES = {k.value: k.name.lower() for k in m.NoticeKind}


@implementer(IClientListener)
class LinePrinter(ClientListener):
    """Writes one readable line for each thing the player sees."""

    def __init__(self, write: Callable[[str], None], show_moves: bool = False) -> None:
        self.write = write
        self.show_moves = show_moves

    def entered_world(self, msg: m.EnterWorld) -> None:
        self.write(f"* you are in zone {msg.zone} ({msg.zone_width:g}x{msg.zone_height:g}) "
                   f"at {at(msg.x, msg.y)} as #{msg.entity_id} on node {msg.node_id}")

    def entity_entered(self, entity: SeenEntity) -> None:
        self.write(f"* {entity.name} enters at {at(entity.x, entity.y)}")

    def entity_left(self, entity: SeenEntity) -> None:
        self.write(f"* {entity.name} leaves")

    def entities_moved(self, entities: list[SeenEntity]) -> None:
        if self.show_moves:
            for e in entities:
                self.write(f"  {e.name} at {at(e.x, e.y)}")

    def chat_received(self, channel: int, sender: str, text: str) -> None:
        self.write(f"[{_CHANNELS.get(channel, str(channel))}] {sender}: {text}")

    def corrected(self, msg: m.Correction) -> None:
        reason = _REASONS.get(msg.reason, str(msg.reason))
        self.write(f"! correction: move {msg.seq} refused ({reason}), "
                   f"you are at {at(msg.x, msg.y)}")

    def error_received(self, code: int, text: str) -> None:
        self.write(f"! error {error_name(code).upper()}: {text}")

    def notice_received(self, kind: int, text: str) -> None:
        self.write(f"! notice ({_NOTICES.get(kind, str(kind))}): {text}")

    def who_received(self, msg: m.WhoReply) -> None:
        self.write(f"who: {msg.total} player(s) online")
        for name, zone, node in msg.players:
            self.write(f"  {name} in {zone} on {node}")
        if msg.total > len(msg.players):
            self.write(f"  ... and {msg.total - len(msg.players)} more")

    def closed(self, reason: str) -> None:
        self.write(f"* disconnected ({reason})")
