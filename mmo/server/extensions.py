"""
The extensions a node runs, and the players they see.

:class:`ExtensionHost` calls the hooks of the enabled
:class:`~mmo.interfaces.IExtension` objects: a hook that raises is logged
(once per burst of failures, not once per call) and isolated, so the tick
goes on.  :class:`Player` is a logged-in session as extensions, the cluster
and the store see it (:class:`~mmo.interfaces.IPlayer`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ..config import ConfigError
from ..extensions import HOOKS, Extension
from ..interfaces import IExtension, IGame, INumbers, IPlayer, ISession
from ..wire import messages as m
from ..world.grid import Entity, Zone

#: A failure more than this many seconds after the previous one of the same
#: hook starts a new burst (and is logged again, with its traceback).
BURST_GAP = 10.0


@implementer(IPlayer)
class Player:
    """
    What a hook gets for a player: its name, place and record, and a way to
    answer it.  One per logged-in session, made by the host.
    """

    __slots__ = ("session",)

    def __init__(self, session: ISession) -> None:
        self.session = session

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def entity(self) -> Entity:
        e = self.session.entity
        assert e is not None, "the player has left the world"
        return e

    @property
    def zone(self) -> Zone | None:
        return self.entity.zone

    @property
    def x(self) -> float:
        return self.entity.x

    @property
    def y(self) -> float:
        return self.entity.y

    @property
    def data(self) -> dict[str, Any]:
        """
        The player's key/value record, saved with its position (on logout,
        periodically and at shutdown) and given back at its next login.
        Keep values JSON-friendly: str, int, float, bool, None, lists and
        dicts with str keys.
        """
        return self.entity.data

    def record(self, namespace: str) -> dict[str, Any]:
        """The part of :attr:`data` kept under ``namespace`` (made if missing)."""
        part = self.entity.data.get(namespace)
        if not isinstance(part, dict):
            part = self.entity.data[namespace] = {}
        return part

    def state(self) -> dict[str, Any]:
        """What is saved of the player: zone, position and record."""
        return state_of(self.entity)

    def tell(self, text: str) -> None:
        """Send this player a ``SYSTEM`` chat line."""
        self.session.send(m.ChatMessage(m.Channel.SYSTEM, "", text[:4000]))

    def send(self, message: Any) -> None:
        """Send this player one protocol message."""
        self.session.send(message)

    def error(self, code: int, text: str) -> None:
        """An ``Error`` frame for this player; its session goes on."""
        self.session.error(code, text)

    def __repr__(self) -> str:
        return f"<Player {self.session.name!r}>"


def state_of(e: Entity) -> dict[str, Any]:
    """What is saved of an entity: ``{"zone", "x", "y", "data"}``."""
    return {"zone": e.zone.name if e.zone else "", "x": e.x, "y": e.y, "data": dict(e.data)}


class _Burst:
    __slots__ = ("first", "last", "count")

    def __init__(self, now: float) -> None:
        self.first = self.last = now
        self.count = 1


@implementer(INumbers)
class ExtensionHost:
    """A node's enabled extensions and the calls to their hooks."""

    log = Logger()

    def __init__(self, game: IGame) -> None:
        self.game = game
        self.enabled: dict[str, Any] = {}
        #: command name -> (extension, help)
        self.commands: dict[str, tuple[Any, str]] = {}
        #: hook name -> the bound methods to call, in enabling order
        self.hooks: dict[str, list[tuple[Any, Any]]] = {h: [] for h in HOOKS}
        self.players: dict[ISession, Player] = {}
        #: (extension name, hook) -> failures so far
        self.failures: Counter[tuple[str, str]] = Counter()
        self._bursts: dict[tuple[str, str], _Burst] = {}
        # The hot hooks, kept as attributes so that an empty list costs one check.
        self._moved = self.hooks["moved"]
        self._tick = self.hooks["tick"]

    # -- enabling ------------------------------------------------------------

    def enable_configured(self, configured: Mapping[str, Any],
                          makers: Mapping[str, Any]) -> None:
        """
        Make and enable the extensions ``configured`` names (name -> its own
        settings, as :attr:`mmo.settings.Settings.extensions` has them) with
        the ``makers`` found in :mod:`mmo.plugins`.
        """
        for name, own in configured.items():
            maker = makers.get(name)
            if maker is None:
                raise ConfigError(f"unknown extension {name!r}; found: "
                                  + (", ".join(sorted(makers)) or "none"))
            self.enable(maker.extension(own))

    def enable(self, extension: Any) -> Any:
        """Start ``extension`` (an :class:`IExtension`) and call its hooks from now on."""
        verifyObject(IExtension, extension)
        name = extension.name
        if name in self.enabled:
            raise ValueError(f"an extension named {name!r} is already enabled")
        for command in extension.commands:
            if command in self.commands:
                raise ValueError(
                    f"extension {name!r} and {self.commands[command][0].name!r} "
                    f"both answer /{command}")
        extension.start(self.game)
        self.enabled[name] = extension
        for command, text in extension.commands.items():
            self.commands[command.lower()] = (extension, text)
        for hook in HOOKS:
            method = getattr(extension, hook)
            base = getattr(Extension, hook)
            if getattr(method, "__func__", None) is not base:
                self.hooks[hook].append((extension, method))
        self.log.info("extension {name} enabled", name=name)
        for session in list(self.players):
            self._call(extension, "login", extension.login, self.players[session])
        return extension

    def stop(self) -> None:
        """Stop every extension (once)."""
        enabled, self.enabled = self.enabled, {}
        for hooks in self.hooks.values():
            hooks.clear()
        self.commands.clear()
        for extension in enabled.values():
            self._call(extension, "stop", extension.stop)

    # -- hooks ---------------------------------------------------------------

    def _call(self, extension: Any, hook: str, fn: Any, *args: Any) -> bool:
        try:
            fn(*args)
        except Exception:
            self._failed(extension, hook)
            return False
        return True

    def _failed(self, extension: Any, hook: str) -> None:
        key = (getattr(extension, "name", repr(extension)), hook)
        self.failures[key] += 1
        now = self.game.clock.seconds()
        burst = self._bursts.get(key)
        if burst is not None and now - burst.last <= BURST_GAP:
            burst.count += 1
            burst.last = now
            return
        self._bursts[key] = _Burst(now)
        self.log.failure(
            "extension {extension} failed in its {hook} hook (further failures "
            "are counted, not logged, until it has been quiet {gap:g}s)",
            extension=key[0], hook=hook, gap=BURST_GAP)

    def _close_bursts(self, now: float) -> None:
        for key in [k for k, b in self._bursts.items() if now - b.last > BURST_GAP]:
            b = self._bursts.pop(key)
            self.log.warn(
                "extension {extension}: {hook} hook failed {n} times in "
                "{seconds:.1f}s; quiet again", extension=key[0], hook=key[1],
                n=b.count, seconds=b.last - b.first)

    def login(self, session: ISession) -> None:
        player = self.players[session] = Player(session)
        for extension, fn in self.hooks["login"]:
            self._call(extension, "login", fn, player)

    def logout(self, session: ISession) -> None:
        player = self.players.pop(session, None)
        if player is None:
            return
        for extension, fn in self.hooks["logout"]:
            self._call(extension, "logout", fn, player)

    def moved(self, session: ISession) -> None:
        if self._moved:
            player = self.players.get(session)
            if player is not None:
                for extension, fn in self._moved:
                    self._call(extension, "moved", fn, player)

    def command(self, session: ISession, text: str) -> None:
        """Run the chat command ``text`` (which starts with ``/``)."""
        player = self.players.get(session) or Player(session)
        word, _, args = text[1:].partition(" ")
        name = word.lower()
        entry = self.commands.get(name)
        if entry is None:
            player.tell(f"unknown command /{word}; /help lists the commands")
            return
        extension = entry[0]
        if not self._call(extension, "command", extension.command, player, name, args.strip()):
            player.tell(f"/{name} failed; the error was logged")

    def tick(self, number: int) -> None:
        for extension, fn in self._tick:
            try:
                fn(number)
            except Exception:
                self._failed(extension, "tick")
        if self._bursts:
            self._close_bursts(self.game.clock.seconds())

    # -- numbers -------------------------------------------------------------

    def numbers(self) -> dict[str, Any]:
        """Counters for the node's snapshot (metrics)."""
        return {"extensions": len(self.enabled),
                "extension_failures": sum(self.failures.values())}


