"""
``twistd mmo``: the node's options and ``makeService``.

The options are the node's keys (:mod:`mmo.settings`) and those the game
extensions found in :mod:`mmo.plugins` declare; parsing them checks every
value and builds the typed :class:`~mmo.settings.Settings` once.

    python -P -m mmo.app.tap > config/mmo.toml   # the sample config, every key
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from ..config import sample_toml
from ..options import SchemaOptions, options_for
from ..plugins import find_makers
from ..settings import Settings, node_schema

MAKERS = find_makers()
#: Every key of ``twistd mmo``: the node's and the extensions'.
SCHEMA = node_schema(MAKERS)


class _NodeOptions(SchemaOptions):
    synopsis = "[options]"
    longdesc = (
        "Run one node of an mmo cluster: players connect over TCP, nodes "
        "share the world over UDP multicast (loopback and TTL 0 unless "
        "--iface/--ttl say otherwise). Every option is also a key of the "
        "TOML file given with --config; flags win."
    )

    def make_settings(self, values: dict[str, Any]) -> Settings:
        return Settings.build(values, MAKERS)


Options = options_for(SCHEMA, _NodeOptions)


def makeService(options: Any, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from .service import NodeService

    return NodeService(options.settings, reactor, MAKERS)


if __name__ == "__main__":
    print(sample_toml(SCHEMA,
                      "mmo node configuration: every key, at its default."), end="")
