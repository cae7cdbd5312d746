"""
Game extensions in real ``twistd -n mmo`` nodes: extensions found on
``PYTHONPATH`` the way a game's own distribution installs them, NPCs seen
moving, and replicated to a player on a second node.  Every wait has a
deadline.
"""

from __future__ import annotations

import os
import secrets
import textwrap
from pathlib import Path

import pytest
from support import WireClient, cluster_args, wait_until

from mmo.wire import messages as m

REPO = Path(__file__).resolve().parent.parent

PROBE = '''
from twisted.logger import Logger
from zope.interface import implementer

from mmo.extensions import Extension, IExtension


@implementer(IExtension)
class Probe(Extension):
    """Logs each hook it gets, so that the test can read them in the node's log."""

    name = "probe"
    commands = {"probe": "say that the probe runs"}
    log = Logger()

    def login(self, player):
        self.log.info("probe: login {name}", name=player.name)

    def logout(self, player):
        self.log.info("probe: logout {name}", name=player.name)

    def moved(self, player):
        self.log.info("probe: moved {name}", name=player.name)

    def command(self, player, name, args):
        player.tell(f"probe ok {args}")

    def tick(self, number):
        if number == 5:
            self.log.info("probe: tick {n}", n=number)


@implementer(IExtension)
class Broken(Extension):
    """Every tick raises."""

    name = "broken"

    def tick(self, number):
        raise RuntimeError(f"broken on purpose in tick {number}")
'''

DROPIN = '''
from mmo.extensions import ExtensionMaker

greeter = ExtensionMaker("greeter", "greeter:Greeter", "The EXTENDING.md example.")
probe = ExtensionMaker("probe", "probe_ext:Probe", "Logs its hooks.")
broken = ExtensionMaker("broken", "probe_ext:Broken", "Fails every tick.")
'''


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    """A game's own directory on PYTHONPATH, laid out as docs/EXTENDING.md says."""
    root = tmp_path / "site"
    (root / "mmo" / "plugins").mkdir(parents=True)
    (root / "mmo" / "plugins" / "testgame.py").write_text(DROPIN)
    (root / "probe_ext.py").write_text(textwrap.dedent(PROBE))
    doc = (REPO / "docs" / "EXTENDING.md").read_text()
    example = next(b.split("```", 1)[0] for b in doc.split("```python\n")[1:]
                   if "class Greeter" in b)
    (root / "greeter.py").write_text(example)
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def system_line(client: WireClient, text: str, timeout: float = 5.0) -> str:
    msg = client.expect(m.ChatMessage, lambda c: c.channel == m.Channel.SYSTEM, timeout)
    assert msg.text == text
    return msg.text


def test_an_extension_enabled_in_the_config_runs_its_hooks(start_node, site, tmp_path):
    config = tmp_path / "mmo.toml"
    config.write_text('extension = ["commands", "greeter", "probe"]\n')
    node = start_node("--config", str(config), "--no-cluster", env=site)
    node.wait_for(r"extension greeter enabled")
    alice = WireClient(node.port)
    enter = alice.login("alice")
    system_line(alice, "welcome, alice!")
    node.wait_for(r"probe: login alice")
    alice.send(m.Move(1, enter.x + 1, enter.y))
    node.wait_for(r"probe: moved alice")
    node.wait_for(r"probe: tick 5")
    alice.send(m.Chat(m.Channel.SAY, "/visits"))
    system_line(alice, "you have logged in 1 time")
    alice.send(m.Chat(m.Channel.SAY, "/probe  now "))
    system_line(alice, "probe ok now")
    alice.send(m.Chat(m.Channel.SAY, "/who"))
    reply = alice.expect(m.ChatMessage, lambda c: c.channel == m.Channel.SYSTEM)
    assert reply.text.startswith("1 player online: alice (world, ")
    alice.send(m.Bye())
    alice.wait_closed()
    node.wait_for(r"probe: logout alice")
    # The record the greeter keeps was saved with the player and comes back.
    def back() -> bool:
        again = WireClient(node.port)
        again.login("alice")
        msg = again.expect(m.ChatMessage, lambda c: c.channel == m.Channel.SYSTEM)
        again.close()
        return msg.text == "welcome back, alice!"
    wait_until(back, 10, interval=0.2, what="the greeter's record restored at login")


