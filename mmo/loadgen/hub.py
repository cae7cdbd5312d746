"""
Where the load generator's links register: one ``epoll`` read by the
reactor as one descriptor (:class:`mmo.server.hub.Hub`, which the node's
players share), so that the reactor wakes once for many bots' sockets.
"""

from __future__ import annotations

from typing import Any

from ..server.hub import EPOLL, MAX_EVENTS, Hub

__all__ = ["Hub", "hub_for"]


def hub_for(reactor: Any) -> Any:
    """Where links register: a :class:`Hub` where epoll exists, else the reactor."""
    if EPOLL:
        return Hub(reactor, "mmo-loadgen", MAX_EVENTS)
    return reactor
