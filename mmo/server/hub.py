"""
Many sockets polled for one reactor event.

A reactor pays for every descriptor it wakes: Twisted's ``epollreactor``
wraps each ``doRead`` in a log context (``callWithLogger``, the context
tracker): 13 % of a node's samples at 2,000 players, under py-spy.  A
:class:`Hub` is one reader for the reactor: an ``epoll`` of its own where
descriptors register (it has the reactor's ``addReader``/``addWriter``/
``removeReader``/``removeWriter``), and when any of them is ready the
reactor wakes the hub once and the hub calls each ready descriptor with the
reactor's rules: ``doRead`` first, then ``doWrite``; a returned reason (or
an exception, logged) ends that descriptor with ``connectionLost``.

Two users:

- the node's players (:meth:`Hub.adopt`): a plain TCP transport that
  Twisted accepted is moved, right after ``connectionMade``, from the
  reactor's own set to the hub's.  Its ``reactor`` attribute becomes the
  hub's :attr:`Hub.view` (the reactor, with the hub's four descriptor
  methods), so that everything the transport does to start and stop
  reading and writing (flow control, ``loseConnection``) lands in the hub,
  and everything else (``callLater``) in the reactor.  The hub reads them
  itself, as ``Connection.doRead`` does but :data:`READ_SIZE` bytes at a
  time, and hands what it read to the transport's ``protocol`` (an empty
  read is the peer's close, ``CONNECTION_DONE``, as Twisted has it);
- the load generator's links (:mod:`mmo.loadgen.link`), which take the hub
  as the set they register with.

When the reactor stops it ends the hub (``connectionLost``, as every
descriptor it holds), and the hub ends every descriptor it holds, as the
reactor would have.  Linux only (``select.epoll``): :func:`can_adopt` says
whether this reactor and this transport can take the hub.
"""

from __future__ import annotations

import select
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from . import fastwrite

_TCP = fastwrite.TCP_TYPES

#: Bytes asked of a player's socket per read.  Twisted's own ``doRead``
#: asks for the transport's ``bufferSize``, which a session sets to its
#: output bound (256 KiB by default); a buffer that large is mapped and
#: unmapped by the allocator for every read (about 18 µs here, against 2 µs
#: for 64 KiB), and a player sends a few dozen bytes a tick.
READ_SIZE = 64 * 1024

#: Ready descriptors the load generator's hub handles per wake; more wait
#: for the reactor's next turn, so that timers (the fleet's one loop) are
#: not held up.  The node's hub handles every ready one, as Twisted's own
#: reactor does: a player it leaves for the next turn waits behind the
#: tick, and under load its moves pile up past the request budget.
MAX_EVENTS = 512

EPOLL = hasattr(select, "epoll")
_IN = getattr(select, "EPOLLIN", 1)
_OUT = getattr(select, "EPOLLOUT", 4)
_HANG_UP = getattr(select, "EPOLLHUP", 16) | getattr(select, "EPOLLERR", 8)


class HubView:
    """The reactor as a descriptor in a hub sees it: the hub's descriptor methods, the rest the reactor's."""

    def __init__(self, reactor: Any, hub: Hub) -> None:
        self._reactor = reactor
        self.addReader = hub.addReader
        self.addWriter = hub.addWriter
        self.removeReader = hub.removeReader
        self.removeWriter = hub.removeWriter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


