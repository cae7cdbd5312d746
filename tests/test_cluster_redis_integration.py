"""
A Redis restarted under load: two real ``twistd -n mmo`` nodes sharing one
world over a real ``redis-server`` on 127.0.0.1, 200 bots of the load
generator playing on them, and a few players of the test's own whose
positions it knows.  Every wait has a deadline.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.error
import urllib.request

from support import BIN, Process, wait_until
from test_cluster_integration import KEYFRAME, View, join, write_key

from mmo.wire import messages as m

LOADGEN = str(BIN / "mmo-loadgen")
OUTAGE = 3 * KEYFRAME + 0.5  # longer than expiry: each node is alone for a while


def get(node, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(node, name: str) -> float:
    text = get(node, "/metrics")[1]
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if re.match(rf"{name}[ {{]", line)]
    assert values, f"no {name} in /metrics"
    return sum(values)


class Walkers:
    """Players of the test's own, random walking near the centre; it knows where each is."""

    def __init__(self, nodes, per_node: int) -> None:
        self.rng = random.Random(5)
        self.where: dict[str, tuple[float, float]] = {}
        self.players: dict[str, tuple[object, View]] = {}
        self.node_of: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for j in range(per_node):
                name = f"w{i}{j}"
                self.where[name] = (980 + 40 * self.rng.random(), 980 + 40 * self.rng.random())
                self.players[name] = join(node, name, *self.where[name])
                self.node_of[name] = i
        self.seq = 10

    def step(self) -> None:
        self.seq += 1
        for name, (client, view) in self.players.items():
            x, y = self.where[name]
            self.where[name] = (min(max(x + self.rng.uniform(-3, 3), 970), 1030),
                                min(max(y + self.rng.uniform(-3, 3), 970), 1030))
            client.send(m.Move(self.seq, *self.where[name]))  # type: ignore[attr-defined]
            view.update(0)

    def walk(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # bounded: the walk's length
            self.step()
            for _client, view in self.players.values():
                view.update(0.1 / len(self.players))  # the walk's pace, reading meanwhile

    def wrong(self, same_node_only: bool = False) -> list[str]:
        """What some player sees differently from where its owner put it."""
        out = []
        for name, (_c, view) in self.players.items():
            view.update(0.005)
            seen = view.by_name()
            for other, (x, y) in self.where.items():
                if other == name or (same_node_only and self.node_of[other] != self.node_of[name]):
                    continue
                got = seen.get(other)
                if got is None or abs(got[1] - x) > 0.01 or abs(got[2] - y) > 0.01:
                    out.append(f"{name} sees {other} at {got}, owner has ({x}, {y})")
        return out


def test_redis_restarted_under_200_bots(start_node, redis_servers, tmp_path):
    server = redis_servers(name="restarted")
    write_key(tmp_path / "cluster.key")
    args = ["--redis", server.url, "--cluster-name", "restart",
            "--cluster-key-file", str(tmp_path / "cluster.key"),
            "--keyframe-interval", str(KEYFRAME), "--heartbeat-interval", str(KEYFRAME),
            "--max-speed", "100000", "--max-per-ip", "0"]
    nodes = [start_node(*args, "--node-id", f"r{i}", name=f"r{i}") for i in range(2)]
    for node in nodes:
        wait_until(lambda node=node: " appeared" in node.output, 10, what="the nodes meet")
    report_path = tmp_path / "report.json"
    loadgen = Process([
        LOADGEN, "--targets", ",".join(f"127.0.0.1:{n.port}" for n in nodes),
        "--clients", "200", "--rate", "10", "--ramp", "400", "--duration", "9",
        "--seed", "7", "--report", str(report_path)], tmp_path, "loadgen")
    try:
        walkers = Walkers(nodes, 2)
        wait_until(lambda: all(metric(n, "mmo_players") == 102 for n in nodes), 15,
                   interval=0.2, what="100 bots and 2 walkers on each node")
        walkers.walk(1.0)
        wait_until(lambda: not walkers.wrong(), KEYFRAME + 0.5, interval=0.0,
                   what="views match the owners before the restart")

        server.stop()
        walkers.walk(OUTAGE)
        # Each node goes on alone: its own players still see each other move.
        assert not walkers.wrong(same_node_only=True), walkers.wrong(same_node_only=True)
        for node in nodes:
            status, body = get(node, "/readyz")
            assert status == 503 and "cluster: no connection to Redis" in body, body
            assert get(node, "/healthz") == (200, "ok\n")
            assert metric(node, "mmo_cluster_transport_up") == 0
            assert metric(node, "mmo_cluster_send_errors_total") > 0

        server.start()
        back = time.monotonic()
        wrong: list[str] = []

        def converged() -> bool:
            wrong[:] = walkers.wrong()
            return not wrong

        try:
            wait_until(converged, KEYFRAME, interval=0.0,
                       what="views match the owners within a keyframe interval of the restart")
        except AssertionError as e:
            raise AssertionError(f"{e}: {wrong}") from None
        took = time.monotonic() - back
        (tmp_path / "convergence.json").write_text(json.dumps({"seconds": round(took, 3)}))
        print(f"views whole again {took * 1000:.0f} ms after Redis answered again")
        for node in nodes:
            wait_until(lambda node=node: get(node, "/readyz")[0] == 200, 2,
                       what="ready again")
            assert metric(node, "mmo_cluster_transport_up") == 1
            assert metric(node, "mmo_cluster_transport_outages_total") == 1
            # Logged once each way, however many attempts it took.
            assert node.output.count("lost Redis at") == 1
            assert node.output.count("is back after") == 1
        code = loadgen.wait(30)
    finally:
        loadgen.stop()
    assert code == 0, loadgen.output[-3000:]
    report = json.loads(report_path.read_text())
    assert report["bots"]["logged_in"] == 200 and report["bots"]["failed"] == 0
    assert report["errors"]["total"] == 0, report["errors"]
    assert report["disconnects"]["total"] == 0, report["disconnects"]
