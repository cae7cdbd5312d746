"""
The load generator's own CPU per bot and tick, in one process.

N bots of a real :class:`~mmo.loadgen.fleet.Fleet` play over real sockets
(``socketpair``), read through their :class:`~mmo.loadgen.link.TCPLink`
and :class:`~mmo.loadgen.hub.Hub`, and walk and ping from the fleet's own
loop at its 20 Hz.  The other end of each socket is this script: it
answers the handshake, then each tick writes every bot the update a node
sends a player that sees about 40 others walk (a ``Tick`` and a ``Moves``
of 40 entities, 515 bytes) and reads away what the bot sent.

What it prints is the CPU time the whole loop took per bot and tick: the
bots' and this end's (one ``send`` and one ``recv`` a bot and tick, the
same for every version of the bots).  For side by side comparisons
of the bots' Python, run it under ``valgrind --tool=callgrind`` for two
lengths and take the difference per bot and tick (see
``benchmarks/README.md``): instruction counts do not move with the load
of a shared machine.

    python -P benchmarks/loadgen_cost.py 2000 100     # 2,000 bots, 100 ticks
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from typing import Any

from twisted.internet.task import Clock

from mmo.loadgen.fleet import Fleet
from mmo.loadgen.hub import Hub, hub_for
from mmo.loadgen.link import TCPLink
from mmo.loadgen.tap import Options
from mmo.wire import messages as m

TICK_HZ = 10
DRIVE_HZ = 20
#: Entities in view: a Moves of this many items every tick.
IN_VIEW = 40


class Reactor(Clock):
    """A clock with the reactor's reader set (the hub registers there)."""

    def addReader(self, reader: Any) -> None:
        pass

    def removeReader(self, reader: Any) -> None:
        pass


def update(tick: int, now: float) -> bytes:
    """What a node sends a player each tick: a Tick, then the moves in view."""
    moves = tuple((i + 1, 100.0 + i, 200.0 - i) for i in range(IN_VIEW))
    return m.Tick(tick, now).encode() + m.Moves(moves).encode()


class Bench:
    def __init__(self, bots: int) -> None:
        options = Options()
        options.parseOptions(["--no-progress", "--clients", str(bots), "--spread", "spawn",
                              "--speed", "40", "--chat-rate", "0", "--rate", "10"])
        settings = dataclasses.replace(options.settings, drive_hz=float(DRIVE_HZ))
        self.reactor = Reactor()
        self.reactor.advance(1000.0)
        self.hub: Hub = hub_for(self.reactor)
        self.ends: list[socket.socket] = []
        self.fleet = Fleet(settings, self.reactor, dial=self.dial)
        self.buffer = self.fleet._read_buffer

    def dial(self, bot: Any, host: str, port: int) -> TCPLink:
        mine, theirs = socket.socketpair()
        for s in (mine, theirs):
            s.setblocking(False)
        link = TCPLink(self.reactor, self.hub, bot, self.buffer, lambda reason: None)
        link.socket = mine
        link._fileno = mine.fileno()
        self.hub.addReader(link)
        bot.makeConnection(link)
        self.ends.append(theirs)
        return link

    def drain(self) -> int:
        """Read away what the bots sent; the bytes read."""
        total = 0
        for end in self.ends:
            try:
                while chunk := end.recv(65536):
                    total += len(chunk)
            except BlockingIOError:
                pass
        return total

    def pump(self) -> None:
        """Let the bots read everything that is waiting for them."""
        while self.hub.poller.poll(0, 1):
            self.hub.doRead()

    def login(self) -> None:
        self.fleet._launch(self.reactor.seconds() + 1e6)
        self.drain()
        welcome = m.Welcome(m.PROTOCOL_VERSION, "bench", 65536, "bench").encode()
        for i, end in enumerate(self.ends):
            end.send(welcome + m.EnterWorld(i + 1, "world", 100.0, 100.0, 1000.0, 1000.0,
                                            100.0, TICK_HZ, "bench").encode())
        self.pump()
        assert len(self.fleet.playing) == len(self.ends), "every bot should be playing"

    def run(self, ticks: int) -> float:
        """CPU seconds of ``ticks`` ticks of the bots and of this end."""
        reactor = self.reactor
        started = time.process_time()
        for t in range(ticks):
            data = update(t, reactor.seconds())
            for end in self.ends:
                end.send(data)
            self.pump()
            for _ in range(DRIVE_HZ // TICK_HZ):
                reactor.advance(1.0 / DRIVE_HZ)
                self.fleet._drive()
            self.drain()
        return time.process_time() - started


def main(argv: list[str]) -> None:
    bots = int(argv[1]) if len(argv) > 1 else 1000
    ticks = int(argv[2]) if len(argv) > 2 else 100
    bench = Bench(bots)
    bench.login()
    bench.run(5)  # warm up: every bot has walked and pinged once
    whole = bench.run(ticks)
    print(f"{bots} bots, {ticks} ticks: {whole / (bots * ticks) * 1e6:.2f} us per bot and tick "
          f"(the loop and the bots; the bots' reads and writes included)")
    print(f"updates read: {sum(b.ticks for b in bench.fleet.bots)}, "
          f"moves sent: {sum(b.moves_sent for b in bench.fleet.bots)}")


if __name__ == "__main__":
    main(sys.argv)
