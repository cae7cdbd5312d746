"""
A login storm: a node with N bots is stopped (SIGTERM) and started again;
how long until every bot plays again, coming back with its resume token
against coming back with its password (the default PBKDF2 cost).

Real processes on 127.0.0.1: ``twistd mmo`` (restarted on the same port and
data directory) and ``mmo-loadgen --come-back token|password``.  Each mode
is one run, bounded in time; the ratio of the two is the result.

    python benchmarks/login_storm.py                 # 2,000 bots, both modes
    python benchmarks/login_storm.py --bots 500 --modes token
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        pass
    return -1.0


def node(workdir: Path, port: int, http: int, log: str) -> subprocess.Popen[bytes]:
    out = open(workdir / log, "wb")
    return subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "mmo", "--listen",
         f"tcp:{port}:interface=127.0.0.1", "--http", f"tcp:{http}:interface=127.0.0.1",
         "--data-dir", str(workdir / "data"), "--no-cluster", "--max-per-ip", "0"],
        stdout=out, stderr=subprocess.STDOUT, cwd=workdir)


def wait_for(what: str, predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise SystemExit(f"login_storm: no {what} within {timeout:g}s")


def run(mode: str, bots: int, timeout: float, ramp: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"storm-{mode}-"))
    port, http = free_port(), free_port()
    first = node(workdir, port, http, "node.log")
    lg = subprocess.Popen(
        [str(BIN / "mmo-loadgen"), "--port", str(port), "--clients", str(bots),
         "--ramp", str(ramp), "--duration", str(timeout * 3), "--come-back", mode,
         "--login-timeout", str(timeout),
         "--no-progress", "--report", str(workdir / "report.json")],
        stdout=open(workdir / "loadgen.log", "wb"), stderr=subprocess.STDOUT, cwd=workdir)
    second = None
    try:
        wait_for("bots in", lambda: metric(http, "mmo_players") >= bots * 0.99,
                 timeout + bots / ramp)
        # Every bot that will get in (a straggler or two may still be hashing).
        time.sleep(2.0)
        playing = metric(http, "mmo_players")
        first.send_signal(signal.SIGTERM)
        first.wait(60)
        second = node(workdir, port, http, "node-again.log")
        back = wait_for("bots back", lambda: metric(http, "mmo_players") >= playing, timeout)
        resumes = metric(http, "mmo_resumes_total")
        cpu = _cpu_seconds(second.pid)
    finally:
        lg.send_signal(signal.SIGINT)
        try:
            lg.wait(30)
        except subprocess.TimeoutExpired:
            lg.kill()
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    return {"mode": mode, "bots": bots, "playing_before": playing, "all_back_s": round(back, 2),
            "resumes": resumes, "node_cpu_s_after_restart": cpu, "dir": str(workdir)}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / 100.0, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--bots", type=int, default=2000)
    ap.add_argument("--modes", default="token,password")
    ap.add_argument("--ramp", type=float, default=20.0,
                    help="bots a second at the start (the first logins hash passwords)")
    ap.add_argument("--timeout", type=float, default=180.0,
                    help="seconds each wait may take (every run is bounded)")
    args = ap.parse_args()
    rows = [run(mode, args.bots, args.timeout, args.ramp) for mode in args.modes.split(",")]
    for r in rows:
        print(json.dumps(r))
    if len(rows) == 2:
        print(f"password / token, time until every bot plays again: "
              f"{rows[1]['all_back_s'] / max(rows[0]['all_back_s'], 0.01):.1f}")


if __name__ == "__main__":
    main()
