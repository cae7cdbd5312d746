"""
How many players one node carries, against the bare fan-out limit.

Starts a real node (``twistd -n mmo``) and the load generator as separate
processes, pinned to different cores where there are two, and steps the bot
count.  For each step it measures, over the steady part of the run (after
every bot is in): tick time p50/p99 (from the node's tick histogram), node
CPU and RSS, update age p50/p99 as the bots see it, updates and bytes
delivered per second, and whether the node held (tick p99 < 100 ms and
update age p99 < 200 ms).  The capacity is the largest step that held.

In the same run, the bare baseline (``benchmarks/baseline.py``) gets the
same steps with the same payload per client and tick, and the node's
capacity is reported as a ratio of the baseline's.

    python benchmarks/capacity.py                     # the full run (~20 min)
    python benchmarks/capacity.py --steps 100 --seconds 3 --scenarios world --smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TICK_HZ = 10
CELL = 100
HOLD_TICK_P99_MS = 100.0
HOLD_AGE_P99_MS = 200.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(core: int) -> list[str]:
    """``taskset -c CORE`` where the machine has two cores or more."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def proc_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    return sum(proc_times(pid))


#: Seconds at most a step waits after its ramp for the node to leave the
#: half-rate mode the logins may have put it in.
SETTLE_MAX = 15.0


