"""
The node's own CPU per player and tick, in one process, over real sockets.

A real node (the sessions' factory of ``twistd mmo``, its extensions, a
listening TCP port on 127.0.0.1) on a private ``epoll`` reactor that this
script turns by hand, its clock a tenth of a second further each tick;
P players connected from this process, each a plain non-blocking socket
that logs in, then every tick sends one ``Move`` (the random walk of
``scaling.py``, in a zone sized for about 50 in view) and reads away
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
from pathlib import Path
from typing import Any

from twisted.internet.epollreactor import EPollReactor

from mmo.server.hub import SessionHub
from mmo.server.intake import PLAYING
from mmo.server.session import PlayerSessions
from mmo.testing.node import make_node
from mmo.wire import messages as m

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scaling import Walker, zone_side  # noqa: E402

TICK_HZ = 10
DEADLINE = 60.0


def drain(sock: socket.socket) -> None:
    """Read away whatever the node wrote, without decoding it."""
    try:
        while sock.recv(1 << 20):
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
    side = float(f"{max(zone_side(args.players), 300.0):.0f}")
    reactor = Reactor()
    node = make_node(clock=reactor, placement="connection", max_per_ip=0,
                     max_players=1_000_000, zone=[f"world:{side:.0f}x{side:.0f}"],
                     spawn="random", idle_timeout=3600, login_timeout=3600)
    factory = PlayerSessions(node, SessionHub() if args.hub else None)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1", backlog=4096)
    address = ("127.0.0.1", port.getHost().port)

    players: list[tuple[socket.socket, Walker]] = []
    hello = m.Hello(m.PROTOCOL_VERSION, "node_cost").encode()
    for i in range(args.players):
        sock = socket.create_connection(address)
        sock.setblocking(False)
        sock.send(hello + m.Login(f"p{i}", "pw").encode())
        players.append((sock, Walker(f"p{i}", 0.0, 0.0, 0.0)))
        if i % 100 == 99:
            reactor.iterate(0)
    turn_until(reactor, lambda: len(node.sessions) == args.players
               and all(s.state == PLAYING for s in node.sessions.values()), "the logins")
    for sock, w in players:
        e = node.sessions[w.name].entity
        w.x, w.y, w.heading = e.x, e.y, rng.uniform(0, 2 * math.pi)
        drain(sock)

    updates0 = node.updates_out
    started = time.process_time()
    for _ in range(args.ticks):
        reactor.now += 1.0 / TICK_HZ
        for sock, w in players:
            sock.send(w.walk(rng, side))
        before = node.events
        turn_until(reactor, lambda b=before: node.events - b >= args.players, "the moves")
        node.tick()
        for sock, _ in players:
            drain(sock)
    spent = time.process_time() - started
    updates = node.updates_out - updates0
    print(f"{args.players} players, {args.ticks} ticks, hub {'on' if args.hub else 'off'}: "
          f"{spent / args.ticks / args.players * 1e6:.2f} µs CPU a player and tick "
          f"(node and players), {updates / args.ticks / args.players:.1f} entity updates "
          f"a player and tick; {len(node.sessions)} sessions")
    for sock, _ in players:
        sock.close()
    port.stopListening()
    return 0


if __name__ == "__main__":
    sys.exit(main())
