"""
Game extensions: the game logic a node runs, found with ``twisted.plugin``.

The server core stays generic.  An extension is an object providing
:class:`~mmo.interfaces.IExtension`; the node calls its hooks when a player
logs in or out, moves, or types a chat command (a line starting with
``/``), and once per tick.  It sees the node only as an
:class:`~mmo.interfaces.IGame` and its players as
:class:`~mmo.interfaces.IPlayer`.  Extensions are made by plugin objects
providing :class:`~mmo.interfaces.IExtensionMaker` (usually an
:class:`ExtensionMaker`), found in the :mod:`mmo.plugins` package
(:func:`mmo.plugins.find_makers`); the config key ``extension`` names the
ones a node enables, and a maker may add keys of its own (``--npcs``).

A hook that raises is logged (once per burst of failures) and isolated, so
the tick goes on.  ``docs/EXTENDING.md`` shows how to write, test and
enable one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from .config import Key
from .interfaces import IExtension, IExtensionMaker, IGame, IPlayer

__all__ = ["HOOKS", "Extension", "ExtensionMaker", "IExtension", "IExtensionMaker",
           "IGame", "IPlayer"]

#: The hooks a game extension may implement, in :class:`IExtension`.
HOOKS = ("login", "logout", "moved", "command", "tick")


class Extension:
    """
    A convenient base: every hook does nothing.  Subclasses set ``name`` and
    override the hooks they need; the host calls only those overridden,
    so an unused hook costs nothing per move or per tick.
    """

    name = "extension"
    commands: Mapping[str, str] = {}
    game: IGame

    def start(self, game: IGame) -> None:
        self.game = game

    def stop(self) -> None:
        pass

    def login(self, player: IPlayer) -> None:
        pass

    def logout(self, player: IPlayer) -> None:
        pass

    def moved(self, player: IPlayer) -> None:
        pass

    def command(self, player: IPlayer, name: str, args: str) -> None:
        pass

    def tick(self, number: int) -> None:
        pass


@implementer(IPlugin, IExtensionMaker)
class ExtensionMaker:
    """
    A dropin's plugin object: ``ExtensionMaker(name, "package.module:Class",
    description)``.  The module is imported only when the extension is
    enabled, so a dropin stays one cheap line, as ``ServiceMaker`` does.

    An extension with settings of its own gives its ``keys`` (each a flag and
    a TOML key of the node) and ``settings``, a ``"module:Class"`` whose
    ``from_values(values)`` makes its typed settings from the node's checked
    values; the class is then made with them: ``Class(settings)``.
    """

    def __init__(self, name: str, target: str, description: str,
                 keys: Sequence[Key] = (), settings: str | None = None) -> None:
        self.name = name
        self.target = target
        self.description = description
        self.keys = tuple(keys)
        self.settings = settings

    def configure(self, values: Mapping[str, Any]) -> Any:
        if self.settings is None:
            return None
        return _load(self.settings).from_values(values)

    def extension(self, settings: Any = None) -> Any:
        cls = _load(self.target)
        return cls() if self.settings is None else cls(settings)

    def __repr__(self) -> str:
        return f"<ExtensionMaker {self.name} {self.target}>"


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
