"""
Regions with real nodes: ``twistd mmo`` processes, real sockets, loopback
multicast.  A player walks over two borders while a player on a third node
watches; then its node is killed and it comes back on another.
"""

from __future__ import annotations

import secrets
import signal
import time
from pathlib import Path
from typing import Any

from support import NodeProcess, WireClient, cluster_args, wait_until

from mmo.wire import messages as m

#: 1,000 x 1,000 units, regions of 5 cells of 100: a owns the south-west
#: quarter, b the south-east, c the north half.
PINS = ["--region-map", "world:0,0=a", "--region-map", "world:1,0=b",
        "--region-map", "world:0-1,1=c"]
ARGS = ["--placement", "regions", "--zone", "world:1000x1000", "--max-speed", "400",
        "--heartbeat-interval", "0.5", "--keyframe-interval", "0.5", *PINS]
STEP = 20.0  # units per move, one move per tick


class Player:
    """A blocking client that follows Redirects and comes back with its token."""

    def __init__(self, name: str, doors: dict[str, int], first: str) -> None:
        self.name = name
        self.doors = doors
        self.node = first
        self.seq = 0
        self.token: str | None = None
        self.redirects = 0
        self.client = WireClient(doors[first])
        self.client.send(m.Hello(m.PROTOCOL_VERSION, "test"), m.Login(name, "pw"))
        self.enter: m.EnterWorld = self._arrive()
        self.x, self.y = self.enter.x, self.enter.y

    def _arrive(self) -> m.EnterWorld:
        """Wait for EnterWorld, following Redirects."""
        while True:
            msg = self.client.expect((m.EnterWorld, m.Redirect, m.Error), timeout=10)
            if isinstance(msg, m.EnterWorld):
                self.node = msg.node_id
                self.token = self.client.expect(m.Ticket).token
                return msg
            assert isinstance(msg, m.Redirect), msg
            self._go(msg)

    def _go(self, r: m.Redirect) -> None:
        self.redirects += 1
        self.client.close()
        node = next(n for n, port in self.doors.items() if port == r.port)
        self.client = WireClient(self.doors[node])
        self.client.send(m.Hello(m.PROTOCOL_VERSION, "test"), m.Resume(r.token))

    def step_to(self, x: float, y: float) -> None:
        """One move towards (x, y), then the next tick; follow a handoff's Redirect."""
        dx, dy = x - self.x, y - self.y
        d = (dx * dx + dy * dy) ** 0.5
        if d > STEP:
            dx, dy = dx / d * STEP, dy / d * STEP
        self.x, self.y = self.x + dx, self.y + dy
        self.seq += 1
        self.client.send(m.Move(self.seq, self.x, self.y))
        while True:
            msg = self.client.expect((m.Tick, m.Redirect, m.Correction, m.Ticket), timeout=5)
            if isinstance(msg, m.Ticket):
                self.token = msg.token
            elif isinstance(msg, m.Correction):
                # Too fast (a new owner's distance budget starts empty): it
                # refills with the node's clock alone, and no frame says when
                # (a player whose area is still gets no Tick), so a tick's
                # time passes before the next move; what comes meanwhile is
                # dropped but for a Ticket or a Redirect, read next.
                self.x, self.y = msg.x, msg.y
                self.client.inbox = [later for later in self.client.drain(0.1)
                                     if isinstance(later, (m.Ticket, m.Redirect))]
                return
            elif isinstance(msg, m.Redirect):
                self._go(msg)
                enter = self._arrive()
                self.x, self.y = enter.x, enter.y
                return
            else:
                return

    def walk(self, x: float, y: float) -> None:
        for _ in range(200):
            if abs(self.x - x) < 0.01 and abs(self.y - y) < 0.01:
                return
            self.step_to(x, y)
        raise AssertionError(f"{self.name} did not reach {(x, y)}: at {(self.x, self.y)}")


class Watch:
    """What a watcher's client shows of one other player: its ids, positions, leaves."""

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.positions: list[tuple[float, float]] = []
        self.left: list[int] = []

    def read(self, msgs: list[Any], name: str) -> None:
        for msg in msgs:
            if isinstance(msg, m.Enter):
                for e in msg.entities:
                    if e.name == name:
                        self.ids.add(e.entity_id)
                        self.positions.append((e.x, e.y))
            elif isinstance(msg, m.Moves):
                for eid, x, y in msg.moves:
                    if eid in self.ids:
                        self.positions.append((x, y))
            elif isinstance(msg, m.Leave):
                self.left.extend(e for e in msg.entity_ids if e in self.ids)


