"""
The node's own CPU per player and tick, in one process, over real sockets.

A real node (the sessions' factory of ``twistd mmo``, its extensions, a
listening TCP port on 127.0.0.1) on a private ``epoll`` reactor that this
script turns by hand, its clock a tenth of a second further each tick; P players connected from this process, each a plain
non-blocking socket that logs in, then every tick sends one ``Move`` (a
random walk at 40 u/s in a zone sized for about 50 in view) and reads away
what the node wrote, without decoding it.  Each tick: every player's move
is sent, the reactor is turned until the node has read them all, the node
ticks (its updates go out on the sockets), every player reads.

It prints the CPU time per player and tick of the whole loop, node and
players (the players' part is one ``send``, one ``recv`` and a few lines of
Python each, the same whatever the node does).  For side by side
comparisons, run it under ``valgrind --tool=callgrind`` for two lengths and
take the difference per player and tick (``benchmarks/README.md``):
instruction counts do not move with the load of a shared machine, and they
leave the kernel's part out.

    python -P benchmarks/node_cost.py 2000 100            # 2,000 players, 100 ticks
    python -P benchmarks/node_cost.py 500 25 --no-hub     # Twisted's own dispatch
"""

from __future__ import annotations

import argparse
import math
import random
import socket
import sys
import time
from typing import Any

from twisted.internet.epollreactor import EPollReactor

from mmo.server.hub import SessionHubs
from mmo.server.intake import PLAYING
from mmo.server.session import PlayerSessions
from mmo.testing.node import make_node
from mmo.wire import messages as m
from mmo.wire.fast import move_frame

TICK_HZ = 10
STEP = 4.0  # 40 u/s at 10 Hz
CELL = 100.0
SEEN = 50
DEADLINE = 60.0


class Player:
    """One player's end: its socket and its walk."""

    __slots__ = ("sock", "seq", "x", "y", "heading")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seq = 0
        self.x = self.y = self.heading = 0.0

    def walk(self, rng: random.Random, side: float) -> bytes:
        self.heading += rng.uniform(-0.3, 0.3)
        x = self.x + STEP * math.cos(self.heading)
        y = self.y + STEP * math.sin(self.heading)
        if not (1.0 < x < side - 1.0 and 1.0 < y < side - 1.0):
            self.heading += math.pi
            x, y = self.x, self.y
        self.x, self.y = x, y
        self.seq += 1
        return move_frame(self.seq, x, y)

    def drain(self) -> None:
        try:
            while self.sock.recv(1 << 20):
                pass
        except BlockingIOError:
            pass


class Reactor(EPollReactor):
    """An epoll reactor whose clock moves a tick at a time, as the script says."""

    now = 1000.0

    def seconds(self) -> float:
        return self.now


def turn_until(reactor: Any, done: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > end:
            raise SystemExit(f"node_cost: gave up waiting for {what}")
        reactor.iterate(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("players", type=int, nargs="?", default=500)
    ap.add_argument("ticks", type=int, nargs="?", default=25)
    ap.add_argument("--no-hub", dest="hub", action="store_false",
                    help="players' sockets read through Twisted's own dispatch")
    args = ap.parse_args(argv)

    rng = random.Random(1)
    side = max(math.sqrt(args.players * 9 * CELL * CELL / SEEN), 300.0)
    reactor = Reactor()
    node = make_node(clock=reactor, placement="connection", max_per_ip=0,
                     max_players=1_000_000, zone=[f"world:{side:.0f}x{side:.0f}"],
                     spawn="random", idle_timeout=3600, login_timeout=3600)
    factory = PlayerSessions(node, SessionHubs() if args.hub else None)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1", backlog=4096)
    address = ("127.0.0.1", port.getHost().port)

    players = []
    hello = m.Hello(m.PROTOCOL_VERSION, "node_cost").encode()
    for i in range(args.players):
        sock = socket.create_connection(address)
        sock.setblocking(False)
        sock.send(hello + m.Login(f"p{i}", "pw").encode())
        players.append(Player(sock))
        if i % 100 == 99:
            reactor.iterate(0)
    turn_until(reactor, lambda: len(node.sessions) == args.players
               and all(s.state == PLAYING for s in node.sessions.values()), "the logins")
    for p, name in zip(players, (f"p{i}" for i in range(args.players)), strict=True):
        e = node.sessions[name].entity
        p.x, p.y, p.heading = e.x, e.y, rng.uniform(0, 2 * math.pi)
        p.drain()
    sessions = list(node.sessions.values())

    updates0 = node.updates_out
    started = time.process_time()
    for _ in range(args.ticks):
        reactor.now += 1.0 / TICK_HZ
        for p in players:
            p.sock.send(p.walk(rng, side))
        before = node.events
        turn_until(reactor, lambda b=before: node.events - b >= args.players, "the moves")
        node.tick()
        for p in players:
            p.drain()
    spent = time.process_time() - started
    updates = node.updates_out - updates0
    print(f"{args.players} players, {args.ticks} ticks, hub {'on' if args.hub else 'off'}: "
          f"{spent / args.ticks / args.players * 1e6:.2f} µs CPU a player and tick "
          f"(node and players), {updates / args.ticks / args.players:.1f} entity updates "
          f"a player and tick; {len(sessions)} sessions")
    for p in players:
        p.sock.close()
    port.stopListening()
    return 0


if __name__ == "__main__":
    sys.exit(main())
