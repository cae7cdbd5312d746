"""
Accounts and player state through the real door: ``twistd -n mmo`` nodes,
real sockets on 127.0.0.1, SQLite files and a real PostgreSQL server.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from support import WireClient, wait_until
from twisted.internet.task import Clock

from mmo.store import SQLITE, Database, DatabaseAccountStore, InlinePool
from mmo.store.db import prepare
from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode


def node_args(db: str, node_id: str, *extra: str) -> tuple[str, ...]:
    return ("--db", db, "--node-id", node_id, *extra)


def walk(client: WireClient, x: float, y: float, seq: int = 1) -> tuple[float, float]:
    """
    Step to ``(x, y)`` (less than a unit away: a step right after login has
    no speed budget yet) and know the node applied it (the Pong comes after).
    """
    client.send(m.Move(seq, x, y), m.Ping(seq, 0.0))
    client.expect(m.Pong, lambda p: p.token == seq)
    assert not [c for c in client.inbox if isinstance(c, m.Correction)]
    return x, y


def near(a: tuple[float, float] | None, b: tuple[float, float]) -> bool:
    # Positions travel as 32-bit floats.
    return a is not None and abs(a[0] - b[0]) < 1e-3 and abs(a[1] - b[1]) < 1e-3


def log_out(client: WireClient) -> None:
    client.send(m.Bye())
    client.wait_closed()
    client.close()


def saved_position(path: Path, name: str) -> tuple[float, float] | None:
    with sqlite3.connect(path, timeout=5) as conn:
        row = conn.execute("SELECT x, y FROM player_state WHERE name = ?", (name,)).fetchone()
    conn.close()
    return None if row is None else (row[0], row[1])


def error_of(client: WireClient) -> m.Error:
    err = client.expect(m.Error)
    client.wait_closed()
    client.close()
    return err


def test_position_survives_a_restart(start_node: Any, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'mmo.sqlite3'}"
    node = start_node(*node_args(db, "n1"), name="first")
    alice = WireClient(node.port)
    spawn = alice.login("alice", "secret")
    last = walk(alice, spawn.x + 0.5, spawn.y + 0.25)
    log_out(alice)
    node.stop()
    assert node.proc.returncode == 0
    node = start_node(*node_args(db, "n1"), name="second")
    again = WireClient(node.port)
    enter = again.login("alice", "secret")
    assert near((enter.x, enter.y), last)
    again.close()


def test_login_errors_get_clear_error_frames(start_node: Any, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'mmo.sqlite3'}"
    node = start_node(*node_args(db, "n1", "--login-failures-per-name", "3"))
    WireClient(node.port).login("alice", "right")
    wrong = WireClient(node.port)
    wrong.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login("alice", "wrong"))
    err = error_of(wrong)
    assert err.code == ErrorCode.AUTH_FAILED and "wrong name or password" in err.text
    codes = []
    for _ in range(4):
        c = WireClient(node.port)
        c.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login("alice", "guess"))
        err = error_of(c)
        codes.append(err.code)
    assert codes == [ErrorCode.AUTH_FAILED] * 2 + [ErrorCode.RATE_LIMITED] * 2
    assert "too many failed logins" in err.text and "try again in" in err.text


def test_unknown_name_with_registration_closed(start_node: Any, tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'mmo.sqlite3'}"
    node = start_node(*node_args(db, "n1", "--no-open-registration"))
    c = WireClient(node.port)
    c.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login("stranger", "pw"))
    err = error_of(c)
    assert err.code == ErrorCode.REGISTRATION_CLOSED and "registration is closed" in err.text


def test_kill_9_loses_at_most_the_autosave_interval(start_node: Any, tmp_path: Path) -> None:
    path = tmp_path / "mmo.sqlite3"
    autosave = 0.5
    node = start_node(*node_args(f"sqlite:{path}", "n1", "--autosave", str(autosave)))
    alice = WireClient(node.port)
    spawn = alice.login("alice", "secret")
    walk(alice, spawn.x + 0.5, spawn.y, seq=1)
    last = walk(alice, spawn.x + 0.5, spawn.y + 0.5, seq=2)
    moved_at = time.monotonic()
    wait_until(lambda: near(saved_position(path, "alice"), last), timeout=10,
               what="autosave of the last move")
    assert time.monotonic() - moved_at < autosave + 1.0
    node.signal(signal.SIGKILL)
    node.wait()
    alice.close()
    # The same node id again: the claims of its killed run are dropped.
    node = start_node(*node_args(f"sqlite:{path}", "n1"), name="restarted")
    enter = WireClient(node.port).login("alice", "secret")
    assert near((enter.x, enter.y), last)


def populate(path: Path, count: int) -> list[tuple[str, float, float]]:
    """Accounts with positions spread over the world (few players per cell)."""
    db = Database(SQLITE, str(path))
    pool = InlinePool(db)
    pool.runInteraction(prepare, SQLITE, "setup")
    store = DatabaseAccountStore(pool, SQLITE, "setup", Clock(), iterations=1000)
    players = [(f"bot{i}", 25.0 + (i % 40) * 49.0, 25.0 + (i // 40) * 78.0)
               for i in range(count)]
    for name, _x, _y in players:
        store.authenticate(name, "pw", True)
    store.save_states({n: {"zone": "world", "x": x, "y": y, "data": {}} for n, x, y in players})
    store.writer._write()
    store.leave()
    assert store.writer.saved == count
    pool.close()
    return players


def test_sigterm_with_1000_players_saves_every_last_position(
        start_node: Any, tmp_path: Path) -> None:
    path = tmp_path / "mmo.sqlite3"
    players = populate(path, 1000)
    node = start_node(*node_args(f"sqlite:{path}", "n1", "--max-per-ip", "0",
                                 "--autosave", "3600", "--login-timeout", "60"))
    clients = [WireClient(node.port, timeout=30) for _ in players]
    for c, (name, _x, _y) in zip(clients, players, strict=True):
        c.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login(name, "pw"))
    for c, (_name, x, y) in zip(clients, players, strict=True):
        enter = c.expect(m.EnterWorld, timeout=60)
        assert near((enter.x, enter.y), (x, y))
    # Each takes one last step (to a spot no save has seen), then the Pong.
    for c, (_name, x, y) in zip(clients, players, strict=True):
        c.send(m.Move(1, x + 0.5, y + 0.25), m.Ping(1, 0.0))
    for c in clients:
        c.expect(m.Pong, timeout=30)
    started = time.monotonic()
    node.signal(signal.SIGTERM)
    assert node.wait(60) == 0
    elapsed = time.monotonic() - started
    for c in clients:
        c.close()
    with sqlite3.connect(path) as conn:
        rows = dict(((n, (x, y)) for n, x, y in
                     conn.execute("SELECT name, x, y FROM player_state")))
        online = conn.execute("SELECT count(*) FROM online").fetchone()[0]
    conn.close()
    kept = sum(near(rows.get(n), (x + 0.5, y + 0.25)) for n, x, y in players)
    assert kept == 1000, f"{1000 - kept} players lost their last position"
    assert online == 0
    assert "shutdown: 1000 player states saved, 0 unsaved" in node.output
    print(f"SIGTERM with 1000 players: node exited in {elapsed:.2f}s, all saved")


def test_two_nodes_on_one_postgresql(start_node: Any, postgresql_db: str) -> None:
    a = start_node(*node_args(postgresql_db, "node-a"), name="a")
    b = start_node(*node_args(postgresql_db, "node-b"), name="b")
    alice = WireClient(a.port)
    spawn = alice.login("alice", "secret")
    last = walk(alice, spawn.x - 0.5, spawn.y + 0.5)
    # While alice plays on A, B refuses her name.
    c = WireClient(b.port)
    c.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login("alice", "secret"))
    err = error_of(c)
    assert err.code == ErrorCode.NAME_IN_USE and "node-a" in err.text
    log_out(alice)

    def enter_on_b() -> m.EnterWorld | None:
        # The logout's save (and release of the name) may still be committing.
        client = WireClient(b.port)
        client.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login("alice", "secret"))
        msg = client.expect((m.EnterWorld, m.Error))
        client.close()
        if isinstance(msg, m.Error):
            assert msg.code == ErrorCode.NAME_IN_USE, msg
            return None
        return msg

    enter = wait_until(enter_on_b, timeout=10, interval=0.05, what="login on node B")
    assert near((enter.x, enter.y), last)


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_an_unusable_database_stops_the_start_with_one_line(
        tmp_path: Path, where: str) -> None:
    from support import TWISTD, Process

    db = (f"sqlite:{tmp_path}/no/such/dir/x.sqlite3" if where == "sqlite"
          else "postgresql://mmo@127.0.0.1:1/none")
    p = Process([TWISTD, "-n", "--pidfile=", "mmo", "--listen", "tcp:0:interface=127.0.0.1",
                 "--http", "none", "--no-cluster", "--db", db], tmp_path, "bad")
    code = p.wait(30)
    p.stop()
    assert code != 0 and "mmo: cannot use database" in p.output
