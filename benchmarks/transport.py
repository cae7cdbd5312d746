"""
How many cluster datagrams one Redis carries, and what each transport
costs a node: Redis pub/sub against loopback multicast, side by side in one
run.

Each "node" is a process of its own running one cluster transport
(:class:`~mmo.cluster.redis.RedisTransport` or
:class:`~mmo.cluster.multicast.MulticastTransport`) on the reactor, as a
node does: one sender publishes sealed datagrams (cell deltas of the given
size, signed with a cluster key) on one group, one or more receivers count
what arrives.  A run at the highest rate the sender can hand on measures
what is carried (datagrams received per second per receiver); a run at a
fixed rate measures the CPU each node spends on it and the delay of each
datagram (its clock stamp against the receiver's clock).  A last run puts C
clients (``redis-benchmark`` publishing, ``redis-cli`` subscribed) in place
of the nodes, to load Redis harder than Python nodes on one small machine
can.  The Redis server is a ``redis-server`` started here, on 127.0.0.1,
and stopped at the end; its CPU is read from ``/proc``, and
``redis_us_per_delivery`` is that CPU per datagram published and delivered.

    python benchmarks/transport.py                      # the full run, about a minute
    python benchmarks/transport.py --seconds 2 --sizes 200 --rates 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEY = b"b" * 32
GROUP = "239.255.0.1"
END = b"END"


# -- one node: a sender or a receiver -------------------------------------------------


def make_transport(kind: str, reactor: Any, target: str) -> Any:
    if kind == "redis":
        from mmo.cluster.redis import RedisTransport, channel_names
        from mmo.config import parse_redis_url

        return RedisTransport(reactor, parse_redis_url(target),
                              channel_names("bench", GROUP, []), "bench")
    from mmo.cluster.multicast import MulticastTransport

    return MulticastTransport(reactor, int(target), "127.0.0.1", ttl=0)


def bodies(size: int, count: int = 64) -> tuple[Any, list[bytes]]:
    """A sealer, and cell delta bodies that it seals into datagrams of about ``size`` bytes."""
    from mmo.cluster import codec

    sealer = codec.Sealer(KEY, "bench-node", time.time_ns() // 1000)
    moves = max(0, (size - 45 - len("bench-node") - 20) // 12)
    return sealer, [codec.cell_bodies("world", i, i + 1, [], [
        codec.move_item(j, 1000.0 + j, 1000.0 + i) for j in range(moves)], [],
        codec.MAX_DATAGRAM - sealer.overhead)[0] for i in range(count)]


def datagrams(size: int, count: int = 64) -> list[bytes]:
    """Sealed cell deltas of about ``size`` bytes, as a node sends them."""
    from mmo.cluster import codec

    sealer, parts = bodies(size, count)
    return [sealer.seal(codec.CELL_DELTA, body) for body in parts]


def sent_at(data: bytes) -> float:
    """The sender's clock stamp of a datagram, in seconds (its MAC is not checked here)."""
    from mmo.cluster import codec
    from mmo.cluster.auth import MAC_SIZE

    return codec.read_header(data[:-MAC_SIZE]).sent / 1e6


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def node(args: argparse.Namespace) -> None:
    """One process: send for ``seconds`` at ``rate`` (0: as fast as it can), or receive."""
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    result: dict[str, Any] = {"role": args.role, "received": 0, "bytes": 0, "sent": 0,
                              "refused": 0}
    marks: dict[str, float] = {}
    delays: list[float] = []

    def receive(data: bytes, source: Any) -> None:
        if data == END:
            if "end" not in marks:
                marks["end"] = time.monotonic()
                marks["cpu_end"] = time.process_time()
                reactor.callLater(0, reactor.stop)
            return
        if "first" not in marks:
            marks["first"] = time.monotonic()
            marks["cpu_first"] = time.process_time()
        marks["last"] = time.monotonic()
        result["received"] += 1
        result["bytes"] += len(data)
        if args.rate and result["received"] % 10 == 0 and len(delays) < 100_000:
            delays.append(time.time() - sent_at(data))  # one in ten: it costs a little

    transport = make_transport(args.transport, reactor, args.target)
    transport.start(receive)
    transport.join(GROUP)
    pool = datagrams(args.size)
    sealer, parts = bodies(args.size)

    def up() -> bool:
        return transport.trouble() is None

    def when_up(then: Any) -> None:
        if up():
            # Subscriptions are confirmed once up; give SUBSCRIBE replies a turn.
            reactor.callLater(0.2, then)
        else:
            reactor.callLater(0.01, when_up, then)

    def ready() -> None:
        print("ready", flush=True)

    def send_for() -> None:
        started = time.monotonic()
        cpu = time.process_time()
        i = 0

        def batch(n: int) -> None:
            nonlocal i
            for _ in range(n):
                if transport.send(GROUP, pool[i % len(pool)]):
                    result["sent"] += 1
                else:
                    result["refused"] += 1
                i += 1

        def finish() -> None:
            result["seconds"] = time.monotonic() - started
            result["cpu"] = time.process_time() - cpu
            # The end, said several times: a datagram may be lost.
            for k in range(5):
                reactor.callLater(0.02 * k, transport.send, GROUP, END)
            reactor.callLater(0.5, reactor.stop)

        if args.rate:
            per_tick = args.rate / 100

            def tick() -> None:
                # Sealed as they go, as a node does: the stamp gives the delay.
                nonlocal i
                due = int(per_tick * ((time.monotonic() - started) * 100 + 1)) - i
                for _ in range(max(0, due)):
                    data = sealer.seal(1, parts[i % len(parts)])
                    if transport.send(GROUP, data):
                        result["sent"] += 1
                    else:
                        result["refused"] += 1
                    i += 1

            loop = LoopingCall(tick)
            loop.start(0.01)
            reactor.callLater(args.seconds, lambda: (loop.stop(), finish()))
        else:
            deadline = started + args.seconds

            def flat_out() -> None:
                if time.monotonic() >= deadline:
                    finish()
                    return
                batch(200)
                reactor.callLater(0, flat_out)

            flat_out()

    when_up(ready if args.role == "recv" else send_for)
    if args.role == "recv":
        # Bounded, whatever happens: a receiver that missed every END stops
        # once nothing came for two seconds.
        def quiet() -> None:
            if "first" in marks and time.monotonic() - marks["last"] > 2:
                marks.setdefault("end", marks["last"])
                marks.setdefault("cpu_end", time.process_time())
                reactor.stop()

        LoopingCall(quiet).start(0.5, now=False)
    reactor.callLater(args.seconds + 60, reactor.stop)
    reactor.run()
    if "first" in marks and "end" in marks:
        result["seconds"] = marks["end"] - marks["first"]
        result["cpu"] = marks["cpu_end"] - marks["cpu_first"]
    if delays:
        result["delay_ms_p50"] = round(1000 * quantile(delays, 0.5), 2)
        result["delay_ms_p99"] = round(1000 * quantile(delays, 0.99), 2)
    print(json.dumps(result), flush=True)


