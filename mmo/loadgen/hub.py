"""
Many bots' sockets polled for one reactor event.

A reactor pays for every descriptor it wakes (Twisted sets a log context
around each ``doRead``), which is as much as a bot's whole read of a tick
update.  A :class:`Hub` is one reader for the reactor: an ``epoll`` of its
own where the :class:`~mmo.loadgen.link.TCPLink` objects register (it has
the reactor's ``addReader``/``addWriter``/``removeReader``/``removeWriter``),
and when any of them is ready the reactor wakes the hub once and the hub
calls each ready link, with the reactor's rules: ``doRead`` first, then
``doWrite``; a returned reason (or an exception, logged) ends that link.

Linux only (``select.epoll``); :func:`hub_for` gives the reactor itself
elsewhere, which the links use the same way.
"""

from __future__ import annotations

import select
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.main import CONNECTION_LOST
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

#: Ready descriptors handled per wake; more wait for the reactor's next turn,
#: so that timers (the fleet's one loop) are not held up.
MAX_EVENTS = 512

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_HANG_UP = select.EPOLLHUP | select.EPOLLERR


@implementer(IReadDescriptor)
class Hub:
    """One ``epoll`` of links, read by the reactor as one descriptor."""

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.poller = select.epoll()
        #: By descriptor: the link and the events it waits for.
        self.links: dict[int, Any] = {}
        self.masks: dict[int, int] = {}
        reactor.addReader(self)

    def close(self) -> None:
        """Stop polling (every link should be gone by now)."""
        if self.poller.closed:
            return
        self.reactor.removeReader(self)
        self.poller.close()
        self.links.clear()
        self.masks.clear()

    # -- what links call (the reactor's IReactorFDSet, for links) -------------------

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
        return "mmo-loadgen"

    def doRead(self) -> None:
        links = self.links
        for fd, event in self.poller.poll(0, MAX_EVENTS):
            link = links.get(fd)
            if link is None:
                continue
            try:
                why = None
                if event & _IN:
                    why = link.doRead()
                if not why and event & _OUT and fd in links:
                    why = link.doWrite()
                if not why and event & _HANG_UP and not event & _IN and fd in links:
                    # A hang-up with nothing left to read (or a failed connect).
                    why = CONNECTION_LOST
            except Exception as e:
                self.log.failure("a bot's link failed", Failure())
                why = e
            if why:
                self.removeReader(link)
                self.removeWriter(link)
                link.connectionLost(Failure(why))

    def connectionLost(self, reason: Failure) -> None:
        if not self.poller.closed:
            self.poller.close()


def hub_for(reactor: Any) -> Any:
    """Where links register: a :class:`Hub` where epoll exists, else the reactor."""
    if hasattr(select, "epoll"):
        return Hub(reactor)
    return reactor
