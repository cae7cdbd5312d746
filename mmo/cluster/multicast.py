"""
The cluster's datagrams over UDP IP multicast: one socket bound to the
cluster's port, every group joined on it.

:class:`MulticastTransport` is the default :class:`~mmo.interfaces.IClusterTransport`.
It is made from an ``IReactorMulticast`` (the reactor, or
:class:`mmo.testing.FakeMulticast` in tests) and the multicast settings;
:class:`ClusterProtocol` is the thin ``DatagramProtocol`` under it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorMulticast
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from ..interfaces import IClusterTransport, INumbers

#: Linux's IP_MULTICAST_ALL: off, so the socket gets only the groups it joined.
IP_MULTICAST_ALL = 49


class ClusterProtocol(DatagramProtocol):
    """Hands every datagram to ``receive``; nothing it raises escapes."""

    log = Logger()

    def __init__(self, receive: Callable[[bytes, Any], object]) -> None:
        self.receive = receive

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            self.receive(datagram, addr)
        except Exception:
            self.log.failure("cluster datagram from {addr} could not be handled", addr=addr)


@implementer(IClusterTransport, INumbers)
class MulticastTransport:
    """
    Groups are multicast groups on UDP port ``port``; datagrams go out of
    ``iface`` (``"0.0.0.0"``: the kernel chooses) with ``ttl``, loopback on
    so that nodes of one host hear each other.  Joining a group twice, or
    leaving one not joined, does nothing.

    A failed join (the kernel's membership limit) is logged and counted in
    ``join_failures``; a send the kernel refuses is logged and reported by
    :meth:`send`'s result.
    """

    log = Logger()

    def __init__(self, multicast: IReactorMulticast, port: int, iface: str = "127.0.0.1",
                 ttl: int = 0) -> None:
        self.multicast = multicast
        self.port_number = port
        self.iface = iface
        self.ttl = ttl
        #: The listening ``IMulticastTransport`` while started, else ``None``.
        self.port: Any = None
        #: The groups joined (asked for: a failed join stays until left).
        self.joined: set[str] = set()
        self.join_failures = 0

    def __str__(self) -> str:
        return f"multicast port {self.port_number} via {self.iface} ttl {self.ttl}"

    def _join_iface(self) -> str:
        return "" if self.iface == "0.0.0.0" else self.iface

    # -- IClusterTransport ---------------------------------------------------------

    def start(self, receive: Any, connected: Any = None) -> None:
        """
        Open the socket; ``receive(data, (host, port))`` gets every datagram
        of the joined groups.  An error to listen is raised, not deferred.
        A socket has no connection to lose: ``connected`` is never called.
        """
        port = self.multicast.listenMulticast(
            self.port_number, ClusterProtocol(receive), listenMultiple=True)
        sock = getattr(port, "socket", None)
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            except OSError:
                pass  # not Linux: the cluster filters cell datagrams by payload anyway
        if self.iface != "0.0.0.0":
            port.setOutgoingInterface(self.iface).addErrback(
                lambda f: self.log.failure("cannot send multicast out of {iface}", f,
                                           iface=self.iface))
        port.setTTL(self.ttl)
        port.setLoopbackMode(True)
        self.port = port
        for group in self.joined:
            self._join(group)

    def stop(self) -> defer.Deferred:
        """Leave every group and close the socket."""
        port, self.port = self.port, None
        groups, self.joined = self.joined, set()
        if port is None:
            return defer.succeed(None)
        for group in groups:
            port.leaveGroup(group, self._join_iface()).addErrback(lambda f: None)
        return defer.maybeDeferred(port.stopListening)

    def join(self, group: str) -> None:
        if group in self.joined:
            return
        self.joined.add(group)
        if self.port is not None:
            self._join(group)

    def leave(self, group: str) -> None:
        if group not in self.joined:
            return
        self.joined.discard(group)
        if self.port is not None:
            self.port.leaveGroup(group, self._join_iface()).addErrback(lambda f: None)

    def trouble(self) -> str | None:
        return None if self.port is not None else "the multicast socket is closed"

    def send(self, group: str, data: bytes) -> bool:
        if self.port is None:
            return False
        try:
            self.port.write(data, (group, self.port_number))
        except OSError as e:
            self.log.warn("cannot send to {group}: {why}", group=group, why=e)
            return False
        return True

    # -- INumbers --------------------------------------------------------------------

    def numbers(self) -> dict[str, Any]:
        return {"join_failures": self.join_failures}

    def _join(self, group: str) -> None:
        self.port.joinGroup(group, self._join_iface()).addErrback(self._join_failed, group)

    def _join_failed(self, failure: Any, group: str) -> None:
        self.join_failures += 1
        self.log.warn("cannot join multicast group {group}: {why} (see "
                      "net.ipv4.igmp_max_memberships)", group=group,
                      why=failure.getErrorMessage())