@implementer(IReadDescriptor)
class Hub:
    """One ``epoll`` of descriptors, read by the reactor as one descriptor."""

    log = Logger()

    def __init__(self, reactor: Any, name: str = "mmo", max_events: int = 0) -> None:
        self.reactor = reactor
        self.name = name
        #: Ready descriptors handled per wake (0: all that are ready).
        self.max_events = max_events
        self.poller = select.epoll()
        #: By descriptor: what registered and the events it waits for.
        self.links: dict[int, Any] = {}
        self.masks: dict[int, int] = {}
        #: What adopted transports take as their reactor.
        self.view = HubView(reactor, self)
        reactor.addReader(self)

    def close(self) -> None:
        """Stop polling (every descriptor should be gone by now)."""
        if self.poller.closed:
            return
        self.reactor.removeReader(self)
        self.poller.close()
        self.links.clear()
        self.masks.clear()

    def adopt(self, transport: Any) -> bool:
        """
        Take a reading, plain TCP ``transport`` of this hub's reactor (just
        connected, nothing written yet) from the reactor's set into this one.
        Whether it did: anything else is left to the reactor.
        """
        if not can_adopt(self.reactor, transport) or self.poller.closed:
            return False
        self.reactor.removeReader(transport)
        transport.reactor = self.view
        self.addReader(transport)
        return True

    # -- what descriptors call (the reactor's IReactorFDSet) -------------------------

    def addReader(self, link: Any) -> None:
        self._change(link, _IN, True)

    def addWriter(self, link: Any) -> None:
        self._change(link, _OUT, True)

    def removeReader(self, link: Any) -> None:
        self._change(link, _IN, False)

    def removeWriter(self, link: Any) -> None:
        self._change(link, _OUT, False)

    def _change(self, link: Any, event: int, on: bool) -> None:
        fd = link.fileno()
        if fd < 0 or self.poller.closed:
            return
        old = self.masks.get(fd, 0)
        new = old | event if on else old & ~event
        if new == old:
            return
        if not new:
            del self.masks[fd], self.links[fd]
            self.poller.unregister(fd)
        elif not old:
            self.masks[fd] = new
            self.links[fd] = link
            self.poller.register(fd, new)
        else:
            self.masks[fd] = new
            self.poller.modify(fd, new)

    # -- what the reactor calls ------------------------------------------------------

    def fileno(self) -> int:
        return self.poller.fileno()

    def logPrefix(self) -> str:
        return self.name

    def doRead(self) -> None:
        links = self.links
        for fd, event in self.poller.poll(0, self.max_events or len(links) + 1):
            link = links.get(fd)
            if link is None:
                continue
            try:
                why: Any = None
                if event & _IN:
                    if type(link) in _TCP:
                        # Connection.doRead, with a read size of its own.
                        try:
                            data = link.socket.recv(READ_SIZE)
                        except BlockingIOError:
                            pass
                        except OSError:
                            why = CONNECTION_LOST
                        else:
                            if data:
                                link.protocol.dataReceived(data)
                            else:
                                why = CONNECTION_DONE
                    else:
                        why = link.doRead()
                if not why and event & _OUT and fd in links:
                    why = link.doWrite()
                if not why and event & _HANG_UP and not event & _IN and fd in links:
                    # A hang-up with nothing left to read (or a failed connect).
                    why = CONNECTION_LOST
            except Exception as e:
                self.log.failure("{name}: a connection failed", Failure(), name=self.name)
                why = e
            if why:
                self._end(link, Failure(why))

    def _end(self, link: Any, reason: Failure) -> None:
        self.removeReader(link)
        self.removeWriter(link)
        link.connectionLost(reason)

    def connectionLost(self, reason: Failure) -> None:
        # The reactor is stopping: end what the hub holds, as the reactor
        # ends the descriptors it holds itself.
        for link in list(self.links.values()):
            try:
                self._end(link, Failure(CONNECTION_LOST))
            except Exception:
                self.log.failure("{name}: ending a connection failed", Failure(),
                                 name=self.name)
        if not self.poller.closed:
            self.poller.close()


def can_adopt(reactor: Any, transport: Any) -> bool:
    """Whether ``transport`` (of ``reactor``) may move into a hub of ``reactor``."""
    return (EPOLL and type(transport) in fastwrite.TCP_TYPES and not transport.TLS
            and getattr(transport, "reactor", None) is reactor and transport.fileno() >= 0)


class SessionHub:
    """The hub the node's sessions move into, made on the first one's reactor."""

    def __init__(self) -> None:
        self.hub: Hub | None = None

    def adopt(self, transport: Any) -> bool:
        """Move ``transport`` into the hub, if it can go there (:meth:`Hub.adopt`)."""
        hub = self.hub
        if hub is None or hub.poller.closed:
            reactor = getattr(transport, "reactor", None)
            if not can_adopt(reactor, transport):
                return False  # no hub made for a transport that could not use it
            hub = self.hub = Hub(reactor, "mmo-players")
        return hub.adopt(transport)
