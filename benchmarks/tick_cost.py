"""
The node's own CPU per simulated second, in one process, without sockets.

N players in a zone sized so that each sees about 50 others send 10 moves
a second through ``PlayerSession.dataReceived`` (the same decoding and
checks as over TCP); the node ticks at 10 Hz and writes to transports that
only count bytes.  What it prints is the Python cost of the game, apart
from the kernel's: use it to compare changes to the per-move and per-tick
paths side by side (the capacity benchmark measures the whole thing).

    python benchmarks/tick_cost.py 2000 5000
    python benchmarks/tick_cost.py 1000 --websocket   # the same players over WebSocket
    python benchmarks/tick_cost.py 2000 --walk        # walking as capacity.py's bots do

``--walk``: each player heads one way at 40 units a second (4 a tick),
taking a new heading at the zone's edge, as the capacity benchmark's bots
do, so that players cross cells (enters and leaves) at the same rate; the
spawn is seeded too, so that two versions see the very same game.
"""

from __future__ import annotations

import math
import random
import sys
import time
from typing import Any

from twisted.internet.address import IPv4Address

from mmo.server.websocket import WebSocketPlayers
from mmo.testing import FakePlayer, FakeTransport, make_node
from mmo.wire import messages as m
from mmo.wire.websocket import message_header

#: A browser's opening handshake.
UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4080\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


class CountingTransport(FakeTransport):
    """Once ``counting``, takes every write and keeps only the byte count."""

    bufferSize = 1 << 20

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.counting = False
        #: The last write (a handoff's Redirect is the last thing a session
        #: sends: ``scaling.py`` follows it).
        self.last = b""

    def write(self, data: bytes) -> None:
        if self.counting:
            self.bytes += len(data)
            self.last = data
        else:
            super().write(data)

    def unregisterProducer(self) -> None:
        if self.producer is not None:
            super().unregisterProducer()


def client_message(frame: bytes) -> bytes:
    """``frame`` as a browser sends it: one masked binary message (a zero mask)."""
    header = message_header(len(frame))
    return header[:1] + bytes([header[1] | 0x80]) + header[2:] + b"\0\0\0\0" + frame


class BrowserPlayer:
    """A player over WebSocket: the node's WebSocket door on a counting transport."""

    def __init__(self, factory: WebSocketPlayers, name: str) -> None:
        self.transport = CountingTransport()
        self.transport.peerAddr = IPv4Address("TCP", "127.0.0.1", 50000)  # type: ignore[assignment]
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(UPGRADE)
        self.protocol.dataReceived(client_message(m.Hello().encode())
                                   + client_message(m.Login(name, "pw").encode()))
        self.session = self.protocol.session
        self.entity = self.session.entity


def run(n: int, seconds: int = 5, seed: int = 1, websocket: bool = False,
        walk: bool = False) -> dict[str, float]:
    side = (n * 9 * 100 * 100 / 50) ** 0.5
    node = make_node(zone=[f"w:{side:.0f}x{side:.0f}"], max_per_ip=0, max_players=1_000_000,
                     spawn="random", extension=[], websocket=["tcp:4080"])
    rng = random.Random(seed)
    if walk:
        node.rng = random.Random(seed + 10)
    players: list[Any]
    if websocket:
        factory = WebSocketPlayers(node, node.settings.websocket, node.clock)
        players = [BrowserPlayer(factory, f"b{i}") for i in range(n)]
    else:
        players = [FakePlayer(node, f"b{i}", transport=CountingTransport()) for i in range(n)]
    # What each player's connection is fed: its session, or its WebSocket.
    inputs = [p.protocol if websocket else p.session for p in players]
    for p in players:
        p.transport.counting = True  # type: ignore[attr-defined]
    node.tick()
    pos = [(p.entity.x, p.entity.y) for p in players]
    heading = [rng.uniform(0, 2 * math.pi) for _ in players] if walk else []
    tick_times: list[float] = []
    input_time = 0.0
    for seq in range(1, seconds * 10 + 1):
        node.clock.advance(0.1)
        frames = []
        for i in range(n):
            x, y = pos[i]
            if walk:
                h = heading[i]
                nx, ny = x + 4 * math.cos(h), y + 4 * math.sin(h)
                if not (0 <= nx <= side and 0 <= ny <= side):
                    heading[i] = h = rng.uniform(0, 2 * math.pi)
                    nx = min(max(x + 4 * math.cos(h), 0.0), side)
                    ny = min(max(y + 4 * math.sin(h), 0.0), side)
                x, y = nx, ny
            else:
                x = min(max(x + rng.uniform(-4, 4), 0.0), side)
                y = min(max(y + rng.uniform(-4, 4), 0.0), side)
            pos[i] = (x, y)
            frame = m.Move(seq, x, y).encode()
            frames.append(client_message(frame) if websocket else frame)
        t0 = time.process_time()
        for connection, frame in zip(inputs, frames, strict=True):
            connection.dataReceived(frame)
        t1 = time.process_time()
        node.tick()
        input_time += t1 - t0
        tick_times.append(time.process_time() - t1)
    cpu = input_time + sum(tick_times)
    tick_times.sort()
    return {
        "players": n,
        "cpu_per_second": cpu / seconds,
        "tick_ms_p50": tick_times[len(tick_times) // 2] * 1000,
        "input_share": 1 - sum(tick_times) / cpu,
        "bytes_per_player_tick": sum(p.transport.bytes for p in players)
        / n / (seconds * 10 + 1),
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    websocket = "--websocket" in sys.argv[1:]
    walk = "--walk" in sys.argv[1:]
    for arg in args or ["2000"]:
        r = run(int(arg), websocket=websocket, walk=walk)
        print(f"{r['players']:6d} players{' (WebSocket)' if websocket else ''}: "
              f"{r['cpu_per_second'] * 100:5.1f} % of a core "
              f"(tick p50 {r['tick_ms_p50']:.1f} ms, input {r['input_share'] * 100:.0f} %), "
              f"{r['bytes_per_player_tick']:.0f} B per player per tick")


if __name__ == "__main__":
    main()
