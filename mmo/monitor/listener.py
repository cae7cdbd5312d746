"""
The monitor's Twisted side: one multicast socket on the control group and
the cell groups of the zone on the map, feeding a :class:`ClusterModel`,
and a timer that advances the model and tells the views to redraw.

It only listens: nothing is ever sent, so the nodes do not see it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..cluster.auth import KeyFileError, load_or_create_key
from ..cluster.groups import CellGroups, cluster_groups, zone_cols
from ..world.grid import Zone
from .model import ClusterModel
from .settings import MonitorSettings

#: Linux's IP_MULTICAST_ALL: off, so the socket gets only the groups it joined.
IP_MULTICAST_ALL = 49
#: Seconds between two redraws (and model updates).
REFRESH = 0.5


def zone_groups(groups: CellGroups, zone: Zone) -> list[str]:
    """The cell groups that carry ``zone``'s cells, in block order."""
    cells = zone.cols * zone.rows
    t = groups.tile
    if -(-zone.cols // t) * -(-zone.rows // t) >= 8 * len(groups.groups):
        # Hashing that many tiles reaches every group (and is not worth
        # computing for a huge zone).
        return list(groups.groups)
    wanted = {groups.group_for(zone.name, c) for c in range(cells)}
    return [g for g in groups.groups if g in wanted]


def read_key(path: str) -> bytes | None:
    """The key in ``path``, or ``None`` while it does not exist (never created here)."""
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return None
    return load_or_create_key(path)


class MonitorProtocol(DatagramProtocol):
    """Hands every datagram to ``receive``; nothing it raises escapes."""

    log = Logger()

    def __init__(self, receive: Callable[[bytes], None]) -> None:
        self.receive = receive

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            self.receive(datagram)
        except Exception:
            self.log.failure("monitor: datagram from {addr} could not be handled", addr=addr)


class MonitorService(Service):
    """Listens to the cluster for ``model``; calls each of ``views`` after each update."""

    log = Logger()

    def __init__(self, model: ClusterModel, settings: MonitorSettings, reactor: Any,
                 multicast: Any = None) -> None:
        self.model = model
        self.settings = settings
        #: Time and timers: the reactor, or a ``Clock`` in tests.
        self.reactor = reactor
        #: An ``IReactorMulticast``: the reactor, or a fake network in tests.
        self.multicast = multicast if multicast is not None else reactor
        self.views: list[Callable[[float], None]] = []
        self.port: Any = None
        try:
            self.groups, self.metrics_group = cluster_groups(settings, zone_cols(model.world))
        except ValueError as e:
            raise SystemExit(f"mmo-monitor: {e}") from None
        self.joined: list[str] = []
        self._loop: LoopingCall | None = None
        self._key_loop: LoopingCall | None = None
        self._all_groups = False

    def _iface(self) -> str:
        return "" if self.settings.iface == "0.0.0.0" else self.settings.iface

    def startService(self) -> None:
        super().startService()
        # The monitor reads the cluster from now on, on the reactor's clock:
        # a recording of what was sent before is refused, as by a node.
        self.model.opener.start(self.reactor.seconds)
        self.port = self.multicast.listenMulticast(
            self.settings.mport, MonitorProtocol(self.received), listenMultiple=True)
        sock = getattr(self.port, "socket", None)
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            except OSError:
                pass  # not Linux: the model filters by zone anyway
        zone = self.model.world.zones[self.model.zone]
        for group in [self.settings.mgroup, self.metrics_group,
                      *zone_groups(self.groups, zone)]:
            self.join(group)
        self.log.info("monitor: listening on {group}:{port} via {iface}, zone {zone} on "
                      "{n} cell groups", group=self.settings.mgroup,
                      port=self.settings.mport, iface=self.settings.iface,
                      zone=str(self.model.zone_spec), n=len(self.joined) - 2)
        if self.model.key is None:
            self._key_loop = LoopingCall(self.load_key)
            self._key_loop.clock = self.reactor
            self._key_loop.start(1.0, now=True)
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = self.reactor
        self._loop.start(REFRESH, now=True)

    def stopService(self) -> Any:
        super().stopService()
        for loop in (self._loop, self._key_loop):
            if loop is not None and loop.running:
                loop.stop()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None

    def join(self, group: str) -> None:
        if group in self.joined:
            return
        self.joined.append(group)
        self.port.joinGroup(group, self._iface()).addErrback(self._join_failed, group)

    def _join_failed(self, failure: Any, group: str) -> None:
        self.model.event(self.reactor.seconds(), f"cannot join {group}: "
                         f"{failure.getErrorMessage()}", "warn")

    def load_key(self) -> None:
        """Read the key file; until it exists, say so once and try again."""
        path = self.settings.cluster_key_file
        now = self.reactor.seconds()
        try:
            key = read_key(path)
        except KeyFileError as e:
            # Perhaps a node is writing it right now: say why, and try again.
            if not any(ev.text == str(e) for ev in self.model.events):
                self.model.event(now, str(e), "bad")
            return
        if key is None:
            if not any("waiting for the cluster key" in e.text for e in self.model.events):
                self.model.event(now, f"waiting for the cluster key file {path} "
                                 "(a node creates it)", "warn")
            return
        self.model.set_key(key)
        self.model.event(now, f"cluster key read from {path}")
        if self._key_loop is not None and self._key_loop.running:
            self._key_loop.stop()

    def received(self, datagram: bytes) -> None:
        self.model.datagram_received(datagram, self.reactor.seconds())

    def refresh(self) -> None:
        now = self.reactor.seconds()
        self.model.advance(now)
        if self.model.other_cell_sizes and not self._all_groups:
            # The zone's cells differ from what was assumed: join every group.
            self._all_groups = True
            for group in self.groups.groups:
                self.join(group)
        for view in self.views:
            try:
                view(now)
            except Exception:
                self.log.failure("monitor: a view failed to redraw")
