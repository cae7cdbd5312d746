"""The load generator in memory: stats, options, bots and the fleet on a fake reactor."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.python.failure import Failure

from mmo.loadgen.fleet import Fleet
from mmo.loadgen.report import REPORT_FIELDS, build_report, progress_line, summary_lines
from mmo.loadgen.settings import LOADGEN_SCHEMA, LoadgenSettings, target_list, to_argv
from mmo.loadgen.stats import Histogram, Stats
from mmo.loadgen.tap import Options
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder

# -- stats ---------------------------------------------------------------------


def test_histogram_percentiles_within_one_percent():
    h = Histogram()
    for i in range(1, 1001):
        h.add(i / 1000.0)
    assert h.count == 1000
    assert h.percentile(50) == pytest.approx(0.5, rel=0.01)
    assert h.percentile(90) == pytest.approx(0.9, rel=0.01)
    assert h.percentile(99) == pytest.approx(0.99, rel=0.01)
    assert h.percentile(100) == pytest.approx(1.0, rel=0.01)
    s = h.summary(1000.0)
    assert s["max"] == 1000.0 and s["min"] == 1.0 and s["count"] == 1000


def test_histogram_merge_and_round_trip():
    a, b = Histogram(), Histogram()
    for i in range(100):
        a.add(0.001 * (i + 1))
        b.add(0.1 * (i + 1))
    b.add(0.0)
    a.merge(Histogram.from_dict(json.loads(json.dumps(b.to_dict()))))
    assert a.count == 201 and a.zeros == 1
    assert a.low == 0.0 and a.high == pytest.approx(10.0)
    assert a.percentile(25) == pytest.approx(0.05, rel=0.02)
    assert Histogram().percentile(50) == 0.0


def test_stats_round_trip():
    s = Stats()
    s.counters["moves_sent"] += 5
    s.histograms["rtt"].add(0.002)
    s.disconnects["connection_lost"] += 1
    t = Stats.from_dict(json.loads(json.dumps(s.to_dict())))
    t.merge(s)
    assert t.counters["moves_sent"] == 10
    assert t.histograms["rtt"].count == 2
    assert t.disconnects == {"connection_lost": 2}


# -- options ---------------------------------------------------------------------


def parse(*argv: str) -> LoadgenSettings:
    o = Options()
    o.parseOptions(list(argv))
    return o.settings


def test_seed_flags_and_targets():
    v = parse("--host", "127.0.0.1", "--port", "4100", "--clients", "7", "--rate", "5")
    assert (v.host, v.port, v.clients, v.rate) == ("127.0.0.1", 4100, 7, 5.0)
    assert v.targets == ()
    assert v.addresses == (("127.0.0.1", 4100),)
    v = parse("--targets", "127.0.0.1:4000, 127.0.0.1:4001")
    assert v.targets == (("127.0.0.1", 4000), ("127.0.0.1", 4001))
    assert v.addresses == v.targets
    with pytest.raises(ValueError):
        target_list("127.0.0.1")
    with pytest.raises(usage.UsageError):
        parse("--targets", "nohost")
    with pytest.raises(usage.UsageError):
        parse("--spread", "everywhere")
    with pytest.raises(usage.UsageError):
        parse("--clients", "2", "--workers", "3")
    with pytest.raises(usage.UsageError):
        parse("--clients", "4", "--workers", "2", "--worker", "0/2")


def test_settings_are_typed_and_frozen():
    o = Options()
    o.parseOptions(["--clients", "3"])
    assert isinstance(o.settings, LoadgenSettings)
    assert o.checked["clients"] == 3 and o.settings.clients == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.settings.clients = 4  # type: ignore[misc]


def test_config_file(tmp_path):
    path = tmp_path / "lg.toml"
    path.write_text('clients = 42\ntargets = ["127.0.0.1:5000"]\nchat_rate = 0\n')
    v = parse("--config", str(path), "--rate", "3")
    assert v.clients == 42 and v.rate == 3.0 and v.chat_rate == 0.0
    assert v.targets == (("127.0.0.1", 5000),)


def test_to_argv_gives_the_same_values():
    v = parse("--targets", "127.0.0.1:4000,127.0.0.1:4001", "--no-progress",
              "--clients", "9", "--zone", "arena")
    assert parse(*to_argv(v)) == v
    assert {f.name for f in dataclasses.fields(v)} == set(LOADGEN_SCHEMA.keys)
    child = dataclasses.replace(v, workers=1, worker="1/3", report="/tmp/w1.json")
    assert parse(*to_argv(child)) == child


# -- bots and the fleet on a fake reactor ---------------------------------------------


def values(**over) -> LoadgenSettings:
    return dataclasses.replace(parse("--no-progress"), **over)


class Dialer:
    """The connections a fleet asks for, made by the test in memory."""

    def __init__(self) -> None:
        self.fleet: Fleet | None = None
        #: ``(host, port, bot)`` of every connection asked for, in order.
        self.calls: list[tuple[str, int, Any]] = []
        self.connected: set[int] = set()

    def __call__(self, bot: Any, host: str, port: int) -> Any:
        index = len(self.calls)
        self.calls.append((host, port, bot))
        return _Attempt(self, index)

    def fail(self, index: int, reason: str) -> None:
        self.connected.add(index)
        assert self.fleet is not None
        self.fleet.connect_failed(self.calls[index][2], reason)


class _Attempt:
    def __init__(self, dialer: Dialer, index: int) -> None:
        self.dialer, self.index = dialer, index

    def cancel(self) -> None:
        if self.index not in self.dialer.connected:
            self.dialer.fail(self.index, "connect_cancelled")


def make_fleet(settings: LoadgenSettings, reactor: MemoryReactorClock, **kw: Any) -> Fleet:
    """A fleet whose bots connect only when the test says (:func:`connect_all`)."""
    dialer = Dialer()
    fleet = Fleet(settings, reactor, dial=dialer, **kw)
    dialer.fleet = fleet
    return fleet


def connect_all(fleet: Fleet) -> list:
    """Complete the connections the fleet asked for; return (host, port, transport)."""
    dialer = fleet.dial
    assert isinstance(dialer, Dialer)
    out = []
    for i, (host, port, bot) in enumerate(dialer.calls):
        if i in dialer.connected:
            continue
        dialer.connected.add(i)
        t = StringTransport()
        bot.makeConnection(t)
        out.append((host, port, t))
    return out


def enter_world(fleet: Fleet, x: float = 500.0, y: float = 500.0) -> None:
    for bot in fleet.bots:
        if bot.transport is not None and not bot.logged_in:
            bot.dataReceived(m.Welcome(1, "n", 65536).encode() + m.EnterWorld(
                bot.index + 1, "world", x, y, 1000, 1000, 100, 10, "n").encode())


def sent(t: StringTransport) -> list[m.Message]:
    return FrameDecoder().feed(t.value())


def test_ramp_targets_and_one_timer():
    reactor = MemoryReactorClock()
    targets = (("127.0.0.1", 4000), ("127.0.0.2", 4001))
    fleet = make_fleet(values(clients=25, ramp=10.0, targets=targets, duration=30.0), reactor)
    fleet.start()
    calls = fleet.dial.calls  # type: ignore[attr-defined]
    assert len(calls) == 1
    timers = len(reactor.getDelayedCalls())
    reactor.advance(1.0)
    assert len(calls) == 11
    for _ in range(30):
        reactor.advance(0.1)
    assert len(calls) == 25
    # Bot i goes to target i mod N; nothing else is ever dialled.
    addrs = [(h, p) for h, p, _ in calls]
    assert addrs == [targets[i % 2] for i in range(25)]
    # However many bots, the same few timers (no timer per bot).
    connect_all(fleet)
    enter_world(fleet)
    reactor.advance(0.05)
    assert len(reactor.getDelayedCalls()) == timers


def test_bots_walk_at_speed_ping_and_measure():
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=3, ramp=1000.0, rate=10.0, speed=40.0, chat_rate=0.0,
                         ping_interval=0.5), reactor)
    fleet.start()
    reactor.advance(0.05)
    conns = connect_all(fleet)
    assert len(conns) == 3
    hello = sent(conns[0][2])
    assert isinstance(hello[0], m.Hello) and hello[1] == m.Login("bot0", "bot")
    enter_world(fleet)
    for _, _, t in conns:
        t.clear()
    for _ in range(40):
        reactor.advance(0.05)
    now = reactor.seconds()
    for bot, (_, _, t) in zip(fleet.bots, conns, strict=True):
        msgs = sent(t)
        moves = [x for x in msgs if isinstance(x, m.Move)]
        pings = [x for x in msgs if isinstance(x, m.Ping)]
        assert 18 <= len(moves) <= 21
        assert 3 <= len(pings) <= 5
        px, py = 500.0, 500.0
        for mv in moves:
            assert math.hypot(mv.x - px, mv.y - py) <= 40.0 * 0.1 * 1.3 + 1e-3
            assert 0 < mv.x < 1000 and 0 < mv.y < 1000
            px, py = mv.x, mv.y
        # The server's answers: a tick 40 ms old, a pong 10 ms after its ping.
        bot.dataReceived(m.Tick(1, now - 0.040).encode()
                         + m.Pong(pings[-1].token, now - 0.010, now).encode()
                         + m.Enter((m.EntityInfo(9, 0, 1, 1, "x"),)).encode()
                         + m.Moves(((9, 2.0, 2.0),)).encode()
                         + m.Correction(moves[-1].seq, 1.0, 2.0, 1).encode())
        assert (bot.x, bot.y) == (1.0, 2.0) and bot.visible == 1
    # The run's histograms take the second's measures at its end.
    reactor.advance(1.0)
    s = fleet.stats
    assert s.histograms["update_age"].percentile(50) == pytest.approx(0.040, rel=0.02)
    assert s.histograms["rtt"].percentile(50) == pytest.approx(0.010, rel=0.02)
    assert s.corrections == {"too_fast": 3}


def test_end_closes_every_connection_and_reports():
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=4, ramp=1000.0, duration=2.0), reactor)
    done = fleet.start()
    reactor.advance(0.05)
    conns = connect_all(fleet)
    enter_world(fleet)
    for _ in range(25):
        reactor.advance(0.1)
    assert fleet.stopping
    for bot, (_, _, t) in zip(fleet.bots, conns, strict=True):
        assert t.disconnecting
        assert isinstance(sent(t)[-1], m.Bye)
        bot.connectionLost(Failure(Exception("closed")))
    stats = done.result
    assert stats.counters["logged_in"] == 4
    assert dict(stats.failures) == {} and dict(stats.disconnects) == {}
    report = build_report(stats, fleet.settings, seed=1, started_at=0.0, elapsed=2.0)
    assert set(REPORT_FIELDS) <= set(report)
    assert report["ok"] and report["exit_code"] == 0
    # Every bot played about 2 s and the fake server sent no ticks.
    assert report["per_bot"]["updates_per_sec"]["count"] == 4
    assert report["per_bot"]["updates_per_sec"]["max"] == 0
    assert any("result: OK" in line for line in summary_lines(report))


def test_lost_bots_end_the_run_early_with_reasons():
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=3, ramp=1000.0, duration=60.0), reactor)
    done = fleet.start()
    reactor.advance(0.05)
    conns = connect_all(fleet)
    enter_world(fleet)
    reactor.advance(0.5)
    a, b, c = fleet.bots
    a.dataReceived(m.Notice(m.NoticeKind.SHUTDOWN, "bye").encode())
    a.connectionLost(Failure(Exception("closed")))
    b.dataReceived(m.Error(m.ErrorCode.NAME_IN_USE, "again").encode())
    b.connectionLost(Failure(Exception("closed")))
    c.connectionLost(Failure(Exception("reset")))
    reactor.advance(0.1)
    assert done.called
    stats = done.result
    assert dict(stats.disconnects) == {"server_shutdown": 1, "name_in_use": 1,
                                       "connection_lost": 1}
    assert sum(stats.failures.values()) == 3
    assert stats.errors["name_in_use"] == 1
    report = build_report(stats, fleet.settings, seed=1, started_at=0.0, elapsed=0.6)
    assert not report["ok"] and report["exit_code"] == 1
    assert report["disconnects"]["total"] == 3
    assert conns


def test_refused_connections_are_failures():
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=2, ramp=1000.0, duration=60.0, max_failures=1), reactor)
    done = fleet.start()
    reactor.advance(0.05)
    for i in range(len(fleet.dial.calls)):  # type: ignore[attr-defined]
        fleet.dial.fail(i, "connect_refused")  # type: ignore[attr-defined]
    reactor.advance(0.1)
    stats = done.result
    assert dict(stats.failures) == {"connect_refused": 2}
    report = build_report(stats, fleet.settings, seed=1, started_at=0.0, elapsed=0.1)
    assert report["exit_code"] == 1  # 2 failures > --max-failures 1


def test_progress_line_reads_well():
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=2, ramp=1000.0), reactor)
    fleet.start()
    fleet.interval.rtt.add(0.002)
    line = progress_line(fleet.snapshot(reactor.seconds() + 3))
    assert line.startswith("[    3s] bots 0/2 playing")
    assert "rtt p50 2.0" in line and "errors 0" in line


# -- the twistd plugin ---------------------------------------------------------------


def test_plugin_is_found():
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    names = {p.tapname for p in getPlugins(IServiceMaker)}
    assert {"mmo", "mmo-loadgen"} <= names


def test_twistd_help():
    out = subprocess.run([str(__import__("pathlib").Path(sys.executable).parent / "twistd"),
                          "mmo-loadgen", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for flag in ("--host", "--port", "--clients", "--rate", "--ramp", "--duration",
                 "--targets", "--zone", "--spread", "--speed", "--chat-rate",
                 "--workers", "--report", "--seed", "--max-failures", "--config"):
        assert flag in out.stdout


def test_zone_option_moves_bots_there_first():
    reactor = MemoryReactorClock()
    fleet = make_fleet(values(clients=1, ramp=1000.0, zone="arena", spread="uniform"), reactor)
    fleet.start()
    (_, _, t), = connect_all(fleet)
    enter_world(fleet)
    bot = fleet.bots[0]
    assert sent(t)[-1] == m.ChangeZone("arena")
    t.clear()
    for _ in range(10):
        reactor.advance(0.1)
    assert not [x for x in sent(t) if isinstance(x, m.Move)]  # waits for the new zone
    bot.dataReceived(m.EnterWorld(1, "arena", 10, 10, 50, 50, 10, 10, "n").encode())
    for _ in range(10):
        reactor.advance(0.1)
    moves = [x for x in sent(t) if isinstance(x, m.Move)]
    assert moves and all(0 < mv.x < 50 and 0 < mv.y < 50 for mv in moves)


# -- --workers: the same bots, whatever the number of processes -------------------------


def run_in_slices(workers: int) -> tuple[Stats, dict[int, bytes]]:
    """
    Six bots split as ``--workers`` splits them, one fleet per slice on a
    fake reactor of its own, against the same scripted server (a tick 20 ms
    old and two moves every 0.1 s, every ping answered): the slices' merged
    Stats, and the bytes each bot sent, by bot index.
    """
    settings = values(clients=6, ramp=1000.0, duration=3.0, rate=10.0, chat_rate=0.5,
                      ping_interval=0.5, seed=11)
    merged = Stats()
    sent_by_bot: dict[int, bytes] = {}
    for first in range(workers):
        reactor = MemoryReactorClock()
        fleet = make_fleet(settings, reactor, first=first, step=workers, seed=11)
        done = fleet.start()
        reactor.advance(0.05)
        conns = connect_all(fleet)
        enter_world(fleet)
        out = {bot.index: bytearray() for bot in fleet.bots}
        while not fleet.stopping:
            reactor.advance(0.1)
            now = reactor.seconds()
            for bot, (_, _, t) in zip(fleet.bots, conns, strict=True):
                if bot.state == "closed":
                    continue
                pings = [x for x in sent(t) if isinstance(x, m.Ping)]
                out[bot.index] += t.value()
                t.clear()
                bot.dataReceived(m.Tick(1, now - 0.020).encode()
                                 + m.Moves(((90, 1.0, 1.0), (91, 2.0, 2.0))).encode()
                                 + b"".join(m.Pong(p.token, p.client_time, now).encode()
                                            for p in pings))
        for bot, (_, _, t) in zip(fleet.bots, conns, strict=True):
            out[bot.index] += t.value()
            bot.connectionLost(Failure(Exception("closed")))
        merged.merge(done.result)
        sent_by_bot.update({i: bytes(b) for i, b in out.items()})
    return merged, sent_by_bot


def test_workers_change_where_bots_run_not_what_they_do() -> None:
    one, sent_one = run_in_slices(1)
    two, sent_two = run_in_slices(2)
    three, sent_three = run_in_slices(3)
    # Every bot sent the very same bytes (its walk, pings and chat lines).
    assert sorted(sent_one) == list(range(6))
    assert all(len(b) > 400 for b in sent_one.values())
    assert sent_two == sent_one and sent_three == sent_one
    a = one.to_dict()
    for other in (two.to_dict(), three.to_dict()):
        for key in ("counters", "errors", "corrections", "disconnects", "failures"):
            assert other[key] == a[key], key
        for name, h in a["histograms"].items():
            o = other["histograms"][name]
            assert (o["buckets"], o["count"], o["zeros"], o["low"], o["high"]) == (
                h["buckets"], h["count"], h["zeros"], h["low"], h["high"]), name
            assert o["total"] == pytest.approx(h["total"]), name
    c = one.counters
    assert c["logged_in"] == 6 and c["moves_sent"] > 6 * 20 and c["pongs"] > 6 * 4
    assert one.histograms["update_age"].count == c["ticks"] > 6 * 25
    assert one.histograms["rtt"].count == c["pongs"]
