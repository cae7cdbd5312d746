"""
Regenerate twistd's plugin cache and check that the mmo plugins load.

Run it with the Python that has mmo installed, as the user that owns the
installation (root in a Docker build, or after ``pip install`` for systemd):
the node runs as a user that cannot write ``twisted/plugins/dropin.cache``,
and a plugin with an import error vanishes from ``twistd --help`` silently.
"""

from __future__ import annotations

import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin, getPlugins

WANTED = {"mmo", "mmo-loadgen"}


def main() -> int:
    list(getPlugins(IPlugin))
    found = {maker.tapname for maker in getPlugins(IServiceMaker)}
    missing = WANTED - found
    if missing:
        print(f"twistd plugins missing: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    print(f"twistd plugins: {', '.join(sorted(found & WANTED))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