def proc_tree_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds so far of ``pid`` and every live process under it."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    user = system = 0.0
    for p in tree:
        try:
            u, s = proc_times(p)
        except (OSError, IndexError):
            continue  # ended while we looked
        user += u
        system += s
    return user, system


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 30.0) -> re.Match:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = rx.search(path.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {pattern!r} in {path}")


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def histogram_quantiles(before: dict[str, float], after: dict[str, float],
                        name: str = "mmo_tick_duration_seconds") -> tuple[float, float, int]:
    """p50 and p99 (ms) of the ticks between two scrapes, by interpolation."""
    buckets = []
    for key, value in after.items():
        m = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if m:
            le = math.inf if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((le, value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0

    def q(p: float) -> float:
        if not total:
            return 0.0
        rank = p * total
        prev_le, prev_n = 0.0, 0.0
        for le, n in buckets:
            if n >= rank:
                if math.isinf(le):
                    return prev_le * 1000
                frac = (rank - prev_n) / max(n - prev_n, 1e-9)
                return (prev_le + (le - prev_le) * frac) * 1000
            prev_le, prev_n = le, n
        return prev_le * 1000

    return q(0.5), q(0.99), int(total)


class Step:
    """One server (node or baseline) under one load-generator run."""

    def __init__(self, workdir: Path, scenario: str, bots: int, seconds: float,
                 workers: int, server: str, payload: int = 0, nodes: int = 1) -> None:
        self.workdir = workdir
        self.scenario = scenario
        self.bots = bots
        self.seconds = seconds
        self.workers = workers
        self.server = server
        self.payload = payload
        self.nodes = nodes

    def size(self) -> tuple[float, float]:
        """The zone: about 50 others in view (density 50 per 3 x 3 cells)."""
        side = max(math.sqrt(self.bots * 9 * CELL * CELL / 50), 300)
        if self.nodes != 2:
            return side, side
        # Two halves of whole cells, one region each (see regions()), the
        # same area: the same density as one node's zone.
        width = math.ceil(side / (2 * CELL)) * 2 * CELL
        return width, side * side / width

    def zone(self) -> str:
        if self.scenario == "crowd":
            return "world:200x200"
        width, height = self.size()
        return f"world:{width:.0f}x{height:.0f}"

    def regions(self) -> list[str]:
        """
        Two nodes: the zone's west half belongs to node 0, its east half to
        node 1 (pinned regions), so that each carries half the bots and the
        bots that walk over the middle are handed over.
        """
        if self.nodes != 2:
            return []
        width, height = self.size()
        half = round(width / CELL / 2)
        rows = math.ceil(math.ceil(height / CELL) / half)
        return ["--region-cells", str(half), "--region-map", f"world:0,0-{rows - 1}=bench-0",
                "--region-map", f"world:1,0-{rows - 1}=bench-1"]

    def start_servers(self) -> list[dict[str, Any]]:
        servers = []
        mport = str(free_port(socket.SOCK_DGRAM))
        group = f"239.255.{os.getpid() % 250 + 1}.{len(self.scenario) + self.bots % 200}"
        key = self.workdir / "cluster.key"
        for i in range(self.nodes):
            log = self.workdir / f"{self.server}{i}.log"
            # One node on core 0 and the load generator on core 1; two nodes
            # take a core each and the load generator competes with them.
            core = pin(i % 2)
            port = free_port()
            if self.server == "node":
                argv = core + [
                    str(BIN / "twistd"), "-n", "--pidfile=", "mmo",
                    "--listen", f"tcp:{port}:interface=127.0.0.1",
                    "--http", "tcp:0:interface=127.0.0.1",
                    "--data-dir", str(self.workdir / f"data{i}"),
                    "--node-id", f"bench-{i}", "--cluster-key-file", str(key),
                    "--mgroup", group, "--mport", mport,
                    "--tick-hz", str(TICK_HZ), "--cell-size", str(CELL),
                    "--zone", self.zone(), "--spawn", "random", "--max-per-ip", "0",
                    "--max-players", "100000", "--password-iterations", "1000",
                    "--idle-timeout", "600", "--login-timeout", "120",
                    *self.regions(),
                ]
            else:
                argv = core + [
                    sys.executable, str(HERE / "baseline.py"), "--port", str(port),
                    "--payload", str(self.payload), "--tick-hz", str(TICK_HZ),
                    "--duration", str(self.seconds + 600),
                    "--stats", str(self.workdir / "baseline-stats.json"),
                    *(["--hub"] if self.server == "baseline-hub" else []),
                ]
            with open(log, "wb") as out:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=self.workdir)
            info: dict[str, Any] = {"proc": proc, "port": port, "log": log}
            if self.server == "node":
                m = wait_for(log, r"serving metrics and health on \S+ \(IPv4Address\("
                                  r"type='TCP', host='[\d.]+', port=(\d+)\)\)", proc)
                info["http"] = int(m.group(1))
                wait_for(log, r"listening for players", proc)
            else:
                wait_for(log, r"baseline listening", proc)
            servers.append(info)
        if self.server == "node" and self.nodes > 1:
            for s in servers:
                wait_for(s["log"], rf"{self.nodes} live node\(s\)", s["proc"])
        return servers

    def run(self) -> dict[str, Any]:
        servers = self.start_servers()
        report = self.workdir / f"{self.server}-{self.scenario}-{self.bots}.json"
        ramp = max(200.0, self.bots / 5.0)
        ramp_s = self.bots / ramp + 3.0
        # After the ramp a node may still send busy cells at half rate (the
        # logins' full views overloaded it); the steady seconds start once
        # it is back at full rate, or after SETTLE_MAX seconds whatever it is.
        settle_max = SETTLE_MAX if self.server == "node" else 0.0
        targets = ",".join(f"127.0.0.1:{s['port']}" for s in servers)
        argv = (pin(1) if self.nodes == 1 else []) + [
            str(BIN / "mmo-loadgen"), "--targets", targets, "--clients", str(self.bots),
            "--rate", "10", "--ramp", str(ramp),
            "--duration", str(ramp_s + settle_max + self.seconds),
            "--spread", "spawn", "--speed", "40", "--chat-rate", "0",
            "--workers", str(self.workers), "--report", str(report), "--no-progress",
            "--max-failures", str(self.bots), "--login-timeout", "120",
            "--name-prefix", f"b{self.server[0]}",
        ]
        lg_log = self.workdir / f"loadgen-{self.server}.log"
        try:
            with open(lg_log, "wb") as out:
                lg = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                      cwd=self.workdir)
            # Steady state: from the end of the ramp to the end of the run.
            time.sleep(ramp_s)
            settled = time.monotonic()
            while (time.monotonic() - settled < settle_max and any(
                    scrape(s["http"]).get("mmo_degraded", 0.0) for s in servers)):
                time.sleep(0.2)
            settle_s = time.monotonic() - settled
            t0 = time.monotonic()
            cpu0 = [proc_cpu(s["proc"].pid) for s in servers]
            lg0 = proc_tree_cpu(lg.pid)
            before = [scrape(s["http"]) for s in servers if "http" in s]
            time.sleep(self.seconds * 0.9)
            elapsed = time.monotonic() - t0
            cpu1 = [proc_cpu(s["proc"].pid) for s in servers]
            lg1 = proc_tree_cpu(lg.pid)
            rss = [proc_rss_mb(s["proc"].pid) for s in servers]
            after = [scrape(s["http"]) for s in servers if "http" in s]
            _, status, usage = os.wait4(lg.pid, 0)
            lg.returncode = os.waitstatus_to_exitcode(status)
            lg_cpu = usage.ru_utime + usage.ru_stime
        finally:
            for s in servers:
                s["proc"].terminate()
            for s in servers:
                try:
                    s["proc"].wait(20)
                except subprocess.TimeoutExpired:
                    s["proc"].kill()
        rep = json.loads(report.read_text())
        lat = rep["latency_ms"]
        result: dict[str, Any] = {
            "server": self.server, "scenario": self.scenario, "bots": self.bots,
            "nodes": self.nodes, "logged_in": rep["bots"]["logged_in"],
            "failures": rep["failures"]["total"],
            "update_age_ms_p50": lat["update_age"]["p50"],
            "update_age_ms_p99": lat["update_age"]["p99"],
            "rtt_ms_p99": lat["rtt"]["p99"],
            "updates_per_sec": round(rep["actions"]["entity_updates"] / rep["elapsed_s"]),
            "bytes_per_sec": rep["traffic"]["bytes_in_per_sec"],
            "server_cpu_pct": round(sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / elapsed * 100, 1),
            "server_rss_mb": round(sum(rss), 1),
            # The generator over the same steady seconds as the server (all
            # its processes), and over its whole run (start-up, logins, close).
            "loadgen_cpu_pct": round((sum(lg1) - sum(lg0)) / elapsed * 100, 1),
            # Of which the kernel's: a bot's reads and sends on loopback.
            "loadgen_sys_pct": round((lg1[1] - lg0[1]) / elapsed * 100, 1),
            "loadgen_run_cpu_pct": round(lg_cpu / rep["elapsed_s"] * 100, 1),
            "corrections": rep["corrections"]["total"],
            "settle_s": round(settle_s, 1),
        }
        # Per core: the server's CPU per entity update it delivered, and the
        # generator's CPU per bot and tick (10 Hz), so that node, baseline
        # and generator compare in one table whatever the bot count.
        updates = result["updates_per_sec"]
        result["server_us_per_update"] = (
            round(result["server_cpu_pct"] / 100 / updates * 1e6, 2) if updates else None)
        result["loadgen_us_per_bot_tick"] = round(
            result["loadgen_cpu_pct"] / 100 / (self.bots * TICK_HZ) * 1e6, 2)
        result["loadgen_sys_us_per_bot_tick"] = round(
            result["loadgen_sys_pct"] / 100 / (self.bots * TICK_HZ) * 1e6, 2)
        result["loadgen_run_us_per_bot_tick"] = round(
            result["loadgen_run_cpu_pct"] / 100 / (self.bots * TICK_HZ) * 1e6, 2)
        if before:
            quantiles = [histogram_quantiles(b, a) for b, a in zip(before, after, strict=True)]
            p50s = [q[0] for q in quantiles]
            p99s = [q[1] for q in quantiles]
            result["degraded_ticks"] = int(sum(
                a.get("mmo_degraded_ticks_total", 0) - b.get("mmo_degraded_ticks_total", 0)
                for b, a in zip(before, after, strict=True)))
            result["tick_ms_p50"] = round(max(p50s), 2)
            result["tick_ms_p99"] = round(max(p99s), 2)

            def delta(name: str, b: dict[str, float], a: dict[str, float]) -> float:
                return a.get(name, 0.0) - b.get(name, 0.0)

            if self.nodes > 1:
                # Each node's own CPU per update it sent its players, and the
                # players handed over the middle during the steady seconds.
                result["per_node_us_per_update"] = [
                    round((c1 - c0) / u * 1e6, 2) if u else None
                    for c0, c1, u in zip(cpu0, cpu1, (
                        delta("mmo_entity_updates_sent_total", b, a)
                        for b, a in zip(before, after, strict=True)), strict=True)]
                result["handoffs"] = int(sum(delta("mmo_handoffs_out_total", b, a)
                                             for b, a in zip(before, after, strict=True)))
        else:
            stats = self.workdir / "baseline-stats.json"
            result["tick_ms_p50"] = result["tick_ms_p99"] = None
            if stats.exists():
                bs = json.loads(stats.read_text())
                result["tick_ms_p50"] = round(bs["tick_ms_p50"], 2)
                result["tick_ms_p99"] = round(bs["tick_ms_p99"], 2)
        tick_ok = result["tick_ms_p99"] is None or result["tick_ms_p99"] < HOLD_TICK_P99_MS
        result["held"] = bool(
            tick_ok and result["update_age_ms_p99"] < HOLD_AGE_P99_MS
            and result["logged_in"] >= self.bots * 0.99
            and result["failures"] <= self.bots * 0.01
        )
        return result


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform()}


