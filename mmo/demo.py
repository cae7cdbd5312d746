"""
The demo: a small cluster on this host, bots, a scripted player, the
monitor (a window where there is a screen, its text view where there is
not), and the web client: each node takes browser players too, and the
address of its page is printed (``--browser`` opens it).

    python -m mmo.demo                      # 2 nodes, 300 bots, 60 seconds
    python -m mmo.demo --nodes 3 --bots 600 --duration 120 --text
    python -m mmo.demo --browser --duration 600

Everything stays on this machine: players on 127.0.0.1, multicast on
loopback with TTL 0.  It stops by itself after ``--duration`` seconds (or
on Ctrl-C) and stops every process it started, by pid.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import webbrowser
from pathlib import Path

BIN = Path(sys.executable).parent

SCRIPT = """\
# A scripted player: what it sees is printed with a [demo-player] prefix.
say hello from the demo player
who
move {x} {y}
wait 2
zone anyone in this zone?
wait {rest}
quit
"""


def free_port(preferred: int = 0, kind: int = socket.SOCK_STREAM) -> int:
    """``preferred`` if it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def has_screen() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    # Only the monitor imports Qt; here it is enough to know it is installed.
    return importlib.util.find_spec("PyQt5") is not None


def wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise SystemExit(f"demo: a process exited early; see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: no {text!r} in {log} after {timeout:.0f}s")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a small mmo cluster with bots and the monitor.")
    ap.add_argument("--nodes", type=int, default=2, help="nodes to start (default 2)")
    ap.add_argument("--bots", type=int, default=300, help="bots (default 300)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    ap.add_argument("--npcs", type=int, default=20, help="NPCs each node spawns (default 20)")
    ap.add_argument("--text", action="store_true", help="the text view even with a screen")
    ap.add_argument("--browser", action="store_true",
                    help="open the web client of the first node in a browser")
    ap.add_argument("--mgroup", default="239.255.0.1")
    ap.add_argument("--mport", type=int, default=30001)
    ap.add_argument("--workdir", default="demo-data", help="logs and data (default demo-data)")
    args = ap.parse_args(argv)
    if (not 1 <= args.nodes <= 8 or not 0 <= args.bots <= 5000 or not 0 <= args.npcs <= 5000
            or not 5 <= args.duration <= 3600):
        ap.error("use 1-8 nodes, 0-5000 bots, 0-5000 NPCs and 5-3600 seconds")

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    key = work / "cluster.key"
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []

    def start(name: str, argv: list[str], show: bool = False) -> subprocess.Popen:
        log = work / f"{name}.log"
        out = None if show else open(log, "wb")
        proc = subprocess.Popen(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT if out
                                else None, stdin=subprocess.DEVNULL)
        procs.append(proc)
        logs.append(log)
        return proc

    ports = []
    pages = []
    try:
        for i in range(args.nodes):
            port = free_port(4000 + i)
            http = free_port(9100 + i)
            ws = free_port(4080 + i)
            ports.append(port)
            name = f"node{i + 1}"
            proc = start(name, [
                str(BIN / "twistd"), "-n", "--pidfile=", "mmo",
                "--listen", f"tcp:{port}:interface=127.0.0.1",
                "--http", f"tcp:{http}:interface=127.0.0.1",
                "--websocket", f"tcp:{ws}:interface=127.0.0.1",
                "--node-id", f"demo-{i + 1}", "--data-dir", str(work / name),
                "--cluster-key-file", str(key),
                "--mgroup", args.mgroup, "--mport", str(args.mport),
                "--max-per-ip", "0", "--password-iterations", "1000",
                "--npcs", f"world:{args.npcs}",
            ])
            # The first node makes the cluster key the others read.
            wait_for_line(work / f"{name}.log", "listening for players", proc, 30)
            pages.append(f"http://127.0.0.1:{http}/play")
            print(f"demo: node demo-{i + 1} on 127.0.0.1:{port}, "
                  f"metrics on http://127.0.0.1:{http}/metrics")
            print(f"demo: play in a browser on node demo-{i + 1}: {pages[-1]}")
        targets = ",".join(f"127.0.0.1:{p}" for p in ports)
        if args.bots:
            start("loadgen", [
                str(BIN / "mmo-loadgen"), "--targets", targets, "--clients", str(args.bots),
                "--rate", "5", "--ramp", "100", "--duration", str(args.duration),
                "--chat-rate", "0.02", "--name-prefix", "demobot",
                "--max-failures", str(args.bots), "--report", str(work / "loadgen.json"),
            ])
            print(f"demo: {args.bots} bots over {targets} (progress in {work}/loadgen.log)")
        script = work / "player.txt"
        script.write_text(SCRIPT.format(x=1010, y=1000, rest=max(1, int(args.duration) - 10)))
        player = start("player", [
            str(BIN / "mmo-client"), "--host", "127.0.0.1", "--port", str(ports[0]),
            "--name", "demo-player", "--script", str(script)])
        print(f"demo: a scripted player on node demo-1 (its view in {work}/player.log)")
        if args.browser and not webbrowser.open(pages[0]):
            print(f"demo: no browser could be opened here; open {pages[0]}")
        monitor = [str(BIN / "mmo-monitor"), "--mgroup", args.mgroup, "--mport", str(args.mport),
                   "--cluster-key-file", str(key), "--duration", str(args.duration)]
        if args.text or not has_screen():
            print("demo: no screen here: the monitor's text view, refreshed each second\n")
            monitor.append("--text")
        view = start("monitor", monitor, show=True)
        deadline = time.monotonic() + args.duration + 15
        while view.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        print()
        tail = (work / "player.log").read_text(errors="replace").strip().splitlines()[-8:]
        print("demo: what the scripted player saw last:\n  " + "\n  ".join(tail))
        del player
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"demo: stopped; logs and the load generator's report are in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