def test_a_failing_hook_is_logged_once_per_burst_and_the_node_keeps_ticking(
        start_node, site):
    node = start_node("--extension", "commands", "--extension", "broken",
                      "--extension", "npcs", "--zone", "small:300x300",
                      "--npcs", "small:20", "--tick-hz", "20", "--no-cluster", env=site)
    alice = WireClient(node.port)
    alice.login("alice")
    first = alice.expect(m.Tick).tick
    last = alice.expect(m.Tick, lambda t: t.tick >= first + 40, timeout=10).tick
    assert last >= first + 40
    failed = "extension broken failed in its tick hook"
    assert node.output.count(failed) == 1, node.output[-3000:]
    assert node.output.count("RuntimeError: broken on purpose in tick") == 1
    # Everything else goes on: other extensions, the NPCs, the player.
    alice.send(m.Chat(m.Channel.SAY, "/zones"))
    system_line(alice, "zones: small 300x300 (1 player)")
    alice.expect(m.Moves, timeout=5)


def test_npcs_move_for_a_player_and_replicate_to_another_node(start_node, tmp_path):
    key = tmp_path / "cluster.key"
    key.write_text(secrets.token_hex(32) + "\n")
    args = [*cluster_args(), "--cluster-key-file", str(key), "--zone", "small:300x300",
            "--keyframe-interval", "0.5", "--heartbeat-interval", "0.5"]
    a = start_node(*args, "--node-id", "node-a", "--npcs", "small:50", name="a")
    b = start_node(*args, "--node-id", "node-b", name="b")
    for node in (a, b):
        node.wait_for(r"cluster: node node-[ab] appeared", 10)

    def update(client: WireClient, seen: dict[int, list]) -> None:
        """``seen``: entity id -> [name, kind, x, y, moves seen]"""
        for msg in client.drain(0.1):
            if isinstance(msg, m.Enter):
                for e in msg.entities:
                    seen[e.entity_id] = [e.name, e.kind, e.x, e.y, 0]
            elif isinstance(msg, m.Leave):
                for eid in msg.entity_ids:
                    seen.pop(eid, None)
            elif isinstance(msg, m.Moves):
                for eid, x, y in msg.moves:
                    if eid in seen:
                        s = seen[eid]
                        s[2:] = [x, y, s[4] + 1]

    def npcs(seen: dict[int, list]) -> dict[str, list]:
        return {s[0]: s for s in seen.values() if s[1] == m.Kind.NPC}

    alice, bob = WireClient(a.port), WireClient(b.port)
    alice.login("alice")
    bob.login("bob")
    on_a: dict[int, list] = {}
    on_b: dict[int, list] = {}

    def all_seen_moving() -> bool:
        update(alice, on_a)
        update(bob, on_b)
        here, there = npcs(on_a), npcs(on_b)
        return (len(here) == 50 and set(there) == set(here)
                and sum(1 for s in here.values() if s[4] >= 3) >= 25
                and sum(1 for s in there.values() if s[4] >= 3) >= 25)

    wait_until(all_seen_moving, 15, interval=0.01,
               what="alice on node a and bob on node b see the same 50 NPCs move")
    # Bob's copies are where node a's NPCs are (within the last moments' walk).
    here, there = npcs(on_a), npcs(on_b)
    close = [n for n in here if abs(here[n][2] - there[n][2]) <= 30
             and abs(here[n][3] - there[n][3]) <= 30]
    assert len(close) >= 45, (here, there)
