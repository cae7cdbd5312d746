"""
The systemd notification protocol (``sd_notify``) with the standard library.

systemd tells a ``Type=notify`` service where to report in the
``NOTIFY_SOCKET`` environment variable: a unix datagram socket, a path or an
abstract-namespace name written with a leading ``@``.  The node sends
``READY=1`` once it listens, ``WATCHDOG=1`` from its tick loop (so a stuck
reactor stops the pings and systemd restarts it) and ``STOPPING=1`` when it
begins to shut down.  Without ``NOTIFY_SOCKET`` every call does nothing, so
the same code runs under systemd, in Docker and in a terminal.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


def socket_address(value: str) -> str | bytes | None:
    """
    The address to ``sendto`` for a ``NOTIFY_SOCKET`` value, or ``None``.

    A leading ``@`` names a socket in the abstract namespace, which the
    kernel spells with a leading NUL byte.
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # vsock: and other exotic forms are not something this node runs under.
    return None


def watchdog_usec(environ: Mapping[str, str], pid: int) -> int:
    """
    ``WATCHDOG_USEC`` when it is meant for process ``pid``, else 0.

    ``WATCHDOG_PID``, when present, names the process the watchdog is for; a
    child that inherited the environment must not ping on its parent's
    behalf.
    """
    raw = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return 0
    try:
        usec = int(raw)
    except ValueError:
        return 0
    return usec if usec > 0 else 0


class SystemdNotifier:
    """
    Sends ``sd_notify`` states, and ``WATCHDOG=1`` at half the watchdog period.

    Sending never raises: a service manager that went away must not take
    the game down with it; the first failure is logged, later ones are not.
    """

    log = Logger()

    def __init__(
        self,
        address: str | bytes | None,
        clock: IReactorTime,
        watchdog_usec: int = 0,
    ) -> None:
        self.address = address
        self.clock = clock
        #: Seconds between two ``WATCHDOG=1`` (half of ``WATCHDOG_USEC``);
        #: 0 when systemd asked for no watchdog.
        self.watchdog_interval = watchdog_usec / 2_000_000 if address else 0.0
        self.last_watchdog: float | None = None
        self.sent = 0
        self._failed = False
        self._socket: socket.socket | None = None

    @classmethod
    def from_environ(
        cls,
        clock: IReactorTime,
        environ: Mapping[str, str] | None = None,
        pid: int | None = None,
    ) -> SystemdNotifier:
        """A notifier configured from ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``."""
        env = os.environ if environ is None else environ
        pid = os.getpid() if pid is None else pid
        address = socket_address(env.get("NOTIFY_SOCKET", ""))
        return cls(address, clock, watchdog_usec(env, pid))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *states: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True if it was sent."""
        if self.address is None or not states:
            return False
        payload = "\n".join(states).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(payload, self.address)
        except OSError as e:
            if not self._failed:
                self._failed = True
                self.log.warn("cannot notify systemd at {address!r}: {error}",
                              address=self.address, error=e)
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """``READY=1``: the node listens and ticks."""
        states = ["READY=1", f"MAINPID={os.getpid()}"]
        if status:
            states.append(f"STATUS={status}")
        sent = self.notify(*states)
        if sent and self.watchdog_interval:
            self.log.info("systemd watchdog: pinging every {interval:.3f}s",
                          interval=self.watchdog_interval)
        return sent

    def stopping(self, status: str = "") -> bool:
        """``STOPPING=1``: the node has begun to shut down."""
        states = ["STOPPING=1"]
        if status:
            states.append(f"STATUS={status}")
        return self.notify(*states)

    def status(self, text: str) -> bool:
        """A free-form status line, shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def ticked(self) -> bool:
        """
        Called after every good tick: ``WATCHDOG=1`` once half the watchdog
        period has gone by since the last one.
        """
        if not self.watchdog_interval:
            return False
        now = self.clock.seconds()
        last = self.last_watchdog
        if last is not None and now - last < self.watchdog_interval:
            return False
        self.last_watchdog = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
