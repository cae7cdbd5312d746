"""
The Redis transport against a real ``redis-server`` on 127.0.0.1: channels,
binary datagrams, clusters kept apart, a server that goes away and comes
back, one that stops answering, a password and TLS.  Every transport runs
on a reactor of the test's own, iterated with a deadline.
"""

from __future__ import annotations

import datetime
import random
import ssl
from pathlib import Path
from typing import Any

import pytest
from support import Inbox, spin
from zope.interface.verify import verifyObject

from mmo.config import ConfigError, parse_redis_url
from mmo.interfaces import IClusterTransport, INumbers

redis = pytest.importorskip("mmo.cluster.redis", reason="pip install 'mmo[redis]'")

CONTROL = "239.255.0.1"
CELLS = ["239.255.0.2", "239.255.0.3"]


def transport(reactor: Any, url: str, name: str = "test", **kw: Any) -> Any:
    t = redis.RedisTransport(reactor, parse_redis_url(url),
                             redis.channel_names(name, CONTROL, CELLS), name,
                             rng=random.Random(1), **kw)
    return t


def started(reactor: Any, *transports: Any) -> list[Inbox]:
    inboxes = [Inbox() for _ in transports]
    for t, inbox in zip(transports, inboxes, strict=True):
        t.start(inbox)
        t.join(CONTROL)
    spin(reactor, lambda: all(t.up for t in transports), what="connected transports")
    return inboxes


@pytest.fixture
def stop_after(reactor: Any) -> Any:
    """Transports given to it are stopped at the end of the test."""
    them: list[Any] = []
    yield them.append
    stopped: list[Any] = []
    for t in them:
        t.stop().addBoth(stopped.append)
    spin(reactor, lambda: len(stopped) == len(them), what="the transports to stop")


def test_channels_joins_leaves_and_binary_datagrams(redis_server, reactor, stop_after):
    a, b = transport(reactor, redis_server.url), transport(reactor, redis_server.url)
    for t in (a, b):
        verifyObject(IClusterTransport, t)
        verifyObject(INumbers, t)
        stop_after(t)
    assert a.trouble() == "the Redis transport is not started"
    got_a, got_b = started(reactor, a, b)
    assert a.trouble() is None and b.trouble() is None
    for t in (a, b):
        t.join(CELLS[1])
    watcher = redis_server.client()
    try:
        spin(reactor, lambda: sorted(watcher.command("PUBSUB", "CHANNELS", "test:*"))
             == [b"test:cell:1", b"test:control"], what="both channels subscribed")
        assert dict(zip(*[iter(watcher.command("PUBSUB", "NUMSUB", "test:cell:1"))] * 2,
                        strict=True)) == {b"test:cell:1": 2}
    finally:
        watcher.close()
    # Every byte value, CR LF and NUL included, arrives as it was sent.
    payload = bytes(range(256)) + b"\r\n$3\r\n*1\r\n\x00" * 40
    assert a.send(CELLS[1], payload)
    spin(reactor, lambda: got_b.data, what="the datagram on b")
    assert got_b.got == [(payload, "redis test:cell:1")]
    spin(reactor, lambda: got_a.data, what="a's own datagram")  # Redis loops it back
    assert got_a.data == [payload]
    b.leave(CELLS[1])
    b.leave(CELLS[1])  # twice: nothing more
    watcher = redis_server.client()
    try:
        spin(reactor, lambda: watcher.command("PUBSUB", "NUMSUB", "test:cell:1")[1] == 1,
             what="b's channel left")
    finally:
        watcher.close()
    assert a.send(CELLS[1], b"one") and a.send(CONTROL, b"two")
    spin(reactor, lambda: len(got_a.data) == 3 and b"two" in got_b.data, what="a's datagrams")
    assert got_b.data == [payload, b"two"]  # not b"one": b left that channel
    assert a.numbers() == {"transport_outages": 0, "transport_backlog": 0,
                           "transport_overflows": 0, "transport_errors": 0}


def test_cluster_names_keep_clusters_apart_on_one_redis(redis_server, reactor, stop_after):
    blue1, blue2 = (transport(reactor, redis_server.url, "blue") for _ in range(2))
    green = transport(reactor, redis_server.url, "green")
    for t in (blue1, blue2, green):
        stop_after(t)
    got_blue1, got_blue2, got_green = started(reactor, blue1, blue2, green)
    blue1.send(CONTROL, b"for blue")
    green.send(CONTROL, b"for green")
    spin(reactor, lambda: got_blue2.data and len(got_green.data) == 1 and len(got_blue1.data) == 1,
         what="each cluster's datagrams")
    for _ in range(10):
        reactor.iterate(0.01)
    assert got_blue2.data == [b"for blue"] and got_blue1.data == [b"for blue"]
    assert got_green.data == [b"for green"]


