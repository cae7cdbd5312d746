"""
The load generator's stalls and refusals: per-bot gaps without an update
and silent seconds, and one sentence per refusal with the option to change.
In memory on a fake reactor, and against a real node.
"""

from __future__ import annotations

import json
import re

import pytest
from support import BIN, Process
from test_loadgen import connect_all, enter_world, make_fleet, values
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from mmo.app.tap import SCHEMA as NODE_SCHEMA
from mmo.loadgen.bot import silent_seconds
from mmo.loadgen.fleet import Fleet
from mmo.loadgen.refusals import ADVICE, explain
from mmo.loadgen.report import build_report, progress_line, summary_lines
from mmo.loadgen.settings import LOADGEN_SCHEMA
from mmo.wire import messages as m

LOADGEN = str(BIN / "mmo-loadgen")


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
    fleet = make_fleet(values(clients=4, ramp=1000.0, duration=60.0, rate=0.0,
                         chat_rate=0.0, ping_interval=100.0), reactor)
    done = fleet.start()
    reactor.advance(STEP)
    connect_all(fleet)
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
    fleet = make_fleet(values(clients=1, ramp=1000.0, rate=0.0, chat_rate=0.0), reactor)
    fleet.start()
    connect_all(fleet)
    enter_world(fleet)
    reactor.advance(2.5)
    now = reactor.seconds()
    bot = fleet.bots[0]
    bot.dataReceived(m.Tick(1, now).encode() * 5)
    assert bot.ticks == 5 and bot.silent_seconds == 1
    assert bot.longest_gap == pytest.approx(2.5) and bot.last_update == now


def test_refused_bots_say_why_and_what_to_change_once() -> None:
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=5, ramp=1000.0, duration=60.0, max_failures=0), reactor)
    done = fleet.start()
    reactor.advance(0.05)
    connect_all(fleet)
    for bot in fleet.bots[2:]:
        bot.dataReceived(m.Error(m.ErrorCode.TOO_MANY_CONNECTIONS,
                                 "no more than 2 connections from one address").encode())
        bot.connectionLost(Failure(Exception("closed")))
    enter_world(fleet)
    reactor.advance(1.0)
    fleet.stop()
    for bot in fleet.bots[:2]:
        bot.connectionLost(Failure(Exception("closed")))
    report = build_report(done.result, fleet.settings, seed=1, started_at=0.0, elapsed=1.0)
    line = ("the node refused 3 bots: TOO_MANY_CONNECTIONS (no more than 2 connections "
            "from one address): raise the node's --max-per-ip (0: no limit) or spread "
            "bots over --targets")
    assert report["refusals"] == [{
        "reason": "too_many_connections", "bots": 3,
        "text": "no more than 2 connections from one address",
        "advice": "raise the node's --max-per-ip (0: no limit) or spread bots over --targets",
        "line": line}]
    lines = summary_lines(report)
    assert [x.strip() for x in lines if "refused" in x] == [line]


def test_every_explanation_names_options_that_exist() -> None:
    options = {f"--{k.option}" for k in [*NODE_SCHEMA, *LOADGEN_SCHEMA]}
    options |= {f"--no-{k.option}" for k in NODE_SCHEMA if k.flag}
    texts = ["the server is full", "the account database is unavailable",
             "too many failed logins from 1.2.3.4", "too many moves: slow down"]
    for reason, found in ADVICE.items():
        for text in texts if callable(found) else [""]:
            line = explain(reason, 2, text, targets=2)
            assert line is not None
            flags = set(re.findall(r"--[a-z][a-z-]*", line))
            assert flags <= options, (reason, flags - options)
    assert explain("too_many_connections", 1, "x", targets=2).startswith(
        "the nodes refused 1 bot: TOO_MANY_CONNECTIONS (x): ")
    assert explain("connection_lost", 3) is None


def test_a_real_node_refusing_bots_is_explained_once(start_node, tmp_path) -> None:
    node = start_node("--max-per-ip", "5", "--limit-loopback")
    report_path = tmp_path / "report.json"
    lg = Process([LOADGEN, "--port", str(node.port), "--clients", "8", "--ramp", "100",
                  "--duration", "2", "--report", str(report_path)], tmp_path, "loadgen")
    try:
        code = lg.wait(30)
    finally:
        lg.stop()
    out = lg.output
    assert code == 1, out[-3000:]
    line = ("the node refused 3 bots: TOO_MANY_CONNECTIONS (no more than 5 connections "
            "from one address): raise the node's --max-per-ip (0: no limit) or spread "
            "bots over --targets")
    assert out.count(line) == 1, out[-3000:]
    assert out.count("refused") == 1
    report = json.loads(report_path.read_text())
    assert [r["line"] for r in report["refusals"]] == [line]
    assert report["stalls"]["longest_gap_ms"]["count"] == 5
