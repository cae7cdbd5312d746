from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from postgres import postgresql_db, postgresql_url  # noqa: F401  (fixtures)
from redis_server import redis_server, redis_servers  # noqa: F401  (fixtures)
from support import NodeProcess


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Any]:
    """Start real ``twistd -n mmo`` nodes; every one is stopped at the end."""
    started: list[NodeProcess] = []

    def start(*args: str, name: str = "node", env: dict[str, str] | None = None) -> NodeProcess:
        node = NodeProcess(tmp_path / name, *args, name=name, env=env)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def reactor() -> Iterator[Any]:
    """A reactor of this test's own (never installed, never run: iterated)."""
    from twisted.internet.selectreactor import SelectReactor

    r = SelectReactor()
    yield r
    for _ in range(3):
        r.iterate(0)  # closes the ports that stopped listening
    r.disconnectAll()
    for reader in list(r._internalReaders):
        r.removeReader(reader)
        reader.connectionLost(None)
    r._internalReaders.clear()