def test_a_redis_restart_drops_sends_reconnects_with_backoff_and_subscribes_again(
        redis_servers, reactor, stop_after):
    server = redis_servers()
    delays: list[float] = []
    a = transport(reactor, server.url, retry_max=0.4)
    b = transport(reactor, server.url, retry_max=0.4)
    record = a.publisher.delay
    a.publisher.delay = lambda n: delays.append(record(n)) or delays[-1]
    told = {a: 0, b: 0}
    inboxes = {a: Inbox(), b: Inbox()}
    for t in (a, b):
        stop_after(t)
        t.start(inboxes[t], lambda t=t: told.__setitem__(t, told[t] + 1))
        t.join(CONTROL)
        t.join(CELLS[0])
    spin(reactor, lambda: a.up and b.up, what="connected transports")
    assert told == {a: 1, b: 1}  # the first connection, after start
    server.stop()
    spin(reactor, lambda: not a.up and not b.up, what="both to see Redis gone")
    assert not a.send(CELLS[0], b"lost")  # dropped at once, nothing queued
    assert "no connection to Redis at redis://127.0.0.1" in a.trouble()
    spin(reactor, lambda: len(delays) >= 6, timeout=10, what="six attempts")
    # Growing (±20 %) from 0.05 s, doubling, up to the cap.
    for n, d in enumerate(delays[:6], start=1):
        assert 0.8 * min(0.4, 0.05 * 2 ** (n - 1)) <= d <= 1.2 * min(0.4, 0.05 * 2 ** (n - 1))
    assert a.numbers()["transport_outages"] == 1
    server.start()
    spin(reactor, lambda: a.up and b.up, timeout=5, what="both back")
    assert told == {a: 2, b: 2} and a.trouble() is None
    # Subscribed again: datagrams flow both ways on the cell's channel.
    a.send(CELLS[0], b"after")
    spin(reactor, lambda: b"after" in inboxes[b].data, what="a datagram after the restart")
    assert b"lost" not in inboxes[b].data


def test_a_redis_that_stops_answering_is_left_and_found_again(
        redis_servers, reactor, stop_after, monkeypatch):
    monkeypatch.setattr(redis, "KEEPALIVE", 0.05)
    monkeypatch.setattr("mmo.cluster.redis_link.PING_TIMEOUT", 0.3)
    server = redis_servers()
    a = transport(reactor, server.url, retry_max=0.2)
    stop_after(a)
    started(reactor, a)
    server.pause()  # the connection stays open, and nothing answers
    try:
        spin(reactor, lambda: not a.up, timeout=3, what="the silent server to be left")
        assert "no answer to PING" in a.trouble()
    finally:
        server.resume()
    spin(reactor, lambda: a.up, timeout=5, what="the server found again")


def test_publishes_waiting_for_redis_are_bounded(redis_server, reactor, stop_after):
    a = transport(reactor, redis_server.url, max_backlog=3)
    stop_after(a)
    started(reactor, a)
    sent = [a.send(CONTROL, b"x") for _ in range(10)]  # no reactor turn: no answer yet
    assert sent == [True] * 3 + [False] * 7
    assert a.numbers()["transport_overflows"] == 7
    assert a.numbers()["transport_backlog"] == 3
    spin(reactor, lambda: a.numbers()["transport_backlog"] == 0, what="the answers")
    assert a.send(CONTROL, b"x")


def test_commands_redis_refuses_are_counted(redis_server, reactor, stop_after):
    admin = redis_server.client()
    try:  # a user that may subscribe but not publish
        admin.command("ACL", "SETUSER", "nopub", "on", ">pw", "&*", "+@all", "-publish")
    finally:
        admin.close()
    url = redis_server.url.replace("redis://", "redis://nopub@")
    a = transport(reactor, url, password="pw")
    stop_after(a)
    started(reactor, a)
    assert a.send(CONTROL, b"x") and a.send(CONTROL, b"y")
    spin(reactor, lambda: a.numbers()["transport_errors"] == 2, what="the refusals counted")
    assert a.up  # refused commands do not cut the connection


