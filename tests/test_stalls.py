"""
A node whose reactor is held up shows it: the tick's lag and the gaps
between ticks, in its snapshot and on ``/metrics``.  In-process, on a fake
clock: advancing the clock by seconds at once is a reactor blocked that long.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_ops import parse
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from mmo.app.service import NodeService
from mmo.app.timing import ScheduledLoop, TickTiming, WindowMax
from mmo.app.web import http_service
from mmo.cluster import codec
from mmo.testing import node_settings


def test_window_max_keeps_the_largest_of_the_window() -> None:
    w = WindowMax(10.0)
    assert w.max(0.0) == 0.0
    for t, value in ((0.0, 1.0), (1.0, 5.0), (2.0, 3.0), (3.0, 2.0)):
        w.add(t, value)
    assert w.max(3.0) == 5.0
    assert w.max(11.0) == 5.0  # 1.0 + 10: still in the window
    assert w.max(11.5) == 3.0
    assert w.max(13.5) == 0.0
    # Only values that may still become the maximum are kept.
    for i in range(1000):
        w.add(20.0 + i * 0.01, 1.0)
    assert len(w._items) == 1


def test_scheduled_loop_knows_when_each_call_was_due() -> None:
    clock = Clock()
    seen: list[tuple[float | None, float]] = []
    loop = ScheduledLoop(lambda: seen.append((loop.due, clock.seconds())))
    loop.clock = clock
    loop.start(0.5, now=False)
    clock.advance(0.5)
    clock.advance(2.0)  # blocked: the call due at 1.0 runs at 2.5
    clock.advance(0.5)
    assert seen == [(0.5, 0.5), (1.0, 2.5), (3.0, 3.0)]
    loop.stop()


def test_tick_timing_counts_lag_gaps_and_skipped_ticks() -> None:
    clock = Clock()
    timing = TickTiming(0.1, clock, window=60.0)
    assert timing.numbers() == {"tick_lag_max_ms": 0, "tick_gap_max_ms": 0}
    for i in range(1, 11):
        clock.advance(0.1)
        timing.started(i * 0.1, clock.seconds())
    # Held up 3 s: the tick due at 1.1 starts at 4.0; the next is due at 4.1.
    clock.advance(3.0)
    timing.started(1.1, clock.seconds())
    # Counted at once: the loop's next due time is after now.
    assert timing.totals()["ticks_skipped"] in (28, 29)
    clock.advance(0.1)
    timing.started(4.1, clock.seconds())
    assert timing.numbers() == {"tick_lag_max_ms": 2900, "tick_gap_max_ms": 3000}
    totals = timing.totals()
    assert totals["tick_gap_longest_ms"] == pytest.approx(3000)
    assert totals["tick_lag_longest_ms"] == pytest.approx(2900)
    assert totals["ticks_skipped"] == 29
    # A minute later the recent window has forgotten it, the totals have not.
    for i in range(1, 601):
        clock.advance(0.1)
        timing.started(4.1 + i * 0.1, clock.seconds())
    assert timing.numbers() == {"tick_lag_max_ms": 0, "tick_gap_max_ms": 100}
    assert timing.totals()["tick_gap_longest_ms"] == pytest.approx(3000)
    # A gap still open (no tick for 2 s) counts too.
    clock.advance(2.0)
    assert timing.numbers()["tick_gap_max_ms"] == 2000
    assert timing.totals()["ticks_skipped"] == 29


@pytest.fixture
def node_service(tmp_path: Path) -> Iterator[tuple[NodeService, MemoryReactorClock]]:
    """A whole node service (no cluster, no HTTP port) on a fake reactor, 4 Hz."""
    # 0.25 s is exact in binary: the fake clock's sums land on the due times.
    settings = node_settings(data_dir=str(tmp_path / "data"), http="none", cluster=False,
                             tick_rate=4)
    reactor = MemoryReactorClock()
    service = NodeService(settings, reactor)
    service.startService()
    try:
        yield service, reactor
    finally:
        done = service.stopService()
        reactor.advance(10.0)
        assert done.called


def scrape(service: NodeService) -> dict[Any, float]:
    """``/metrics`` as the node's HTTP site answers it."""
    site = http_service(service).site
    request = DummyRequest([b"metrics"])
    request.path = b"/metrics"
    return parse(site.getResourceFor(request).render(request))


def test_a_node_whose_tick_is_held_up_shows_lag_and_gap(node_service) -> None:
    service, reactor = node_service
    for _ in range(8):
        reactor.advance(0.25)
    calm = scrape(service)
    assert calm[("mmo_tick_lag_recent_max_seconds", ())] == 0
    assert calm[("mmo_tick_gap_recent_max_seconds", ())] == 0.25
    assert calm[("mmo_ticks_skipped_total", ())] == 0
    ticks = service.node.tick_number
    reactor.advance(3.0)  # the reactor was blocked for 3 s: the tick due at 2.25 runs at 5
    assert scrape(service)[("mmo_ticks_skipped_total", ())] == 11
    reactor.advance(0.25)
    assert service.node.tick_number == ticks + 2  # skipped, not run in a burst
    snap = service.node.snapshot()
    assert (snap["tick_lag_max_ms"], snap["tick_gap_max_ms"]) == (2750, 3000)
    # The cluster's metrics datagram carries them.
    sent = codec.read_metrics(codec.metrics_body(snap, 1155), 0)
    assert (sent["tick_lag_max_ms"], sent["tick_gap_max_ms"]) == (2750, 3000)
    stalled = scrape(service)
    assert stalled[("mmo_tick_lag_recent_max_seconds", ())] == 2.75
    assert stalled[("mmo_tick_gap_recent_max_seconds", ())] == 3.0
    assert stalled[("mmo_tick_gap_max_seconds", ())] == 3.0
    assert stalled[("mmo_tick_lag_max_seconds", ())] == 2.75
    assert stalled[("mmo_ticks_skipped_total", ())] == 11
    # The late tick is in the lag histogram's top buckets, the others at 0.
    count = stalled[("mmo_tick_lag_seconds_count", ())]
    assert count == service.node.tick_number == 10
    assert stalled[("mmo_tick_lag_seconds_bucket", (("le", "0.001"),))] == count - 1
    assert stalled[("mmo_tick_lag_seconds_bucket", (("le", "2.5"),))] == count - 1
    assert stalled[("mmo_tick_lag_seconds_bucket", (("le", "5.0"),))] == count
    assert stalled[("mmo_tick_lag_seconds_sum", ())] == 2.75
    # The tick itself stayed fast: its duration says nothing of the stall.
    assert stalled[("mmo_tick_recent_p99_seconds", ())] < 0.5
