"""
The node's own CPU per simulated second, in one process, without sockets.

N players in a zone sized so that each sees about 50 others send 10 moves
a second through ``PlayerSession.dataReceived`` (the same decoding and
checks as over TCP); the node ticks at 10 Hz and writes to transports that
only count bytes.  What it prints is the Python cost of the game, apart
from the kernel's: use it to compare changes to the per-move and per-tick
paths side by side (the capacity benchmark measures the whole thing).

    python benchmarks/tick_cost.py 2000 5000
"""

from __future__ import annotations

import random
import sys
import time

from mmo.testing import FakePlayer, FakeTransport, make_node
from mmo.wire import messages as m


class CountingTransport(FakeTransport):
    """Once ``counting``, takes every write and keeps only the byte count."""

    bufferSize = 1 << 20

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.counting = False

    def write(self, data: bytes) -> None:
        if self.counting:
            self.bytes += len(data)
        else:
            super().write(data)


def run(n: int, seconds: int = 5, seed: int = 1) -> dict[str, float]:
    side = (n * 9 * 100 * 100 / 50) ** 0.5
    node = make_node(zone=[f"w:{side:.0f}x{side:.0f}"], max_per_ip=0, max_players=1_000_000,
                     spawn="random", extension=[])
    rng = random.Random(seed)
    players = [FakePlayer(node, f"b{i}", transport=CountingTransport()) for i in range(n)]
    for p in players:
        p.transport.counting = True  # type: ignore[attr-defined]
    node.tick()
    pos = [(p.entity.x, p.entity.y) for p in players]
    tick_times: list[float] = []
    input_time = 0.0
    for seq in range(1, seconds * 10 + 1):
        node.clock.advance(0.1)
        frames = []
        for i in range(n):
            x, y = pos[i]
            x = min(max(x + rng.uniform(-4, 4), 0.0), side)
            y = min(max(y + rng.uniform(-4, 4), 0.0), side)
            pos[i] = (x, y)
            frames.append(m.Move(seq, x, y).encode())
        t0 = time.process_time()
        for p, frame in zip(players, frames, strict=True):
            p.session.dataReceived(frame)
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
        "bytes_per_player_tick": sum(p.session.transport.bytes for p in players)  # type: ignore[attr-defined]
        / n / (seconds * 10 + 1),
    }


def main() -> None:
    for arg in sys.argv[1:] or ["2000"]:
        r = run(int(arg))
        print(f"{r['players']:6d} players: {r['cpu_per_second'] * 100:5.1f} % of a core "
              f"(tick p50 {r['tick_ms_p50']:.1f} ms, input {r['input_share'] * 100:.0f} %), "
              f"{r['bytes_per_player_tick']:.0f} B per player per tick")


if __name__ == "__main__":
    main()
