"""
Dropins for game extensions: modules here hold :class:`~mmo.extensions.IExtensionMaker`
plugin objects, found with ``twisted.plugin.getPlugins``.

Like ``twisted/plugins``, the package also searches the ``mmo/plugins/``
directory of every other ``sys.path`` entry, so a game ships its extensions
as its own distribution that installs a dropin there, with no
``__init__.py`` in that distribution's ``mmo/`` or ``mmo/plugins/``
(one would hide this package).
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # type: ignore[name-defined]  # noqa: F821
__all__: list[str] = []