def test_redis_urls_and_settings():
    assert parse_redis_url("redis://cache") == redis.RedisAddress("cache", 6379, 0, False, "")
    assert str(parse_redis_url("rediss://mmo@[::1]:7000/3")) == "rediss://mmo@[::1]:7000/3"
    for bad, why in [("http://x", "redis:// or rediss://"), ("redis://:pw@x", "password"),
                     ("redis://u:pw@x/0", "password"), ("redis:///0", "no host"),
                     ("redis://x/db", "number"), ("redis://x:99999", "Redis URL"),
                     ("redis://x/0?timeout=1", "options")]:
        with pytest.raises(ValueError, match=why):
            parse_redis_url(bad)
    from mmo.testing import node_settings

    s = node_settings(redis="redis://127.0.0.1:6390/2", cluster_name="blue").cluster
    assert s.redis_address == redis.RedisAddress("127.0.0.1", 6390, 2, False, "")
    assert node_settings().cluster.redis_address is None
    with pytest.raises(ConfigError, match="--redis-password-file needs --redis"):
        node_settings(redis_password_file="pw")
    with pytest.raises(ConfigError, match="rediss://"):
        node_settings(redis="redis://x", redis_ca_file="ca.pem")
    with pytest.raises(ConfigError, match="cluster name"):
        node_settings(cluster_name="two words")


def test_a_missing_password_file_stops_the_start_with_a_sentence(tmp_path):
    from mmo.cluster.service import ClusterService
    from mmo.testing import make_node

    node = make_node(redis="redis://127.0.0.1:1/0",
                     redis_password_file=str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="mmo: cannot read --redis-password-file .*missing"):
        ClusterService(node, node.settings.cluster, object())


def test_without_txredisapi_a_redis_node_stops_with_a_sentence(monkeypatch):
    import sys

    from mmo.cluster.service import ClusterService
    from mmo.testing import make_node

    node = make_node(redis="redis://127.0.0.1:1/0")
    monkeypatch.setitem(sys.modules, "txredisapi", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "mmo.cluster.redis")
    monkeypatch.delitem(sys.modules, "mmo.cluster.redis_link")
    with pytest.raises(SystemExit, match=r"--redis needs txredisapi \(pip install 'mmo\[redis\]'\)"):
        ClusterService(node, node.settings.cluster, object())


# -- a password and TLS --------------------------------------------------------------


def certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def make(subject: str, issuer: Any, key: Any, sign_key: Any, ca: bool) -> Any:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            import ipaddress

            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return b.sign(sign_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mmo test CA")])
    ca = make("mmo test CA", ca_name, ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make("127.0.0.1", ca_name, key, ca_key, False)
    pem = serialization.Encoding.PEM
    paths = where / "ca.pem", where / "cert.pem", where / "key.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_tls_and_a_password_from_a_file(redis_servers, reactor, stop_after, tmp_path):
    ca, cert, key = certificates(tmp_path)
    client_tls = ssl.create_default_context(cafile=str(ca))
    server = redis_servers("--tls-cert-file", str(cert), "--tls-key-file", str(key),
                           "--tls-auth-clients", "no", "--requirepass", "s3cret",
                           tls=client_tls)
    assert server.url.startswith("rediss://")
    from mmo.cluster.service import ClusterService
    from mmo.testing import make_node

    (tmp_path / "pw").write_text("s3cret\n")
    node = make_node(redis=server.url, redis_password_file=str(tmp_path / "pw"),
                     redis_ca_file=str(ca), cluster_name="tls")
    good = ClusterService(node, node.settings.cluster, reactor).transport
    stop_after(good)
    wrong = transport(reactor, server.url, "tls", password="wrong", ca_pem=ca.read_bytes())
    stop_after(wrong)
    untrusted = transport(reactor, server.url, "tls", password="s3cret")
    stop_after(untrusted)
    got = Inbox()
    good.start(got)
    good.join(CONTROL)
    wrong.start(Inbox())
    untrusted.start(Inbox())
    spin(reactor, lambda: good.up, what="the TLS connection with the password")
    spin(reactor, lambda: "auth" in (wrong.trouble() or "").lower()
         and "certificate" in (untrusted.trouble() or "").lower(),
         what="the wrong password and the unknown CA refused")
    assert good.send(CONTROL, b"\x00secret\xff")
    spin(reactor, lambda: got.data, what="a datagram over TLS")
    assert got.data == [b"\x00secret\xff"] and not wrong.up and not untrusted.up
