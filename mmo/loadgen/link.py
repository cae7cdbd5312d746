"""
A bot's TCP connection, read and written straight on its socket.

:class:`TCPLink` is the least a bot needs of a transport, without a Twisted
``Protocol``/``Connection`` pair in between: the reactor (or a
:class:`~mmo.loadgen.hub.Hub`) calls :meth:`TCPLink.doRead` when the socket
has bytes, which are read with ``recv_into`` into one buffer shared by every
link of a process and handed to the bot's
:meth:`~mmo.loadgen.bot.Bot.received` to scan in place; a write goes out
with ``socket.send`` at once.  What the kernel does not take is kept, in
order, and sent when the socket is writable again: no byte is lost or
reordered.

Errors follow Twisted's rules: ``doRead`` and ``doWrite`` return why the
connection ended (``CONNECTION_DONE``, ``CONNECTION_LOST``) and whoever
polls calls :meth:`TCPLink.connectionLost`; an error found while writing
from the bot's own code is left for the next ``doRead``/``doWrite``, so that
no bot ends in the middle of the loop that drives them all.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import error as txerror
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IReadWriteDescriptor, ITransport
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.python.failure import Failure
from zope.interface import implementer

#: Bytes one read may bring; every link of a process reads into one such buffer.
READ_SIZE = 256 * 1024

#: Reason names of a connection attempt that failed, by ``errno``.
_CONNECT_ERRORS = {
    errno.ECONNREFUSED: "connect_refused",
    errno.ETIMEDOUT: "connect_timeout",
}


def read_buffer() -> memoryview:
    """A buffer for :class:`TCPLink` reads (one per process is enough)."""
    return memoryview(bytearray(READ_SIZE))


@implementer(IReadWriteDescriptor, ITransport)
class TCPLink:
    """
    One bot's TCP connection to ``(host, port)``.

    ``fds`` is where the link registers to be read and written (the
    reactor, or a :class:`~mmo.loadgen.hub.Hub` that polls many links for
    one reactor event).  ``protocol`` gets ``makeConnection(link)`` once
    connected, ``received(buffer, n)`` for each read and
    ``connectionLost(reason)`` at the end; if the connection cannot be made,
    ``failed`` gets a reason name instead (``connect_refused``,
    ``connect_timeout``, ``connect_failed``, or ``connect_cancelled`` after
    :meth:`cancel`).
    """

    def __init__(self, reactor: Any, fds: Any, protocol: Any, buffer: memoryview,
                 failed: Callable[[str], None]) -> None:
        self.reactor = reactor
        self.fds = fds
        self.protocol = protocol
        self.buffer = buffer
        self.failed = failed
        self.socket: socket.socket | None = None
        self.address = IPv4Address("TCP", "0.0.0.0", 0)
        self.connecting = False
        #: ``loseConnection`` was called: end once everything is sent.
        self.disconnecting = False
        #: Bytes the kernel has not taken yet, sent in order before any new write.
        self.pending = bytearray()
        self._timeout: Any = None
        self._fileno = -1

    # -- connecting ------------------------------------------------------------

    def connect(self, host: str, port: int, timeout: float) -> None:
        """Start connecting; the outcome comes later, from the reactor."""
        self.address = IPv4Address("TCP", host, port)
        sock = self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # A game sends small frames and wants them now, not batched by Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._fileno = sock.fileno()
        self.connecting = True
        code = sock.connect_ex((host, port))
        if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._timeout = self.reactor.callLater(timeout, self._give_up, "connect_timeout")
            self.fds.addWriter(self)
        else:
            # Even an immediate refusal is reported from the reactor, as
            # connect_ex never calls back into whoever is connecting.
            self._timeout = self.reactor.callLater(0, self._give_up, _connect_reason(code))

    def cancel(self) -> None:
        """Give up connecting (a connected link is not affected)."""
        if self.connecting:
            self._give_up("connect_cancelled")

    def _give_up(self, reason: str) -> None:
        if not self.connecting:
            return
        self.connecting = False
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._close_socket()
        self.failed(reason)

    def _connected(self) -> None:
        assert self.socket is not None
        code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._give_up(_connect_reason(code))
            return
        self.connecting = False
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self.fds.removeWriter(self)
        self.fds.addReader(self)
        self.protocol.makeConnection(self)

    # -- what the reactor calls --------------------------------------------------

    def fileno(self) -> int:
        return self._fileno

    def logPrefix(self) -> str:
        return "mmo-loadgen bot"

    def doRead(self) -> Any:
        sock = self.socket
        if sock is None:
            return CONNECTION_LOST
        try:
            n = sock.recv_into(self.buffer)
        except BlockingIOError:
            return None
        except OSError as e:
            return txerror.ConnectionLost(e.strerror)
        if not n:
            return CONNECTION_DONE
        self.protocol.received(self.buffer, n)
        return None

    def doWrite(self) -> Any:
        if self.connecting:
            self._connected()
            return None
        sock = self.socket
        if sock is None:
            return CONNECTION_LOST
        pending = self.pending
        if pending:
            try:
                sent = sock.send(pending)
            except BlockingIOError:
                return None
            except OSError as e:
                return txerror.ConnectionLost(e.strerror)
            del pending[:sent]
            if pending:
                return None
        if self.disconnecting:
            return CONNECTION_DONE
        self.fds.removeWriter(self)
        return None

    def connectionLost(self, reason: Failure) -> None:
        """The end: close the socket, then tell the protocol (once)."""
        if self.connecting:
            # The reactor saw the attempt fail (an error or hang-up event).
            code = 0
            if self.socket is not None:
                code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            self._give_up(_connect_reason(code))
            return
        if self.socket is None:
            return
        self._close_socket(orderly=not reason.check(txerror.ConnectionAborted))
        self.protocol.connectionLost(reason)

    def _close_socket(self, orderly: bool = False) -> None:
        self.fds.removeReader(self)
        self.fds.removeWriter(self)
        sock = self.socket
        if sock is not None:
            if orderly:
                # Our FIN goes out before anything unread makes close() a reset.
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            sock.close()
            self.socket = None
        self._fileno = -1

    # -- what the bot calls (ITransport) ------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` now; what the kernel does not take goes out later, in order."""
        sock = self.socket
        if sock is None or self.connecting:
            return
        if self.pending:
            self.pending += data
            return
        try:
            sent = sock.send(data)
        except OSError:
            # EAGAIN, or a broken connection: either way the bytes wait, and a
            # broken connection is reported by the next doRead/doWrite.
            sent = 0
        if sent < len(data):
            self.pending += memoryview(data)[sent:]
            self.fds.addWriter(self)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once everything written is sent; stop reading now."""
        if self.socket is None or self.disconnecting:
            return
        if self.connecting:
            self.cancel()
            return
        self.disconnecting = True
        self.fds.removeReader(self)
        # doWrite sends what is pending, then ends the connection.
        self.fds.addWriter(self)

    def abortConnection(self) -> None:
        """Drop the connection now, whatever is still to send."""
        if self.socket is None:
            return
        if self.connecting:
            self.cancel()
            return
        self.fds.removeReader(self)
        self.fds.removeWriter(self)
        self.pending.clear()
        self.reactor.callLater(0, self.connectionLost, Failure(txerror.ConnectionAborted()))

    def getPeer(self) -> IPv4Address:
        return self.address

    def getHost(self) -> IPv4Address:
        if self.socket is None:
            return IPv4Address("TCP", "0.0.0.0", 0)
        host, port = self.socket.getsockname()
        return IPv4Address("TCP", host, port)


def _connect_reason(code: int) -> str:
    return _CONNECT_ERRORS.get(code, "connect_failed")
