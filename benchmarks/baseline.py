"""
The bare fan-out baseline: what one Python process can send at all.

A minimal Twisted server with no game logic.  It speaks just enough of the
client protocol for the load generator's bots to log in (Welcome,
EnterWorld, Pong) and reads their moves like the node does (the same frame
decoder), but simulates nothing: every tick it writes one payload of
``--payload`` bytes (a Tick frame and a Moves frame, so bots measure update
age as they do against a node) to every client, by the fastest write path
it has (:func:`mmo.server.fastwrite.write`).  With ``--hub`` it also reads
its clients as the node does by default (one epoll that the reactor reads
once, :mod:`mmo.server.hub`); without it, through Twisted's own dispatch
for each socket: bare Twisted.

    python benchmarks/baseline.py --port 4100 --payload 700 --tick-hz 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from twisted.internet.protocol import Factory, Protocol

from mmo.server.fastwrite import write as fast_write
from mmo.server.hub import SessionHub
from mmo.wire import layout
from mmo.wire import messages as m
from mmo.wire.fast import tick_frame
from mmo.wire.frames import FrameDecoder

_PING = m.Ping.TYPE
_LOGIN = m.Login.TYPE
_HELLO = m.Hello.TYPE


def moves_padding(size: int) -> bytes:
    """A Moves frame of about ``size`` bytes (12 bytes an entity)."""
    n = max(0, (size - layout.COUNTED_HEAD.size) // layout.MOVE_ITEM.size)
    return m.Moves(tuple((1_000_000 + i, 1.0, 1.0) for i in range(n))).encode()


class BareSession(Protocol):
    def __init__(self, server: BareServer) -> None:
        self.server = server
        self.decoder = FrameDecoder.for_server(64 * 1024)
        self.playing = False

    def connectionMade(self) -> None:
        if self.server.hub is not None:
            self.server.hub.adopt(self.transport)

    def connectionLost(self, reason: Any = None) -> None:
        self.server.clients.discard(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed_frames(data)
        except m.ProtocolError:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        for type_, body in frames:
            self.server.frames_in += 1
            if type_ == _PING:
                ping = self.decoder.decode(type_, body)
                assert isinstance(ping, m.Ping)
                self.transport.write(  # type: ignore[union-attr]
                    m.Pong(ping.token, ping.client_time, time.time()).encode())
            elif type_ == _HELLO:
                self.transport.write(m.Welcome(1, "baseline", 65536).encode())  # type: ignore[union-attr]
            elif type_ == _LOGIN:
                self.server.next_id += 1
                self.transport.write(m.EnterWorld(  # type: ignore[union-attr]
                    self.server.next_id, "world", 500.0, 500.0, 1000.0, 1000.0, 100.0,
                    int(self.server.tick_hz), "baseline").encode())
                self.playing = True
                self.server.clients.add(self)


class BareServer:
    def __init__(self, payload: int, tick_hz: float, hub: bool = False) -> None:
        self.hub = SessionHub() if hub else None
        self.payload = payload
        self.tick_hz = tick_hz
        self.padding = moves_padding(payload - 17)
        self.clients: set[BareSession] = set()
        self.next_id = 0
        self.frames_in = 0
        self.bytes_out = 0
        self.ticks = 0
        self.tick_times: list[float] = []

    def tick(self) -> None:
        started = time.perf_counter()
        self.ticks += 1
        data = tick_frame(self.ticks, time.time()) + self.padding
        for c in self.clients:
            fast_write(c.transport, data)
        self.bytes_out += len(data) * len(self.clients)
        self.tick_times.append(time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=4100)
    ap.add_argument("--payload", type=int, default=700, help="bytes per client per tick")
    ap.add_argument("--tick-hz", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds")
    ap.add_argument("--stats", default="", help="write JSON stats here at the end")
    ap.add_argument("--hub", action="store_true",
                    help="read the clients through one epoll hub, as the node does")
    args = ap.parse_args(argv)

    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    server = BareServer(args.payload, args.tick_hz, args.hub)
    factory = Factory.forProtocol(lambda: BareSession(server))
    port = reactor.listenTCP(args.port, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    print(f"baseline listening on 127.0.0.1:{port.getHost().port}", flush=True)
    LoopingCall(server.tick).start(1.0 / args.tick_hz, now=False)

    def write_stats() -> None:
        if args.stats:
            times = sorted(server.tick_times) or [0.0]
            with open(args.stats, "w") as f:
                json.dump({
                    "clients": len(server.clients), "ticks": server.ticks,
                    "tick_ms_p50": times[len(times) // 2] * 1000,
                    "tick_ms_p99": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
                    "frames_in": server.frames_in, "bytes_out": server.bytes_out,
                    "cpu_seconds": sum(os.times()[:2]),
                }, f)

    # Stopped by SIGTERM (the runner) or at --duration: the stats are written either way.
    reactor.addSystemEventTrigger("before", "shutdown", write_stats)  # type: ignore[attr-defined]
    reactor.callLater(args.duration, reactor.stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
