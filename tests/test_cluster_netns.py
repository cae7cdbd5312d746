"""
Three nodes in three network namespaces joined by a bridge: real multicast
between hosts (TTL 1 over the bridge), all on this machine.  Needs root and a
working ``ip netns``; the test creates its namespaces and bridge and removes
them, and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TWISTD, Process, WireClient, cluster_args, wait_until

from mmo.wire import messages as m

TCP_PORT = 4000


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                          check=check)


def netns_unavailable() -> str | None:
    """Why this test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    probe = f"mmoprobe{os.getpid() % 100000}"
    try:
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"ip netns does not work here: {made.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


REASON = netns_unavailable()


@pytest.fixture
def namespaces() -> Iterator[list[tuple[str, str]]]:
    """Three namespaces on one bridge: [(namespace, address)]."""
    tag = f"mmo{secrets.token_hex(2)}"
    octet = int(tag[-2:], 16) % 200 + 20
    bridge = f"b{tag}"
    made: list[str] = []
    try:
        ip("link", "add", bridge, "type", "bridge", "mcast_snooping", "0")
        ip("addr", "add", f"10.213.{octet}.254/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        out = []
        for i in range(3):
            ns, outside, inside = f"{tag}n{i}", f"v{tag}{i}", f"e{tag}{i}"
            addr = f"10.213.{octet}.{i + 1}"
            ip("netns", "add", ns)
            made.append(ns)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "master", bridge, "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", inside)
            out.append((ns, addr))
        yield out
    finally:
        for ns in made:
            ip("netns", "del", ns, check=False)
        ip("link", "del", bridge, check=False)


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_three_hosts_over_a_bridge(namespaces, tmp_path: Path):
    key = tmp_path / "cluster.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    shared = [*cluster_args(), "--cluster-key-file", str(key), "--keyframe-interval", "0.5",
              "--heartbeat-interval", "0.5", "--max-speed", "100000", "--ttl", "1"]
    procs: list[Process] = []
    clients: list[WireClient] = []
    try:
        for i, (ns, addr) in enumerate(namespaces):
            workdir = tmp_path / f"host{i}"
            workdir.mkdir()
            argv = ["ip", "netns", "exec", ns, TWISTD, "-n", "--pidfile=", "mmo",
                    "--listen", f"tcp:{TCP_PORT}:interface={addr}", "--http", "none",
                    "--data-dir", str(workdir / "data"), "--password-iterations", "1000",
                    "--node-id", f"host{i}", "--iface", addr, "--placement", "connection",
                    *shared]
            p = Process(argv, workdir, f"host{i}")
            procs.append(p)
            p.wait_for(r"listening for players on")
        for p in procs:
            wait_until(lambda p=p: p.output.count(" appeared") >= 2, 10,
                       what="each host hears the other two over the bridge")
        names = ["alice", "bob", "carol"]
        for (_ns, addr), name, x in zip(namespaces, names, (1050, 1060, 1070), strict=True):
            c = WireClient(TCP_PORT, host=addr)
            c.login(name)
            c.send(m.Move(1, x, 1050))
            clients.append(c)
        for c, name in zip(clients, names, strict=True):
            others = set(names) - {name}
            seen: set[str] = set()

            def sees_others(c=c, others=others, seen=seen):
                for msg in c.drain(0.05):
                    if isinstance(msg, m.Enter):
                        seen.update(e.name for e in msg.entities)
                return others <= seen

            wait_until(sees_others, 5, what=f"{name} sees {others} across hosts")
        assert "via 10.213." in procs[0].output and "ttl 1" in procs[0].output
    finally:
        for c in clients:
            c.close()
        for p in procs:
            p.stop()
