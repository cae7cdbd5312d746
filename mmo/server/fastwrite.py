"""
Writing straight to a TCP socket when nothing is queued before the data.

``transport.write`` appends to the transport's buffer and lets the reactor
send it on its next pass: a second trip through the event loop and a
buffer copy per write.  For the tick's one write per session, when the
transport has nothing queued, ``socket.send`` now is the same bytes on the
wire, sooner and cheaper (measured in ``benchmarks/``); whatever the kernel
does not take goes through ``transport.write`` as usual, so ordering and
flow control (``pauseProducing`` past ``bufferSize``) stay Twisted's.

Only plain TCP transports (``twisted.internet.tcp.Server`` and ``Client``,
not their subclasses such as UNIX sockets) without TLS take the short path;
TLS, UNIX sockets, in-memory transports and anything else get
``transport.write``.

To know that nothing is queued, this reads fields of Twisted's
``FileDescriptor`` that are not public: ``_tempDataLen`` and
``_tempDataBuffer`` (what ``write`` appended since the last send),
``dataBuffer`` and ``offset`` (what is being sent and how far it got),
``connected``, ``disconnecting``, ``_writeDisconnected``, ``TLS`` and
``socket``.  They have had these names and meanings in Twisted 21.7, 22.10,
24.3 and 26.10 (the versions this was checked against).  At import,
:func:`probe` checks that this Twisted still keeps its buffer there; if it
does not, :data:`DIRECT` is false and every write is ``transport.write``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

#: The transports that may take the short path: exactly these types.
TCP_TYPES: frozenset[type] = frozenset({tcp.Server, tcp.Client})


class _ProbeSocket:
    """Stands in for a socket while :func:`probe` builds a connection."""

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return -1


class _ProbeReactor:
    """Stands in for a reactor while :func:`probe` writes to a connection."""

    def addWriter(self, writer: object) -> None:
        pass

    def removeWriter(self, writer: object) -> None:
        pass


def probe(cls: type = tcp.Connection) -> bool:
    """
    Whether connections of ``cls`` keep their write buffer in the fields
    :func:`write` reads: an idle connection has them empty, and a
    ``transport.write`` lands in ``_tempDataLen`` and nowhere else.
    """
    try:
        skt = _ProbeSocket()
        conn: Any = cls(skt, None, reactor=_ProbeReactor())
        idle = (
            conn.socket is skt and conn.TLS is False and conn._tempDataLen == 0
            and conn._tempDataBuffer == [] and conn.dataBuffer == b"" and conn.offset == 0
            and not conn.disconnecting and not conn._writeDisconnected
        )
        conn.connected = 1
        conn.write(b"probe")
        return bool(
            idle and conn._tempDataLen == 5 and len(conn.dataBuffer) == conn.offset == 0
        )
    except Exception:
        return False


#: Whether this Twisted allows the short path (checked once, at import).
DIRECT = probe()


def write(transport: Any, data: bytes) -> None:
    """Send ``data`` on ``transport``, on the socket directly when it is idle."""
    if (
        type(transport) not in TCP_TYPES
        or not DIRECT
        or transport.TLS
        or transport._tempDataLen
        or len(transport.dataBuffer) > transport.offset
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnected
    ):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        # The kernel's buffer is full: queue it all, as transport.write does.
        sent = 0
    except OSError:
        # Reset, broken pipe...: let the transport meet the error on its own
        # path (its next send fails and it closes cleanly, connectionLost and
        # all); never raise into the tick.
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])
