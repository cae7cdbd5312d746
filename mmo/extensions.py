"""
Game extensions: the game logic a node runs, found with ``twisted.plugin``.

The server core stays generic.  An extension is an object providing
:class:`IExtension`; the node calls its hooks when a player logs in or out,
moves, or types a chat command (a line starting with ``/``), and once per
tick.  Extensions are made by plugin objects providing
:class:`IExtensionMaker` (usually an :class:`ExtensionMaker`), which
:func:`find_makers` finds in the :mod:`mmo.plugins` package; the config key
``extension`` names the ones a node enables.

:class:`ExtensionHost` runs the hooks: a hook that raises is logged (once per
burst of failures, not once per call) and isolated, so the tick goes on.
``docs/EXTENDING.md`` shows how to write, test and enable one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.plugin import IPlugin, getPlugins
from zope.interface import Attribute, Interface, implementer
from zope.interface.verify import verifyObject

from .config import ConfigError
from .wire import messages as m

if TYPE_CHECKING:
    from .server.node import Node
    from .server.session import PlayerSession
    from .world.grid import Entity, Zone

#: A failure more than this many seconds after the previous one of the same
#: hook starts a new burst (and is logged again, with its traceback).
BURST_GAP = 10.0

#: The hooks a game extension may implement, in :class:`IExtension`.
HOOKS = ("login", "logout", "moved", "command", "tick")


class IExtension(Interface):
    """
    Game logic run inside a node.

    Every hook runs on the reactor thread, inside the tick or a player's
    request: it must not block (use ``deferToThread`` or the node's thread
    pool for slow work).  A hook that raises is logged and skipped.
    """

    name = Attribute("Short unique name, the one the ``extension`` config key uses.")
    commands = Attribute(
        "Mapping of the chat commands this extension answers (a name without "
        "the slash, lower case) to a one-line help text; may be empty.")

    def start(node: Node) -> None:
        """The extension is enabled on ``node``; keep it, spawn NPCs, ..."""

    def stop() -> None:
        """The node is stopping (its players have been saved)."""

    def login(player: Player) -> None:
        """``player`` entered the world; its saved record is in ``player.data``."""

    def logout(player: Player) -> None:
        """``player`` leaves; what is written to ``player.data`` now is saved."""

    def moved(player: Player) -> None:
        """``player`` made an accepted move (its position is ``player.x, player.y``)."""

    def command(player: Player, name: str, args: str) -> None:
        """``player`` typed ``/name args``; ``name`` is one of :attr:`commands`."""

    def tick(number: int) -> None:
        """Once per tick, before the grid settles: moves made now are seen this tick."""


class IExtensionMaker(Interface):
    """A plugin object that makes a node's :class:`IExtension`."""

    name = Attribute("The extension's name in the ``extension`` config key.")
    description = Attribute("One line saying what the extension does.")

    def extension() -> IExtension:
        """A new extension object (one per node: it may hold state)."""


class Extension:
    """
    A convenient base: every hook does nothing.  Subclasses set ``name`` and
    override the hooks they need; the host calls only those overridden,
    so an unused hook costs nothing per move or per tick.
    """

    name = "extension"
    commands: Mapping[str, str] = {}
    node: Node | None = None

    def start(self, node: Node) -> None:
        self.node = node

    def stop(self) -> None:
        pass

    def login(self, player: Player) -> None:
        pass

    def logout(self, player: Player) -> None:
        pass

    def moved(self, player: Player) -> None:
        pass

    def command(self, player: Player, name: str, args: str) -> None:
        pass

    def tick(self, number: int) -> None:
        pass


