"""
Dropins for game extensions: modules here hold
:class:`~mmo.interfaces.IExtensionMaker` plugin objects, found with
``twisted.plugin.getPlugins``.  In the source tree this is ``plugins/``;
it installs as ``mmo.plugins`` (never as a top-level ``plugins``).

Like ``twisted/plugins``, the package also searches the ``mmo/plugins/``
directory of every other ``sys.path`` entry, so a game ships its extensions
as its own distribution that installs a dropin there, with no
``__init__.py`` in that distribution's ``mmo/`` or ``mmo/plugins/``
(one would hide this package).  The code of mmo's own extensions is in
the subpackage :mod:`mmo.plugins.game` (subpackages are not scanned).
"""

from __future__ import annotations

from typing import Any

from twisted.plugin import getPlugins, pluginPackagePaths

from mmo.interfaces import IExtensionMaker

__path__.extend(pluginPackagePaths(__name__))  # type: ignore[name-defined]  # noqa: F821
__all__ = ["find_makers"]


def find_makers(package: Any = None) -> dict[str, Any]:
    """
    Every :class:`~mmo.interfaces.IExtensionMaker` in ``package`` (default:
    this one, which includes the ``mmo/plugins/`` directories of every
    ``sys.path`` entry), by name.  The first found of a name wins.
    """
    if package is None:
        import sys

        package = sys.modules[__name__]
    found: dict[str, Any] = {}
    for maker in getPlugins(IExtensionMaker, package):
        found.setdefault(maker.name, maker)
    return found