# -- the driver ----------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)  # polling the new server, with a deadline
    proc.kill()
    raise SystemExit("redis-server did not start")


def run_one(kind: str, target: str, size: int, rate: int, seconds: float, receivers: int,
            redis_pid: int | None) -> dict[str, Any]:
    me = [sys.executable, __file__, "--node", "--transport", kind, "--target", target,
          "--size", str(size), "--rate", str(rate), "--seconds", str(seconds)]
    recvs = [subprocess.Popen([*me, "--role", "recv"], stdout=subprocess.PIPE, text=True)
             for _ in range(receivers)]
    try:
        for r in recvs:
            assert r.stdout is not None
            line = r.stdout.readline()
            if line.strip() != "ready":
                raise SystemExit(f"a receiver did not start: {line!r}")
        redis_cpu = cpu_seconds(redis_pid) if redis_pid else 0.0
        sender = subprocess.run([*me, "--role", "send"], capture_output=True, text=True,
                                timeout=seconds + 60)
        redis_cpu = (cpu_seconds(redis_pid) - redis_cpu) if redis_pid else 0.0
        got = [json.loads(r.communicate(timeout=seconds + 60)[0].splitlines()[-1]) for r in recvs]
    finally:
        for r in recvs:
            if r.poll() is None:
                r.send_signal(signal.SIGTERM)
                r.wait(10)
    sent = json.loads(sender.stdout.splitlines()[-1])
    rx_rate = [g["received"] / g["seconds"] if g.get("seconds") else 0.0 for g in got]
    return {
        "transport": kind, "size": size, "rate": rate or "max", "receivers": receivers,
        "sent_per_sec": round(sent["sent"] / sent["seconds"]),
        "refused": sent["refused"],
        "received_per_sec": round(min(rx_rate)),
        "lost_pct": round(100 * (1 - sum(g["received"] for g in got)
                                  / max(1, receivers * sent["sent"])), 2),
        "sender_cpu_pct": round(100 * sent["cpu"] / sent["seconds"], 1),
        "receiver_cpu_pct": round(max(100 * g["cpu"] / g["seconds"] if g.get("seconds") else 0
                                      for g in got), 1),
        "redis_cpu_pct": round(100 * redis_cpu / sent["seconds"], 1) if redis_pid else None,
        "delay_ms_p50": got[0].get("delay_ms_p50"),
        "delay_ms_p99": got[0].get("delay_ms_p99"),
    }


