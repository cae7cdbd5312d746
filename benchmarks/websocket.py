"""
What a browser player costs: node CPU per delivered update over WebSocket
against TCP, side by side in one run.

Starts one node (``twistd -n mmo``, pinned to core 0) listening for players
on TCP and on WebSocket (``--websocket``), then runs the load generator
(pinned to core 1) against it in alternating phases, ``--transport tcp``
then ``--transport ws``, the same bots, rate and world each time.  Over the
steady part of each phase (every bot in) it measures the node's CPU (from
``/proc``) and the entity updates it sent (``mmo_entity_updates_sent_total``
between two scrapes of ``/metrics``): CPU microseconds per delivered update,
the node's CPU share, and the update age the bots saw.

    python benchmarks/websocket.py                       # 1,000 bots, 2 rounds (~4 min)
    python benchmarks/websocket.py --bots 300 --seconds 5 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from capacity import (  # noqa: E402
    BIN,
    CELL,
    TICK_HZ,
    free_port,
    machine,
    pin,
    proc_cpu,
    scrape,
    wait_for,
)

UPDATES = "mmo_entity_updates_sent_total"
SENT = "mmo_player_sent_bytes_total"


def start_node(workdir: Path, bots: int) -> dict[str, Any]:
    """One node with a TCP and a WebSocket listener, the world sized for ~50 in view."""
    side = max(math.sqrt(bots * 9 * CELL * CELL / 50), 300)
    tcp, ws = free_port(), free_port()
    log = workdir / "node.log"
    argv = pin(0) + [
        str(BIN / "twistd"), "-n", "--pidfile=", "mmo",
        "--listen", f"tcp:{tcp}:interface=127.0.0.1",
        "--websocket", f"tcp:{ws}:interface=127.0.0.1",
        "--http", "tcp:0:interface=127.0.0.1", "--no-cluster",
        "--data-dir", str(workdir / "data"), "--tick-rate", str(TICK_HZ),
        "--cell-size", str(CELL), "--zone", f"world:{side:.0f}x{side:.0f}",
        "--spawn", "random", "--max-per-ip", "0", "--max-players", "100000",
        "--password-iterations", "1000", "--idle-timeout", "600", "--login-timeout", "120",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    http = wait_for(log, r"serving metrics and health on \S+ \(IPv4Address\("
                         r"type='TCP', host='[\d.]+', port=(\d+)\)\)", proc)
    wait_for(log, r"listening for WebSocket players", proc)
    return {"proc": proc, "tcp": tcp, "ws": ws, "http": int(http.group(1))}


def phase(node: dict[str, Any], workdir: Path, transport: str, n: int, bots: int,
          seconds: float, workers: int) -> dict[str, Any]:
    """One load-generator run over ``transport``; the node's numbers over its steady part."""
    ramp = max(200.0, bots / 5.0)
    ramp_s = bots / ramp + 3.0
    report = workdir / f"{transport}{n}.json"
    argv = pin(1) + [
        str(BIN / "mmo-loadgen"), "--transport", transport, "--host", "127.0.0.1",
        "--port", str(node[transport]), "--clients", str(bots), "--rate", "10",
        "--ramp", str(ramp), "--duration", str(ramp_s + seconds), "--spread", "spawn",
        "--speed", "40", "--chat-rate", "0", "--workers", str(workers),
        "--report", str(report), "--no-progress", "--max-failures", str(bots),
        "--login-timeout", "120", "--name-prefix", f"{transport}{n}-",
    ]
    with open(workdir / f"loadgen-{transport}{n}.log", "wb") as out:
        lg = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    pid = node["proc"].pid
    # Steady state: from the end of the ramp to (nearly) the end of the run.
    time.sleep(ramp_s)
    t0 = time.monotonic()
    cpu0, before = proc_cpu(pid), scrape(node["http"])
    time.sleep(seconds * 0.9)
    elapsed = time.monotonic() - t0
    cpu1, after = proc_cpu(pid), scrape(node["http"])
    _, status, usage = os.wait4(lg.pid, 0)
    lg.returncode = os.waitstatus_to_exitcode(status)
    rep = json.loads(report.read_text())
    updates = after.get(UPDATES, 0.0) - before.get(UPDATES, 0.0)
    cpu = cpu1 - cpu0
    lat = rep["latency_ms"]
    return {
        "transport": transport, "round": n, "bots": bots, "logged_in": rep["bots"]["logged_in"],
        "failures": rep["failures"]["total"],
        "updates_per_sec": round(updates / elapsed),
        "node_cpu_pct": round(cpu / elapsed * 100, 1),
        "cpu_us_per_update": round(cpu / updates * 1e6, 3) if updates else None,
        "bytes_per_update": round((after.get(SENT, 0.0) - before.get(SENT, 0.0)) / updates, 1)
        if updates else None,
        "update_age_ms_p50": lat["update_age"]["p50"],
        "update_age_ms_p99": lat["update_age"]["p99"],
        "loadgen_cpu_pct": round((usage.ru_utime + usage.ru_stime) / rep["elapsed_s"] * 100, 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    cols = ["transport", "round", "bots", "logged_in", "updates_per_sec", "node_cpu_pct",
            "cpu_us_per_update", "bytes_per_update", "update_age_ms_p50", "update_age_ms_p99",
            "loadgen_cpu_pct"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bots", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0, help="steady seconds per phase")
    ap.add_argument("--rounds", type=int, default=2, help="tcp-then-ws rounds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "websocket.json"))
    args = ap.parse_args(argv)
    results: dict[str, Any] = {
        "machine": machine(), "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "phases": []}
    with tempfile.TemporaryDirectory(prefix="mmo-bench-ws-") as tmp:
        workdir = Path(tmp)
        node = start_node(workdir, args.bots)
        try:
            for n in range(args.rounds):
                for transport in ("tcp", "ws"):
                    row = phase(node, workdir, transport, n, args.bots, args.seconds,
                                args.workers)
                    print(json.dumps(row), flush=True)
                    results["phases"].append(row)
        finally:
            node["proc"].terminate()
            try:
                node["proc"].wait(30)
            except subprocess.TimeoutExpired:
                node["proc"].kill()

    def mean(transport: str, key: str) -> float:
        values = [r[key] for r in results["phases"] if r["transport"] == transport and r[key]]
        return sum(values) / len(values) if values else 0.0

    tcp_cost, ws_cost = mean("tcp", "cpu_us_per_update"), mean("ws", "cpu_us_per_update")
    results["summary"] = {
        "tcp_cpu_us_per_update": round(tcp_cost, 3),
        "ws_cpu_us_per_update": round(ws_cost, 3),
        "ws_vs_tcp": round(ws_cost / tcp_cost, 2) if tcp_cost else None,
        "tcp_node_cpu_pct": round(mean("tcp", "node_cpu_pct"), 1),
        "ws_node_cpu_pct": round(mean("ws", "node_cpu_pct"), 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table(results['phases'])}\n\nsummary: {json.dumps(results['summary'])}")
    failed = sum(r["failures"] for r in results["phases"])
    return 1 if failed > args.bots * 0.01 * len(results["phases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