@implementer(IPlugin, IExtensionMaker)
class ExtensionMaker:
    """
    A dropin's plugin object: ``ExtensionMaker(name, "package.module:Class",
    description)``.  The module is imported only when the extension is
    enabled, so a dropin stays one cheap line, as ``ServiceMaker`` does.
    """

    def __init__(self, name: str, target: str, description: str) -> None:
        self.name = name
        self.target = target
        self.description = description

    def extension(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(import_module(module), attr)()

    def __repr__(self) -> str:
        return f"<ExtensionMaker {self.name} {self.target}>"


def find_makers(package: Any = None) -> dict[str, Any]:
    """
    Every :class:`IExtensionMaker` in ``package`` (default: :mod:`mmo.plugins`,
    which includes the ``mmo/plugins/`` directories of every ``sys.path``
    entry), by name.  The first found of a name wins.
    """
    if package is None:
        from . import plugins as package
    found: dict[str, Any] = {}
    for maker in getPlugins(IExtensionMaker, package):
        found.setdefault(maker.name, maker)
    return found


class Player:
    """
    What a hook gets for a player: its name, place and record, and a way to
    answer it.  One per logged-in session, made by the host.
    """

    __slots__ = ("session",)

    def __init__(self, session: PlayerSession) -> None:
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

    def tell(self, text: str) -> None:
        """Send this player a ``SYSTEM`` chat line."""
        self.session.send(m.ChatMessage(m.Channel.SYSTEM, "", text[:4000]))

    def __repr__(self) -> str:
        return f"<Player {self.session.name!r}>"


class _Burst:
    __slots__ = ("first", "last", "count")

    def __init__(self, now: float) -> None:
        self.first = self.last = now
        self.count = 1


class ExtensionHost:
    """A node's enabled extensions and the calls to their hooks."""

    log = Logger()

    def __init__(self, node: Node) -> None:
        self.node = node
        self.enabled: dict[str, Any] = {}
        #: command name -> (extension, help)
        self.commands: dict[str, tuple[Any, str]] = {}
        #: hook name -> the bound methods to call, in enabling order
        self.hooks: dict[str, list[tuple[Any, Any]]] = {h: [] for h in HOOKS}
        self.players: dict[PlayerSession, Player] = {}
        #: (extension name, hook) -> failures so far
        self.failures: Counter[tuple[str, str]] = Counter()
        self._bursts: dict[tuple[str, str], _Burst] = {}
        # The hot hooks, kept as attributes so that an empty list costs one check.
        self._moved = self.hooks["moved"]
        self._tick = self.hooks["tick"]

    # -- enabling ------------------------------------------------------------

    def enable_names(self, names: Iterable[str], makers: Mapping[str, Any] | None = None) -> None:
        """Enable the extensions called ``names`` (found with :func:`find_makers`)."""
        names = list(names)
        if not names:
            return
        if makers is None:
            makers = find_makers()
        unknown = [n for n in names if n not in makers]
        if unknown:
            raise ConfigError(
                f"unknown extension {', '.join(map(repr, unknown))}; found: "
                + (", ".join(sorted(makers)) or "none"))
        for name in names:
            if name not in self.enabled:
                self.enable(makers[name].extension())

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
        extension.start(self.node)
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
        now = self.node.clock.seconds()
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

    def login(self, session: PlayerSession) -> None:
        player = self.players[session] = Player(session)
        for extension, fn in self.hooks["login"]:
            self._call(extension, "login", fn, player)

    def logout(self, session: PlayerSession) -> None:
        player = self.players.pop(session, None)
        if player is None:
            return
        for extension, fn in self.hooks["logout"]:
            self._call(extension, "logout", fn, player)

    def moved(self, session: PlayerSession) -> None:
        if self._moved:
            player = self.players.get(session)
            if player is not None:
                for extension, fn in self._moved:
                    self._call(extension, "moved", fn, player)

    def command(self, session: PlayerSession, text: str) -> None:
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
            self._close_bursts(self.node.clock.seconds())

    # -- numbers -------------------------------------------------------------

    def numbers(self) -> dict[str, Any]:
        """Counters for the node's snapshot (metrics)."""
        return {"extensions": len(self.enabled),
                "extension_failures": sum(self.failures.values())}


def check_settings(values: Mapping[str, Any]) -> None:
    """
    Raise :class:`ConfigError` for an unknown extension name in the node's
    settings, or NPCs configured in a zone that does not exist or without
    the ``npcs`` extension, so that a typo stops the start with a sentence.
    """
    names = list(values.get("extension", ()))
    if names:
        makers = find_makers()
        unknown = [n for n in names if n not in makers]
        if unknown:
            raise ConfigError(
                f"--extension: unknown extension {', '.join(map(repr, unknown))}; "
                "found: " + (", ".join(sorted(makers)) or "none"))
    npcs = list(values.get("npcs", ()))
    if npcs:
        if "npcs" not in names:
            raise ConfigError("--npcs needs the npcs extension (--extension npcs)")
        zones = [z.name for z in values.get("zone", ())]
        for spec in npcs:
            zone = spec.rpartition(":")[0]
            if zone not in zones:
                raise ConfigError(f"--npcs {spec}: no zone named {zone!r}; zones: "
                                  + ", ".join(zones))
