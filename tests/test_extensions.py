"""Game extensions in memory: discovery, hooks, isolation, chat commands, NPCs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.plugin import IPlugin, getPlugins
from zope.interface.verify import verifyObject

import mmo.plugins
from mmo.app.tap import SCHEMA as NODE_SCHEMA
from mmo.config import ConfigError
from mmo.extensions import IExtension, IExtensionMaker
from mmo.plugins import find_makers
from mmo.plugins.game.commands import ChatCommands
from mmo.plugins.game.npcs import Wanderers, parse_npcs
from mmo.server.extensions import BURST_GAP, ExtensionHost
from mmo.testing import (
    FakeCluster,
    FakePlayer,
    RecordingExtension,
    extension_node,
    make_node,
    node_settings,
    node_values,
    run_ticks,
)
from mmo.wire import messages as m

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def log_events():
    """Every log event emitted during the test."""
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def failures_logged(events: list[dict], hook: str) -> list[dict]:
    return [e for e in events if "log_failure" in e and e.get("hook") == hook]


# -- discovery ------------------------------------------------------------------


def test_get_plugins_finds_the_built_in_extensions():
    found = {p.name: p for p in getPlugins(IExtensionMaker, mmo.plugins)}
    assert {"commands", "npcs"} <= set(found)
    for maker in found.values():
        verifyObject(IPlugin, maker)
        verifyObject(IExtensionMaker, maker)
        verifyObject(IExtension, maker.extension(maker.configure(node_values())))
    assert set(find_makers()) == set(found)


def test_a_third_party_dropin_on_sys_path_is_found(tmp_path):
    # The layout docs/EXTENDING.md gives a game's own distribution: its code
    # in its own package, a one-line dropin in mmo/plugins/ (no __init__.py).
    (tmp_path / "mmo" / "plugins").mkdir(parents=True)
    (tmp_path / "mmo" / "plugins" / "mygame_dropin.py").write_text(textwrap.dedent("""
        from mmo.extensions import ExtensionMaker
        mygame = ExtensionMaker("mygame", "mygame_ext:Game", "A game.")
    """))
    (tmp_path / "mygame_ext.py").write_text(textwrap.dedent("""
        from mmo.extensions import Extension
        class Game(Extension):
            name = "mygame"
    """))
    code = ("from mmo.plugins import find_makers; m = find_makers(); "
            "print(sorted(m)); print(type(m['mygame'].extension()).__name__)")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["['commands', 'mygame', 'npcs']", "Game"]


def test_fakes_and_built_ins_provide_the_interface():
    for ext in (RecordingExtension(), ChatCommands(), Wanderers()):
        verifyObject(IExtension, ext)


def test_extensions_are_enabled_by_name_from_the_settings():
    node = make_node(extension=["commands"])
    assert list(node.extensions.enabled) == ["commands"]
    assert list(make_node().extensions.enabled) == ["commands", "npcs"]
    assert not make_node(extension=[]).extensions.enabled
    with pytest.raises(ConfigError, match="unknown extension 'nope'; found: commands, npcs"):
        make_node(extension=["commands", "nope"])


def test_config_checks_names_zones_and_the_npc_key():
    assert node_settings(npcs=["world:5"]).extensions["npcs"].npcs == (("world", 5),)
    with pytest.raises(ConfigError, match="unknown extension 'nope'"):
        node_settings(extension=["nope"])
    with pytest.raises(ConfigError, match="no zone named 'moon'"):
        node_settings(npcs=["moon:5"])
    with pytest.raises(ConfigError, match="needs the npcs extension"):
        node_settings(extension=["commands"], npcs=["world:5"])
    assert parse_npcs("a:b:7") == ("a:b", 7)
    for bad in ("world", ":5", "world:x", "world:-1"):
        with pytest.raises(ValueError):
            parse_npcs(bad)
    with pytest.raises(ConfigError, match="npcs"):
        NODE_SCHEMA.check("npcs", "world:many", "--npcs")


def test_two_extensions_cannot_answer_one_command():
    node = extension_node(RecordingExtension("a"))
    with pytest.raises(ValueError, match="both answer /echo"):
        node.extensions.enable(RecordingExtension("b"))
    with pytest.raises(ValueError, match="already enabled"):
        node.extensions.enable(RecordingExtension("a"))


# -- hooks ----------------------------------------------------------------------


def test_hooks_run_for_login_move_command_tick_and_logout():
    rec = RecordingExtension()
    node = extension_node(rec)
    assert rec.started and rec.game is node
    alice = FakePlayer(node, "alice")
    assert rec.hooks("login") == [("login", "alice")]
    e = alice.entity
    node.clock.advance(1)
    alice.send(m.Move(1, e.x + 10, e.y))
    alice.send(m.Move(2, e.x + 5000, e.y))  # refused: no hook
    assert rec.hooks("moved") == [("moved", "alice", e.x, e.y)]
    assert alice.command("/ECHO hello there ") == ["hello there"]
    assert rec.hooks("command") == [("command", "alice", "echo", "hello there")]
    run_ticks(node, 3)
    assert [c[1] for c in rec.hooks("tick")] == [1, 2, 3]
    alice.disconnect()
    assert rec.hooks("logout") == [("logout", "alice")]
    node.extensions.stop()
    assert rec.stopped and not node.extensions.enabled


def test_unused_hooks_are_not_called():
    node = extension_node(ChatCommands())
    assert node.extensions.hooks["tick"] == [] and node.extensions.hooks["moved"] == []
    assert [h for h in node.extensions.hooks if node.extensions.hooks[h]] == ["command"]


def test_the_player_record_is_saved_and_restored():
    class Visits(RecordingExtension):
        def login(self, player):
            record = player.record("visits")
            record["count"] = record.get("count", 0) + 1
            player.tell(f"visit {record['count']}")

        def logout(self, player):
            player.data["last_x"] = round(player.x)

    node = extension_node(Visits())
    for visit in (1, 2, 3):
        p = FakePlayer(node, "alice")
        assert p.system_lines() == [f"visit {visit}"]
        p.disconnect()
    state = node.store.accounts["alice"].state  # type: ignore[attr-defined]
    assert state["data"]["visits"] == {"count": 3}
    assert isinstance(state["data"]["last_x"], int)


def test_slash_lines_are_commands_except_in_whispers_and_after_a_double_slash():
    node = make_node()
    alice, bob = FakePlayer(node, "alice"), FakePlayer(node, "bob")
    run_ticks(node)
    bob.received()
    assert alice.command("/nope") == ["unknown command /nope; /help lists the commands"]
    node.clock.advance(1)
    alice.send(m.Chat(m.Channel.SAY, "//shrug"))
    node.clock.advance(1)
    alice.send(m.Chat(m.Channel.WHISPER, "/me waves", "bob"))
    heard = [(msg.channel, msg.text) for msg in bob.received() if isinstance(msg, m.ChatMessage)]
    assert heard == [(m.Channel.SAY, "/shrug"), (m.Channel.WHISPER, "/me waves")]


# -- failures -------------------------------------------------------------------


def test_a_failing_hook_is_logged_once_per_burst_and_the_tick_goes_on(log_events):
    broken = RecordingExtension("broken", fail=("tick", "command", "login", "moved", "logout"))
    good = RecordingExtension("good")
    good.commands = {}
    node = extension_node(broken, good)
    alice = FakePlayer(node, "alice")
    assert good.hooks("login") == [("login", "alice")]
    run_ticks(node, 50)
    assert node.tick_number == 50 and len(good.hooks("tick")) == 50
    assert len(failures_logged(log_events, "tick")) == 1
    assert node.extensions.failures[("broken", "tick")] == 50
    assert alice.command("/echo hi") == ["/echo failed; the error was logged"]
    assert len(failures_logged(log_events, "command")) == 1
    # Quiet for longer than the gap: the burst is summed up, the next failure logged.
    broken.fail.discard("tick")
    node.clock.advance(BURST_GAP + 1)
    run_ticks(node)
    quiet = {e["hook"]: e["n"] for e in log_events if "quiet again" in e.get("log_format", "")}
    assert quiet == {"login": 1, "tick": 50, "command": 1}
    broken.fail.add("tick")
    run_ticks(node, 5)
    assert len(failures_logged(log_events, "tick")) == 2
    assert node.snapshot()["extension_failures"] == node.extensions.failures.total()
    alice.disconnect()
    assert good.hooks("logout") == [("logout", "alice")]
    assert "alice" in node.store.accounts  # type: ignore[attr-defined]


# -- chat commands --------------------------------------------------------------


def test_the_built_in_commands_answer():
    node = make_node(zone=["world:2000x2000", "arena:500x500"])
    alice = FakePlayer(node, "alice")
    FakePlayer(node, "bob")
    run_ticks(node)
    alice.received()
    (help_line,) = alice.command("/help")
    for name in ("/who", "/where", "/zones", "/help"):
        assert name in help_line
    node.clock.advance(1)
    assert alice.command("/who") == [
        "2 players online: alice (world, test-node), bob (world, test-node)"]
    node.clock.advance(1)
    (where,) = alice.command("/where")
    e = alice.entity
    assert where.startswith(f"you are in zone world at ({e.x:.1f}, {e.y:.1f}), cell (")
    assert where.endswith("on node test-node; you see 1 entities")
    node.clock.advance(1)
    assert alice.command("/zones") == [
        "zones: world 2000x2000 (2 players); arena 500x500 (0 players)"]


# -- NPCs -----------------------------------------------------------------------


def npc_node(count: int = 50, **overrides):
    overrides.setdefault("zone", ["small:300x300"])
    return make_node(npcs=[f"small:{count}"], **overrides)


def test_a_player_near_50_npcs_sees_them_move():
    node = npc_node(50)
    alice = FakePlayer(node, "alice")
    run_ticks(node)
    enters = {e.entity_id: e for msg in alice.received() if isinstance(msg, m.Enter)
              for e in msg.entities}
    npcs = {eid: e for eid, e in enters.items() if e.kind == m.Kind.NPC}
    assert len(npcs) == 50 and len({e.name for e in npcs.values()}) == 50
    moved: dict[int, tuple[float, float]] = {}
    for _ in range(30):
        run_ticks(node)
        for msg in alice.received():
            if isinstance(msg, m.Moves):
                moved.update((eid, (x, y)) for eid, x, y in msg.moves if eid in npcs)
    assert len(moved) >= 25  # most walk; some rest
    assert all((x, y) != (npcs[eid].x, npcs[eid].y) for eid, (x, y) in moved.items())
    assert not node.clock.getDelayedCalls()  # one pass per tick, no timers


@settings(max_examples=30, deadline=None)
@given(width=st.floats(0.5, 400), height=st.floats(0.5, 400),
       speed=st.floats(1, 5000), seed=st.integers(0, 2**32))
def test_npcs_stay_inside_their_zone(width, height, speed, seed):
    node = make_node(zone=[f"z:{width}x{height}"], npcs=["z:20"], max_speed=speed,
                     extension=["npcs"])
    node.rng.seed(seed)
    for _ in range(40):
        node.tick()
        for e in node.world.entities.values():
            assert 0 <= e.x <= width and 0 <= e.y <= height


def test_thousands_of_npcs_cost_one_pass_and_stop_removes_them():
    node = make_node(npcs=["world:5000", "arena:500"])
    assert len(node.world.entities) == 5500
    run_ticks(node, 5)
    assert node.snapshot()["entities"] == 5500
    assert not node.clock.getDelayedCalls()
    node.extensions.stop()
    assert not node.world.entities


def test_npcs_are_replicated_to_a_player_on_another_node():
    c = FakeCluster([], zone=["small:300x300"])
    a, _ = c.add("a", npcs=["small:50"])
    b, _ = c.add("b")
    alice, bob = FakePlayer(a, "alice"), FakePlayer(b, "bob")

    def npc_positions(p: FakePlayer, node) -> dict[str, tuple[float, float]]:
        p.received()
        return {e.name: (e.x, e.y) for e in node.world.entities.values()
                if e.kind == m.Kind.NPC and e.id in p.entity.viewer.visible}

    c.step(30)
    seen_a = npc_positions(alice, a)
    seen_b = npc_positions(bob, b)
    assert len(seen_a) == 50 and set(seen_b) == set(seen_a)
    assert all(e.owner == "a" for e in b.world.entities.values() if e.kind == m.Kind.NPC)
    assert {n for n in bob.known.values() if n.startswith("npc-")} == set(seen_a)
    # The mirrors follow the owner's NPCs as they walk.
    before = dict(seen_b)
    c.step(20)
    after_a, after_b = npc_positions(alice, a), npc_positions(bob, b)
    assert after_b != before
    close = [n for n in after_a if abs(after_a[n][0] - after_b[n][0]) < 1e-3
             and abs(after_a[n][1] - after_b[n][1]) < 1e-3]
    assert len(close) == 50


def test_host_without_extensions_is_inert():
    node = make_node(extension=[])
    assert isinstance(node.extensions, ExtensionHost)
    alice = FakePlayer(node, "alice")
    run_ticks(node, 2)
    assert alice.command("/help") == ["unknown command /help; /help lists the commands"]


def test_the_worked_example_in_extending_md_runs():
    """docs/EXTENDING.md's example and its test, run as they are written."""
    text = (REPO / "docs" / "EXTENDING.md").read_text()
    blocks = [b.split("\n", 1)[1] for b in text.split("```python")[1:]]
    blocks = [b.split("```", 1)[0] for b in blocks]
    example = next(b for b in blocks if "class Greeter" in b)
    test = next(b for b in blocks if "def test_greeter" in b)
    namespace: dict = {"__name__": "extending_example"}
    exec(compile(example, "EXTENDING.md example", "exec"), namespace)
    test_ns = dict(namespace)
    exec(compile(test.replace("from greeter import Greeter\n", ""), "EXTENDING.md test",
                 "exec"), test_ns)
    test_ns["test_greeter"]()
