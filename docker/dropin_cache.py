"""
Regenerate the plugin caches and check that the mmo plugins load.

Run it with the Python that has mmo installed, as the user that owns the
installation (root in a Docker build, or after ``pip install`` for systemd):
the node runs as a user that cannot write the ``dropin.cache`` files next to
the plugins (twistd's in ``twisted/plugins``, the game extensions' in
``mmo/plugins``), and would log at every start that it cannot; a plugin with
an import error vanishes from ``twistd --help`` silently.
"""

from __future__ import annotations

import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin, getPlugins

WANTED = {"mmo", "mmo-loadgen"}
EXTENSIONS = {"commands", "npcs"}


def main() -> int:
    list(getPlugins(IPlugin))
    found = {maker.tapname for maker in getPlugins(IServiceMaker)}
    missing = WANTED - found
    if missing:
        print(f"twistd plugins missing: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    print(f"twistd plugins: {', '.join(sorted(found & WANTED))}")
    # The node's search for game extensions (mmo.plugins and its game
    # package) writes caches of its own.
    from mmo.plugins import find_makers

    extensions = set(find_makers())
    missing = EXTENSIONS - extensions
    if missing:
        print(f"game extensions missing: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    print(f"game extensions: {', '.join(sorted(extensions))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
