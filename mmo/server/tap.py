"""``twistd mmo``: the node's options and ``makeService``."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from ..options import SchemaOptions, options_for
from .settings import NODE_SCHEMA


class _NodeOptions(SchemaOptions):
    synopsis = "[options]"
    longdesc = (
        "Run one node of an mmo cluster: players connect over TCP, nodes "
        "share the world over UDP multicast (loopback and TTL 0 unless "
        "--iface/--ttl say otherwise). Every option is also a key of the "
        "TOML file given with --config; flags win."
    )

    def make_settings(self, values: dict[str, Any]) -> Any:
        from ..extensions import check_settings

        check_settings(values)
        return values


Options = options_for(NODE_SCHEMA, _NodeOptions)


def makeService(options: Any, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from .service import NodeService

    return NodeService(options.settings, reactor)
