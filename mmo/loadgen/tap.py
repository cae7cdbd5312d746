"""``twistd mmo-loadgen``: the load generator's options and ``makeService``."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from ..config import ConfigError, build
from ..options import SchemaOptions, options_for
from .settings import LOADGEN_SCHEMA, LoadgenSettings


class _LoadGenOptions(SchemaOptions):
    synopsis = "[options]"
    longdesc = (
        "Drive simulated players (bots) at mmo nodes and report what they see: "
        "connect and login time, RTT, update age, traffic, corrections, errors "
        "and disconnects. The run stops by itself after --duration, closes every "
        "connection and exits non-zero when more than --max-failures bots failed. "
        "Bots connect only to --targets (or --host/--port). Every option is also a "
        "key of the TOML file given with --config; flags win."
    )

    def make_settings(self, values: dict[str, Any]) -> LoadgenSettings:
        settings = build(LoadgenSettings, values)
        if settings.worker and settings.workers != 1:
            raise ConfigError("--worker is for the children of a --workers run")
        if settings.workers > settings.clients:
            raise ConfigError(f"--workers {settings.workers} is more than "
                              f"--clients {settings.clients}")
        return settings


Options = options_for(LOADGEN_SCHEMA, _LoadGenOptions)


def makeService(options: Any, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from .run import LoadGenService

    return LoadGenService(options.settings, reactor, exit_at_end=True)
