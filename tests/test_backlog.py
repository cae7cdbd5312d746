"""
The listen backlog: sized for login storms, applied to the player
endpoints, and 2,000 connections opened at once against a real node.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_until
from twisted.internet.testing import MemoryReactorClock

from mmo.app.service import NodeService
from mmo.config import endpoint_fields, with_backlog
from mmo.testing import node_settings
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder


def test_with_backlog_adds_one_where_it_applies() -> None:
    assert with_backlog("tcp:4000", 4096) == "tcp:4000:backlog=4096"
    assert with_backlog("tcp:0:interface=127.0.0.1", 9) == "tcp:0:interface=127.0.0.1:backlog=9"
    assert with_backlog("TCP6:4000", 9) == "TCP6:4000:backlog=9"
    assert with_backlog("unix:/run/mmo.sock", 9) == "unix:/run/mmo.sock:backlog=9"
    ssl = "ssl:4443:privateKey=key.pem:certKey=cert.pem"
    assert with_backlog(ssl, 9) == ssl + ":backlog=9"
    # Its own backlog wins; endpoints that take none are left alone.
    assert with_backlog("tcp:4000:backlog=10", 9) == "tcp:4000:backlog=10"
    assert with_backlog("ssl:4443:backlog = 10:privateKey=k.pem", 9) == \
        "ssl:4443:backlog = 10:privateKey=k.pem"
    assert with_backlog("systemd:domain=INET:index=0", 9) == "systemd:domain=INET:index=0"
    # An escaped colon is part of a value, not a separator.
    assert endpoint_fields(r"unix:/tmp/a\:backlog=1") == ["unix", r"/tmp/a\:backlog=1"]
    assert with_backlog(r"unix:/tmp/a\:backlog=1", 9) == r"unix:/tmp/a\:backlog=1:backlog=9"


def listened(tmp_path: Path, **overrides: object) -> list[tuple[int, int]]:
    """``(port, backlog)`` of each player listener a node service opens."""
    settings = node_settings(data_dir=str(tmp_path / "data"), http="none", cluster=False,
                             **overrides)
    reactor = MemoryReactorClock()
    service = NodeService(settings, reactor)
    service.startService()
    try:
        return [(port, backlog) for port, _f, backlog, _i in reactor.tcpServers]
    finally:
        service.stopService()
        reactor.advance(10.0)


def test_the_player_listeners_get_the_backlog(tmp_path: Path) -> None:
    assert listened(tmp_path / "a", tcp=4100) == [(4100, 4096)]
    assert listened(tmp_path / "b", tcp=4100, listen_backlog=20000) == [(4100, 20000)]
    assert listened(tmp_path / "c", listen=["tcp:4200", "tcp:4201:backlog=7"],
                    listen_backlog=64) == [(4200, 64), (4201, 7)]


STORM = 2000


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


@pytest.fixture
def enough_descriptors() -> Iterator[None]:
    """Descriptors for the storm here and in the node (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = STORM + 512
    if soft >= wanted:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_login_storm_waits_in_the_backlog_then_times_out(
        enough_descriptors: None, start_node) -> None:
    # With Twisted's default backlog of 50 some of these connections never
    # reach the node: the kernel drops them from a full accept queue (the
    # client believes it is connected) and they time out here.
    node = start_node("--max-per-ip", "0", "--login-timeout", "5", "--no-cluster")
    hello = m.Hello(m.PROTOCOL_VERSION, "storm").encode()
    selector = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    decoders = [FrameDecoder.for_client() for _ in range(STORM)]
    started = time.monotonic()
    connected: dict[int, float] = {}
    welcomed: set[int] = set()
    timed_out: set[int] = set()
    closed: set[int] = set()
    failed: dict[int, str] = {}
    try:
        # Every connection asked for at once, none waited for.
        for i in range(STORM):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            err = s.connect_ex(("127.0.0.1", node.port))
            assert err in (0, errno.EINPROGRESS), errno.errorcode.get(err, err)
            selector.register(s, selectors.EVENT_WRITE, i)
        peak = 0.0
        # 5 s of login timeout, its sweep, and room for a busy machine.
        deadline = started + 30.0
        while len(closed) + len(failed) < STORM:
            assert time.monotonic() < deadline, (
                f"after 30 s: {len(connected)} connected, {len(welcomed)} welcomed, "
                f"{len(timed_out)} timed out, {len(closed)} closed, failed {failed}")
            for key, _events in selector.select(timeout=0.5):
                i, s = key.data, key.fileobj
                assert isinstance(s, socket.socket)
                if i not in connected:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        failed[i] = errno.errorcode.get(err, str(err))
                        selector.unregister(s)
                        continue
                    connected[i] = time.monotonic() - started
                    s.sendall(hello)
                    selector.modify(s, selectors.EVENT_READ, i)
                    continue
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed.add(i)
                    selector.unregister(s)
                    continue
                for msg in decoders[i].feed(data):
                    if isinstance(msg, m.Welcome):
                        welcomed.add(i)
                    elif isinstance(msg, m.Error) and msg.code == m.ErrorCode.LOGIN_TIMEOUT:
                        timed_out.add(i)
            if len(welcomed) == STORM and not peak:
                # All in at once: the node counts every one of them.
                peak = metric(node.http_port, "mmo_connections")
        assert not failed
        assert len(connected) == len(welcomed) == STORM
        assert peak == STORM
        # Then each was closed for not logging in, as documented.
        assert len(timed_out) == len(closed) == STORM
        assert wait_until(lambda: metric(node.http_port, "mmo_connections") == 0, 10,
                          what="every connection gone")
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{node.http_port}/metrics", timeout=10).read().decode()
        assert f'mmo_refusals_total{{reason="login_timeout"}} {float(STORM)}' in text
        print(f"{STORM} connections: last connected after {max(connected.values()):.2f} s, "
              f"every one welcomed, timed out and closed after "
              f"{time.monotonic() - started:.1f} s")
    finally:
        selector.close()
        for s in socks:
            s.close()
