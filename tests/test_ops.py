"""Metrics, health and sd_notify without sockets or real time."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from mmo.app.metrics import (
    CLUSTER_METRICS,
    NODE_METRICS,
    NodeCollector,
    Spec,
    TickHistogram,
    families,
    make_registry,
    render,
)
from mmo.app.systemd import SystemdNotifier, socket_address, watchdog_usec
from mmo.app.tap import SCHEMA as NODE_SCHEMA
from mmo.app.web import cluster_snapshot, liveness, make_site, readiness, service_snapshot
from mmo.config import ConfigError
from mmo.settings import DEFAULT_HTTP
from mmo.testing import make_node

# -- sd_notify ---------------------------------------------------------------


class FakeSocket:
    """Records datagrams; raises ``error`` instead when it is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self.error: OSError | None = None

    def sendto(self, data: bytes, address: Any) -> int:
        if self.error is not None:
            raise self.error
        self.sent.append((data, address))
        return len(data)

    def close(self) -> None:
        pass


def notifier(environ: dict[str, str], clock: Clock | None = None,
             pid: int = 4242) -> tuple[SystemdNotifier, FakeSocket]:
    n = SystemdNotifier.from_environ(clock or Clock(), environ, pid)
    sock = FakeSocket()
    n._socket = sock  # type: ignore[assignment]
    return n, sock


def test_notify_socket_addresses() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify/1") == (
        b"\0/org/freedesktop/systemd1/notify/1")
    assert socket_address("") is None
    assert socket_address("vsock:2:1234") is None


