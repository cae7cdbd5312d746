"""
Writing straight to a TCP socket when nothing is queued before the data.

``transport.write`` appends to the transport's buffer and lets the reactor
send it on its next pass: a second trip through the event loop and a
buffer copy per write.  For the tick's one write per session, when the
transport has nothing queued, ``socket.send`` now is the same bytes on the
wire, sooner and cheaper (measured in ``benchmarks/``); whatever the kernel
does not take goes through ``transport.write`` as usual, so ordering and
flow control (``pauseProducing`` past ``bufferSize``) stay Twisted's.

Only plain TCP transports take the short path; TLS and anything else get
``transport.write``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.tcp import Connection


def write(transport: Any, data: bytes) -> None:
    """Send ``data`` on ``transport``, on the socket directly when it is idle."""
    if (
        not isinstance(transport, Connection)
        or transport._tempDataLen
        or len(transport.dataBuffer) > transport.offset
        or not transport.connected
        or transport.disconnecting
    ):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        # Let the transport meet the error on its own path and close cleanly.
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])