def table(rows: list[dict[str, Any]]) -> str:
    cols = ["server", "nodes", "bots", "bots_per_node", "logged_in", "tick_ms_p50", "tick_ms_p99",
            "update_age_ms_p50", "update_age_ms_p99", "updates_per_sec", "bytes_per_sec",
            "server_cpu_pct", "server_rss_mb", "loadgen_cpu_pct", "settle_s", "degraded_ticks", "held"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def per_core(results: dict[str, Any]) -> list[dict[str, Any]]:
    """
    Node against baseline at the same bot counts: CPU per delivered update
    of each and their ratio, and the generator's CPU per bot and tick
    (during the node's run) against the node's per update.
    """
    base = {r["bots"]: r for r in results["baseline"]}
    hub = {r["bots"]: r for r in results.get("baseline_hub", [])}
    two = {r["bots_per_node"]: r for r in results["two_nodes"]}
    rows = []
    for r in results["world"]:
        b = base.get(r["bots"])
        t = two.get(r["bots"])
        node_us = r.get("server_us_per_update")
        base_us = b.get("server_us_per_update") if b else None
        two_us = t.get("server_us_per_update") if t else None
        hub_us = hub[r["bots"]].get("server_us_per_update") if r["bots"] in hub else None
        lg_us = r.get("loadgen_us_per_bot_tick")
        # The node's CPU per bot and tick too: the generator's own unit.
        node_tick_us = round(r["server_cpu_pct"] / 100 / (r["bots"] * TICK_HZ) * 1e6, 2)
        rows.append({
            "bots": r["bots"],
            "node_us_per_update": node_us,
            "node_us_per_bot_tick": node_tick_us,
            "baseline_us_per_update": base_us,
            "baseline_over_node": round(base_us / node_us, 2) if node_us and base_us else None,
            "baseline_hub_us_per_update": hub_us,
            "baseline_hub_over_node": round(hub_us / node_us, 2) if node_us and hub_us else None,
            "loadgen_us_per_bot_tick": lg_us,
            "loadgen_sys_us_per_bot_tick": r.get("loadgen_sys_us_per_bot_tick"),
            "loadgen_run_us_per_bot_tick": r.get("loadgen_run_us_per_bot_tick"),
            "loadgen_over_node": round(lg_us / node_tick_us, 2) if node_tick_us and lg_us else None,
            "two_nodes_us_per_update": two_us,
            "two_nodes_over_one": round(two_us / node_us, 2) if node_us and two_us else None,
            "held": r["held"],
        })
    return rows


def per_core_table(rows: list[dict[str, Any]]) -> str:
    cols = ["bots", "node_us_per_update", "baseline_us_per_update", "baseline_over_node",
            "baseline_hub_us_per_update", "baseline_hub_over_node",
            "node_us_per_bot_tick", "loadgen_us_per_bot_tick", "loadgen_over_node",
            "loadgen_sys_us_per_bot_tick", "loadgen_run_us_per_bot_tick",
            "two_nodes_us_per_update",
            "two_nodes_over_one", "held"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def capacity(rows: list[dict[str, Any]]) -> int:
    held = [r["bots"] for r in rows if r["held"]]
    return max(held) if held else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="500,1000,2000,2500,3000,3500,4000,5000,6000,7000")
    ap.add_argument("--crowd-steps", default="300,500,1000,1500,2000,2500")
    ap.add_argument("--scenarios", default="world,crowd,two-nodes,baseline")
    ap.add_argument("--two-steps", default="500,1000",
                    help="bots per node for the two-node scenario (two cores: the node "
                         "pair and the generator share them)")
    ap.add_argument("--seconds", type=float, default=20.0, help="steady seconds per step")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--payload", type=int, default=0,
                    help="baseline bytes per client per tick (default: the node's measured)")
    ap.add_argument("--out", default=str(HERE / "results" / "capacity.json"))
    ap.add_argument("--smoke", action="store_true", help="a seconds-long check for CI")
    args = ap.parse_args(argv)

    scenarios = args.scenarios.split(",")
    steps = [int(s) for s in args.steps.split(",")]
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv),
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "world": [], "crowd": [], "two_nodes": [], "baseline": [],
                               "baseline_hub": []}
    with tempfile.TemporaryDirectory(prefix="mmo-bench-") as tmp:
        base = Path(tmp)

        def run(name: str, **kw: Any) -> dict[str, Any]:
            d = base / f"{name}-{kw['bots']}-{kw.get('server', 'node')}"
            d.mkdir()
            r = Step(d, seconds=args.seconds, workers=args.workers, **kw).run()
            print(json.dumps(r), flush=True)
            return r

        if "world" in scenarios:
            for n in steps:
                r = run("world", scenario="world", bots=n, server="node")
                results["world"].append(r)
                if not r["held"] and not args.smoke:
                    break
        if "crowd" in scenarios:
            for n in [int(s) for s in args.crowd_steps.split(",")]:
                if args.smoke:
                    n = min(n, steps[0])
                r = run("crowd", scenario="crowd", bots=n, server="node")
                results["crowd"].append(r)
                if args.smoke or not r["held"]:
                    break
        if "two-nodes" in scenarios:
            # Each node carries a step's bots (twice as many in all, the zone
            # twice as large), the west half on one node and the east half
            # on the other: against one node with that step, in this run.
            for n in [int(s) for s in args.two_steps.split(",")]:
                if args.smoke:
                    n = min(n, steps[0])
                r = run("two", scenario="world", bots=2 * n, server="node", nodes=2)
                r["bots_per_node"] = n
                results["two_nodes"].append(r)
                if not r["held"] or args.smoke:
                    break
        if "baseline" in scenarios or "baseline-hub" in scenarios:
            world = results["world"]
            biggest = max((r for r in world if r["held"]), key=lambda r: r["bots"],
                          default=world[-1] if world else None)
            payload = args.payload or (
                int(biggest["bytes_per_sec"] / biggest["bots"] / TICK_HZ) if biggest else 700)
            payload = max(payload, 64)
            results["baseline_payload"] = payload
            for kind in ("baseline", "baseline-hub"):
                if kind not in scenarios:
                    continue
                for n in steps:
                    r = run(kind, scenario="world", bots=n, server=kind, payload=payload)
                    results[kind.replace("-", "_")].append(r)
                    if not r["held"] and not args.smoke:
                        break
    summary = {k: capacity(results[k])
               for k in ("world", "crowd", "two_nodes", "baseline", "baseline_hub")}
    if summary["baseline"]:
        summary["world_vs_baseline"] = round(summary["world"] / summary["baseline"], 2)
    if summary["world"]:
        summary["two_nodes_vs_one"] = round(summary["two_nodes"] / summary["world"], 2)
    # Side by side at the same bot counts: the baseline's CPU over the node's,
    # a ratio that holds even where the load generator is the limit.
    base_cpu = {r["bots"]: r["server_cpu_pct"] for r in results["baseline"]}
    summary["cpu_ratio_by_step"] = {
        r["bots"]: round(base_cpu[r["bots"]] / r["server_cpu_pct"], 2)
        for r in results["world"] if r["bots"] in base_cpu and r["server_cpu_pct"]}
    results["capacity"] = summary
    results["per_core"] = per_core(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key in ("world", "crowd", "two_nodes", "baseline", "baseline_hub"):
        if results[key]:
            print(f"\n## {key}\n\n{table(results[key])}")
    if results["per_core"]:
        print(f"\n## per core (CPU per delivered update, generator per bot and tick)\n\n"
              f"{per_core_table(results['per_core'])}")
    print(f"\ncapacity: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