def test_watchdog_is_for_this_process_only() -> None:
    assert watchdog_usec({"WATCHDOG_USEC": "2000000"}, 7) == 2_000_000
    assert watchdog_usec({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 7) == 2_000_000
    assert watchdog_usec({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "8"}, 7) == 0
    assert watchdog_usec({"WATCHDOG_USEC": "soon"}, 7) == 0
    assert watchdog_usec({}, 7) == 0


def test_without_notify_socket_nothing_is_sent() -> None:
    n = SystemdNotifier.from_environ(Clock(), {"WATCHDOG_USEC": "1000000"}, 1)
    assert not n.enabled
    assert n.watchdog_interval == 0
    assert not n.ready()
    assert not n.ticked()
    assert not n.stopping()


def test_ready_then_watchdog_at_half_the_period_then_stopping() -> None:
    clock = Clock()
    n, sock = notifier({"NOTIFY_SOCKET": "@mmo-test", "WATCHDOG_USEC": "1000000"}, clock)
    assert n.watchdog_interval == 0.5
    assert n.ready("serving")
    data, address = sock.sent[-1]
    assert address == b"\0mmo-test"
    assert data.split(b"\n")[0] == b"READY=1"
    assert b"STATUS=serving" in data.split(b"\n")
    pings = 0
    for _ in range(20):  # 2 s of ticks at 10 Hz
        clock.advance(0.1)
        if n.ticked():
            pings += 1
            assert sock.sent[-1][0] == b"WATCHDOG=1"
    assert 4 <= pings <= 5
    assert n.stopping("draining")
    assert sock.sent[-1][0].split(b"\n")[0] == b"STOPPING=1"


def test_a_notify_failure_is_logged_once_and_never_raised() -> None:
    n, sock = notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    sock.error = FileNotFoundError(2, "No such file or directory")
    assert not n.ready()
    assert not n.status("still here")
    assert n._failed


# -- metrics -----------------------------------------------------------------


def parse(text: bytes) -> dict[str, Any]:
    """Every sample of an exposition, by name and labels."""
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metric_names_follow_prometheus_conventions() -> None:
    names = set()
    for spec in NODE_METRICS + CLUSTER_METRICS:
        assert spec.name.startswith("mmo_")
        assert not spec.name.endswith("_total"), "counters get _total when rendered"
        assert spec.kind in ("counter", "gauge")
        names.add((spec.name, bool(spec.label)))
    assert len(names) == len(NODE_METRICS + CLUSTER_METRICS)


def test_families_skip_missing_keys_and_split_mappings() -> None:
    specs = (
        Spec("a", "x_a", "A."),
        Spec("b", "x_b", "B.", "gauge"),
        Spec("c", "x_c", "C by kind.", label="kind"),
        Spec("c", "x_c", "C."),
    )
    got = {f.name: f for f in families(specs, {"a": 3, "c": {"y": 2, "z": 1}})}
    assert set(got) == {"x_a", "x_c"}
    assert [(s.labels, s.value) for s in got["x_c"].samples] == [
        ({"kind": "y"}, 2.0), ({"kind": "z"}, 1.0)]
    got = {f.name: f for f in families(specs, {"c": 5})}
    assert [(s.labels, s.value) for s in got["x_c"].samples] == [({}, 5.0)]


def test_tick_histogram_is_cumulative() -> None:
    h = TickHistogram((0.01, 0.1))
    for seconds in (0.001, 0.01, 0.05, 0.5):
        h.observe(seconds)
    assert h.cumulative() == [("0.01", 2.0), ("0.1", 3.0), ("+Inf", 4.0)]
    assert h.total == pytest.approx(0.561)


def test_node_metrics_render_from_a_snapshot() -> None:
    node = make_node()
    h = TickHistogram()
    node.stats.observers.append(h.observe)
    for _ in range(3):
        node.tick()
    node.bytes_in += 10
    node.count_refusal(13)
    service = SimpleNamespace(node=node, cluster=SimpleNamespace(numbers=lambda: {
        "datagrams_sent": 7, "gaps": 2, "auth_failures": 1, "cluster_nodes": 2}))
    collector = NodeCollector(lambda: service_snapshot(service), h,
                              lambda: cluster_snapshot(service))
    samples = parse(render(make_registry(collector, process=False)))
    assert samples[("mmo_ticks_total", ())] == 3
    assert samples[("mmo_tick_duration_seconds_count", ())] == 3
    assert samples[("mmo_tick_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("mmo_player_received_bytes_total", ())] == 10
    assert samples[("mmo_players", ())] == 0
    assert samples[("mmo_accepting", ())] == 1
    assert samples[("mmo_refusals_total", (("reason", "server_full"),))] == 1
    assert samples[("mmo_refusals_total", (("reason", "rate_limited"),))] == 0
    assert samples[("mmo_cluster_datagrams_sent_total", ())] == 7
    assert samples[("mmo_cluster_sequence_gaps_total", ())] == 2
    assert samples[("mmo_cluster_authentication_failures_total", ())] == 1
    assert samples[("mmo_cluster_nodes", ())] == 2
    assert ("mmo_cluster_replays_total", ()) not in samples
    assert samples[("mmo_node_info", (("node_id", "test-node"), ("version", "0.1.0")))] == 1


# -- health ------------------------------------------------------------------


def fake_service(**overrides: Any) -> SimpleNamespace:
    clock = Clock()
    clock.advance(100)
    node = make_node(clock)
    values: dict[str, Any] = dict(node=node, ports=[object()], reactor=clock,
                                  last_tick_at=clock.seconds(), settings=node.settings)
    values.update(overrides)
    return SimpleNamespace(**values)


def test_healthy_and_ready() -> None:
    service = fake_service()
    assert liveness(service).ok
    health = readiness(service)
    assert health.ok and health.body() == b"ok\n"


def test_draining_is_unhealthy_with_a_reason() -> None:
    service = fake_service()
    service.node.accepting = False
    health = liveness(service)
    assert not health.ok
    assert b"draining" in health.body()


def test_a_stalled_tick_is_unhealthy() -> None:
    service = fake_service()
    service.reactor.advance(1.5)
    assert liveness(service).ok
    service.reactor.advance(1.0)
    health = liveness(service)
    assert not health.ok and "tick stalled" in health.reasons[0]


def test_sustained_overruns_are_overload() -> None:
    service = fake_service()
    stats = service.node.stats
    for i in range(50):
        stats.add(0.25 if i % 4 else 0.01, 0.1)
    health = liveness(service)
    assert not health.ok
    assert health.reasons[0].startswith("overloaded: 37 of the last 50 ticks")
    for _ in range(50):
        stats.add(0.01, 0.1)
    assert liveness(service).ok


def test_not_listening_is_unhealthy() -> None:
    assert "not listening for players" in liveness(fake_service(ports=[])).reasons


def test_readiness_wants_a_first_tick_room_and_a_ready_cluster() -> None:
    assert "starting: no tick yet" in readiness(fake_service(last_tick_at=None)).reasons
    service = fake_service()
    service.node.limits = dataclasses.replace(service.node.limits, max_players=0)
    assert readiness(service).reasons == ["full: 0 of 0 players"]
    service = fake_service(cluster=SimpleNamespace(ready=lambda: "no key"))
    assert readiness(service).reasons == ["cluster: no key"]


def get(site: Any, path: bytes) -> tuple[int, bytes, Any]:
    request = DummyRequest([path.lstrip(b"/")])
    request.path = path
    resource = site.getResourceFor(request)
    body = resource.render(request)
    return request.responseCode or 200, body, request.responseHeaders


def test_http_resources() -> None:
    service = fake_service()
    registry = make_registry(NodeCollector(lambda: service_snapshot(service)), process=False)
    site = make_site(service, registry)
    code, body, _ = get(site, b"/healthz")
    assert (code, body) == (200, b"ok\n")
    code, body, headers = get(site, b"/metrics")
    assert code == 200 and b"mmo_ticks_total 0.0" in body
    assert headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4")
    service.node.accepting = False
    code, body, _ = get(site, b"/readyz")
    assert code == 503 and body.startswith(b"draining")


def test_http_key() -> None:
    assert NODE_SCHEMA.check("http", "none", "test") == "none"
    assert NODE_SCHEMA.check("http", "tcp:9200", "test") == "tcp:9200"
    assert NODE_SCHEMA.resolve({}, None)["http"] == DEFAULT_HTTP
    with pytest.raises(ConfigError, match="http"):
        NODE_SCHEMA.check("http", "9200", "test")