def start(start_node: Any, tmp_path: Path) -> dict[str, NodeProcess]:
    key = tmp_path / "cluster.key"
    key.write_text(secrets.token_bytes(32).hex() + "\n")
    shared = [*cluster_args(), "--cluster-key-file", str(key)]
    nodes = {n: start_node(*ARGS, *shared, "--node-id", n, name=n) for n in "abc"}
    for node in nodes.values():
        node.wait_for(r"3 live node\(s\)", timeout=15)
    return nodes


def test_a_walk_over_two_borders_seen_from_a_third_node(start_node: Any, tmp_path: Path) -> None:
    nodes = start(start_node, tmp_path)
    doors = {n: p.port for n, p in nodes.items()}
    watcher = Player("watcher", doors, "c")
    watcher.walk(500.0, 600.0)
    assert watcher.node == "c"
    walker = Player("walker", doors, "c")
    walker.walk(450.0, 470.0)            # into a's land, from wherever it spawned
    assert walker.node == "a"
    watch = Watch()
    watch.read(watcher.client.drain(0.3), "walker")
    assert len(watch.ids) == 1, "the watcher sees the walker"
    before = walker.redirects
    walker.walk(560.0, 470.0)            # over the border into b's land
    assert walker.node == "b"
    watch.read(watcher.client.drain(0.0), "walker")
    walker.walk(440.0, 470.0)            # and back into a's
    assert walker.node == "a"
    assert walker.redirects == before + 2

    def seen_there() -> bool:
        watch.read(watcher.client.drain(0.1), "walker")
        return bool(watch.positions) and watch.positions[-1] == (440.0, 470.0)

    # Until the watcher sees where the walker stopped, and a second more
    # (a late Leave would show there).
    wait_until(seen_there, timeout=10, what="the watcher seeing the walker stop")
    watch.read(watcher.client.drain(1.0), "walker")
    # One entity all along; no Leave; no jump bigger than a few steps.
    assert len(watch.ids) == 1 and not watch.left, (watch.ids, watch.left)
    jumps = [abs(x2 - x1) + abs(y2 - y1) for (x1, y1), (x2, y2)
             in zip(watch.positions, watch.positions[1:], strict=False)]
    assert max(jumps) <= 3 * STEP, jumps
    assert watch.positions[-1] == (440.0, 470.0)
    for n in "ab":
        assert "handed to node" in nodes[n].output


def test_a_player_whose_node_is_killed_plays_on_elsewhere(start_node: Any,
                                                         tmp_path: Path) -> None:
    nodes = start(start_node, tmp_path)
    doors = {n: p.port for n, p in nodes.items()}
    # A player on c looks over the border into b's land, where the walker stops:
    # c holds a mirror of the walker, the cluster's last word on where it is.
    watcher = Player("watcher", doors, "c")
    watcher.walk(700.0, 560.0)
    assert watcher.node == "c"
    walker = Player("walker", doors, "a")
    walker.walk(700.0, 460.0)            # b's land
    assert walker.node == "b"
    last = (walker.x, walker.y)
    token = walker.token
    # The cluster knows where the walker stands: c's player sees it there.
    watch = Watch()

    def seen_there() -> bool:
        watch.read(watcher.client.drain(0.1), "walker")
        if not watch.positions:
            return False
        x, y = watch.positions[-1]
        return abs(x - last[0]) < 0.01 and abs(y - last[1]) < 0.01

    wait_until(seen_there, timeout=10, what="the watcher on c seeing the walker stop")
    nodes["b"].signal(signal.SIGKILL)
    killed = time.monotonic()
    walker.client.wait_closed()
    back: m.EnterWorld | None = None
    state = {"token": token}

    def resumed() -> bool:
        nonlocal back
        c = WireClient(doors["c"])
        c.send(m.Hello(m.PROTOCOL_VERSION, "test"), m.Resume(state["token"]))  # type: ignore[arg-type]
        msg = c.expect((m.EnterWorld, m.Redirect, m.Error), timeout=5)
        if isinstance(msg, m.EnterWorld):
            back = msg
            return True
        # Not yet: c still counts b among the live nodes, and sends it there.
        assert isinstance(msg, m.Redirect) and msg.port == doors["b"], msg
        state["token"] = msg.token
        c.close()
        return False

    wait_until(resumed, timeout=10, interval=0.1, what="the walker back in the world")
    took = time.monotonic() - killed
    assert back is not None
    expiry = 3 * 0.5
    assert took <= expiry + 2.0, took
    assert abs(back.x - last[0]) <= STEP and abs(back.y - last[1]) <= STEP, (back, last)
    assert back.node_id in ("a", "c")