def run_ceiling(port: int, size: int, receivers: int, redis_pid: int,
                messages: int) -> dict[str, Any]:
    """
    What Redis itself carries: C publishers (``redis-benchmark``, 4
    connections, 16 commands pipelined) flat out on one channel, C
    subscribers (``redis-cli``) that keep up, in place of nodes.
    """
    bench, cli = shutil.which("redis-benchmark"), shutil.which("redis-cli")
    if bench is None or cli is None:
        raise SystemExit("redis-benchmark and redis-cli are needed (Debian: redis-tools)")
    subs = [subprocess.Popen([cli, "-p", str(port), "subscribe", "bench:control"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(receivers)]

    def subscribed() -> int:
        out = subprocess.run([cli, "-p", str(port), "client", "list"], capture_output=True,
                             text=True, timeout=10).stdout
        return out.count(" sub=1 ")

    try:
        deadline = time.monotonic() + 10
        while subscribed() < receivers:
            if time.monotonic() > deadline:
                raise SystemExit("the subscribers did not subscribe")
            time.sleep(0.05)  # polling, with a deadline
        cpu = cpu_seconds(redis_pid)
        started = time.monotonic()
        subprocess.run([bench, "-p", str(port), "-c", "4", "-P", "16", "-n", str(messages),
                        "-q", "PUBLISH", "bench:control", "x" * size],
                       capture_output=True, timeout=300, check=True)
        seconds = time.monotonic() - started
        cpu = cpu_seconds(redis_pid) - cpu
        kept = subscribed()  # a subscriber that fell behind is cut by Redis
    finally:
        for sub in subs:
            sub.terminate()
            sub.wait(10)
    rate = messages / seconds
    return {
        "transport": "redis, C clients", "size": size, "rate": "max",
        "receivers": receivers, "sent_per_sec": round(rate), "refused": 0,
        "received_per_sec": round(rate) if kept == receivers else 0,
        "lost_pct": 0.0 if kept == receivers else 100.0,
        "sender_cpu_pct": None, "receiver_cpu_pct": None,
        "redis_cpu_pct": round(100 * cpu / seconds, 1),
        "delay_ms_p50": None, "delay_ms_p99": None,
    }


def redis_cost(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with Redis's CPU per datagram published and delivered, in microseconds."""
    carried = row["received_per_sec"] * row["receivers"]
    cpu = row["redis_cpu_pct"]
    row["redis_us_per_delivery"] = (round(cpu * 10_000 / carried, 2)
                                    if cpu is not None and carried else None)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |"
            for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--node", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--role", default="send", help=argparse.SUPPRESS)
    p.add_argument("--transport", default="redis", help=argparse.SUPPRESS)
    p.add_argument("--target", default="", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=200, help=argparse.SUPPRESS)
    p.add_argument("--rate", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--sizes", default="200,1200", help="datagram sizes in bytes")
    p.add_argument("--rates", default="5000", help="fixed rates for the CPU comparison")
    p.add_argument("--transports", default="redis,multicast")
    p.add_argument("--receivers", default="1,2", help="receivers of the flat-out runs")
    p.add_argument("--ceiling", type=int, default=1_000_000,
                   help="datagrams redis-benchmark publishes to find what Redis carries "
                   "(0: skip)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "transport.json"))
    args = p.parse_args(argv)
    if args.node:
        node(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="mmo-bench-redis-"))
    kinds = args.transports.split(",")
    redis, port = start_redis(workdir) if "redis" in kinds else (None, 0)
    rows = []
    try:
        plan = []
        for size in map(int, args.sizes.split(",")):
            for kind in kinds:
                for receivers in map(int, args.receivers.split(",")):
                    plan.append((kind, size, 0, receivers))
        for rate in map(int, args.rates.split(",")):
            for kind in kinds:
                plan.append((kind, int(args.sizes.split(",")[0]), rate, 1))
        for kind, size, rate, receivers in plan:
            target = (f"redis://127.0.0.1:{port}/0" if kind == "redis"
                      else str(free_port(socket.SOCK_DGRAM)))
            row = redis_cost(run_one(kind, target, size, rate, args.seconds, receivers,
                                     redis.pid if redis is not None and kind == "redis"
                                     else None))
            print(json.dumps(row), flush=True)
            rows.append(row)
        if redis is not None and args.ceiling:
            # One subscriber: on a small machine, more C subscribers fall
            # behind a C publisher and Redis cuts them (output buffer limit).
            row = redis_cost(run_ceiling(port, int(args.sizes.split(",")[0]), 1, redis.pid,
                                         args.ceiling))
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    machine = (f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
               f"Python {platform.python_version()}, {platform.system()}")
    print(f"\nMachine: {machine}\n")
    print(table(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    random.seed(1)
    main()
