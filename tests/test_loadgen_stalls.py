"""
The load generator's stalls: per-bot gaps without an update and silent
seconds, in memory on a fake reactor.
"""

from __future__ import annotations

import json

import pytest
from test_loadgen import connect_all, enter_world, values
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from mmo.loadgen.bot import silent_seconds
from mmo.loadgen.fleet import Fleet
from mmo.loadgen.report import build_report, progress_line, summary_lines
from mmo.wire import messages as m


def test_silent_seconds_are_the_whole_seconds_between_two_updates() -> None:
    assert silent_seconds(0.5, 0.9, 0.0) == 0
    assert silent_seconds(0.5, 1.9, 0.0) == 0  # seconds 0 and 1 each had one
    assert silent_seconds(0.5, 2.0, 0.0) == 1  # second 1 had none
    assert silent_seconds(0.9, 4.2, 0.0) == 3
    assert silent_seconds(10.3, 13.1, 10.2) == 1  # seconds counted from the origin


STEP = 0.125  # exact in binary: the fake clock's sums stay exact


def updates_for_all(fleet: Fleet, reactor: MemoryReactorClock, seconds: float,
                    quiet: frozenset[int] = frozenset()) -> None:
    """The node sends every bot but the ``quiet`` ones an update each STEP."""
    for _ in range(round(seconds / STEP)):
        reactor.advance(STEP)
        now = reactor.seconds()
        for i, bot in enumerate(fleet.bots):
            if i not in quiet:
                bot.dataReceived(m.Tick(1, now).encode() + m.Moves(((9, 1.0, 1.0),)).encode())


def test_each_bot_reports_its_longest_gap_and_silent_seconds() -> None:
    reactor = MemoryReactorClock()
    fleet = Fleet(values(clients=4, ramp=1000.0, duration=60.0, rate=0.0,
                         chat_rate=0.0, ping_interval=100.0), reactor)
    done = fleet.start()
    reactor.advance(STEP)
    connect_all(reactor, set())
    enter_world(fleet)  # at 0.125: the origin of each bot's seconds
    updates_for_all(fleet, reactor, 2.0)
    # Bot 1 hears nothing for 3.625 s, bot 2 for 1.625 s, bot 3 from 6.125 s on.
    updates_for_all(fleet, reactor, 1.5, quiet=frozenset({1, 2}))
    progress = fleet.snapshot(reactor.seconds())
    assert progress["silent"] == 2
    assert "| silent 1s+ 2 |" in progress_line(progress)
    updates_for_all(fleet, reactor, 2.0, quiet=frozenset({1}))
    updates_for_all(fleet, reactor, 0.5)
    updates_for_all(fleet, reactor, 4.0, quiet=frozenset({3}))
    assert [bot.longest_gap for bot in fleet.bots] == [0.125, 3.625, 1.625, 0.125]
    # The end, at 10.125: every bot has played 10 whole seconds.
    fleet.stop()
    for bot in fleet.bots:
        bot.connectionLost(Failure(Exception("closed")))
    stats = done.result
    report = build_report(stats, fleet.settings, seed=1, started_at=0.0, elapsed=10.0)
    st = report["stalls"]
    gaps = st["longest_gap_ms"]
    assert gaps["count"] == 4
    assert (gaps["min"], gaps["max"]) == (125.0, 4000.0)  # bot 3's lasts to the end
    # Silent whole seconds: bot 1 (2.125 to 5.75) its 3rd and 4th; bot 2
    # (2.125 to 3.75) none; bot 3 (6.125 to the end) its 7th, 8th and 9th.
    assert (st["played_seconds"], st["silent_seconds"], st["silent_bots"]) == (40, 5, 2)
    assert st["silent_share_overall"] == 0.125
    assert st["silent_share"]["mean"] == 0.125
    assert st["silent_share"]["max"] == 0.3
    text = "\n".join(summary_lines(report))
    assert "longest_gap (ms)" in text and "silent_share" in text
    assert ("stalls: 2 of 4 bots had whole seconds without an update; 5 of 40 "
            "bot-seconds silent (12.50 %), mean per bot 12.50 %") in text
    json.dumps(report)


def test_many_frames_in_one_read_are_one_update() -> None:
    reactor = MemoryReactorClock()
    fleet = Fleet(values(clients=1, ramp=1000.0, rate=0.0, chat_rate=0.0), reactor)
    fleet.start()
    connect_all(reactor, set())
    enter_world(fleet)
    reactor.advance(2.5)
    now = reactor.seconds()
    bot = fleet.bots[0]
    bot.dataReceived(m.Tick(1, now).encode() * 5)
    assert bot.ticks == 5 and bot.silent_seconds == 1
    assert bot.longest_gap == pytest.approx(2.5) and bot.last_update == now
