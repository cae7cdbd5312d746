"""
The load generator's compiled frame scanner against its Python twin, and
a bot's counts through either: the same bytes give the same results.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from mmo.loadgen import bot as bot_module
from mmo.loadgen import fastpath
from mmo.loadgen.bot import Bot
from mmo.loadgen.fleet import Fleet
from mmo.loadgen.tap import Options
from mmo.wire import messages as m

#: A server's frames, from the common (an update's) to the rare.
moves = st.lists(st.tuples(st.integers(1, 2**32 - 1), st.floats(0, 1000, width=32),
                           st.floats(0, 1000, width=32)), max_size=40).map(
    lambda items: m.Moves(tuple(items)))
enters = st.lists(st.integers(1, 1000), max_size=5).map(
    lambda ids: m.Enter(tuple(m.EntityInfo(i, 0, 1.0, 2.0, f"p{i}") for i in ids)))
leaves = st.lists(st.integers(1, 1000), max_size=8).map(lambda ids: m.Leave(tuple(ids)))
ticks = st.builds(m.Tick, st.integers(0, 2**32 - 1), st.floats(900.0, 1000.0))
pongs = st.builds(m.Pong, st.integers(0, 2**32 - 1), st.floats(900.0, 1000.0),
                  st.floats(900.0, 1000.0))
corrections = st.builds(m.Correction, st.integers(0, 2**32 - 1), st.floats(0, 1000, width=32),
                        st.floats(0, 1000, width=32), st.integers(1, 3))
chats = st.builds(m.ChatMessage, st.integers(0, 3), st.just("p1"), st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
notices = st.builds(m.Notice, st.integers(0, 3), st.text(st.characters(blacklist_categories=("Cs",)), max_size=10))
frames = st.one_of(moves, moves, ticks, ticks, enters, leaves, st.just(m.Resync()), pongs,
                   corrections, chats, notices).map(lambda msg: msg.encode())


#: The most a bot takes in one frame (its decoder's).
MAX_FRAME = 16 * 1024 * 1024


def bad_header(length: int, type_: int) -> bytes:
    return struct.pack(">IB", length, type_)


#: Headers a bot must refuse: too short for their type, too long, no such type.
bad_headers = st.one_of(
    st.builds(bad_header, st.integers(0, 12), st.just(m.Tick.TYPE)),
    st.builds(bad_header, st.integers(0, 2), st.sampled_from(
        [m.Moves.TYPE, m.Enter.TYPE, m.Leave.TYPE])),
    st.builds(bad_header, st.integers(MAX_FRAME + 1, 2**32 - 1), st.sampled_from(
        [m.Moves.TYPE, m.Tick.TYPE, m.Resync.TYPE])),
    st.builds(bad_header, st.integers(1, 100), st.sampled_from([0x00, 0x01, 0x7F, 0xFF])),
)


def test_the_compiled_scanner_was_built():
    # `pip install .` builds it where a C compiler is found, as on every
    # machine scripts/system-deps.sh sets up; the Python twin is the fallback.
    assert fastpath.COMPILED, "mmo.loadgen._fastpath was not built: is a C compiler installed?"
    assert fastpath.scan is not fastpath.scan_py


@settings(max_examples=400, deadline=None)
@given(st.lists(frames, max_size=12), st.one_of(st.none(), bad_headers),
       st.integers(0, 2000), st.integers(0, 30), st.data())
def test_compiled_and_python_scans_agree(parts, bad, cut, visible, data):
    buf = b"".join(parts) + (bad or b"")
    end = data.draw(st.integers(0, len(buf)))
    pos = data.draw(st.integers(0, end))
    for kind in (bytes, bytearray, lambda b: memoryview(bytearray(b) + bytes(cut))):
        b = kind(buf)
        assert fastpath.scan(b, pos, end, MAX_FRAME, visible) == fastpath.scan_py(
            b, pos, end, MAX_FRAME, visible)


def test_scan_takes_an_update_and_stops_where_the_bot_takes_over():
    update = (m.Tick(7, 950.5).encode() + m.Moves(((1, 1.0, 1.0), (2, 2.0, 2.0))).encode()
              + m.Enter((m.EntityInfo(3, 0, 1.0, 1.0, "c"),)).encode()
              + m.Leave((1, 2)).encode())
    pong = m.Pong(1, 1.0, 2.0).encode()
    buf = update + m.Tick(8, 951.0).encode() + pong
    for scan in (fastpath.scan, fastpath.scan_py):
        # Four frames, three updates and one come and two gone of five seen.
        assert scan(buf, 0, len(buf), MAX_FRAME, 5) == (
            len(update), 4, 5, 4, m.Leave.TYPE, 950.5)
        # The second Tick starts a scan of its own, and the Pong is the bot's.
        assert scan(buf, len(update), len(buf), MAX_FRAME, 4) == (
            len(buf) - len(pong), 1, 0, 4, m.Tick.TYPE, 951.0)
        # A frame cut by the end of the read waits; so does nothing at all.
        leave = len(m.Leave((1, 2)).encode())
        assert scan(buf, 0, len(update) - 1, MAX_FRAME, 0)[:3] == (len(update) - leave, 3, 3)
        assert scan(b"", 0, 0, MAX_FRAME, 2) == (0, 0, 0, 2, -1, None)
        with pytest.raises(ValueError):
            scan(buf, 0, len(buf) + 1, MAX_FRAME, 0)


class Link:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        pass


def playing_bot() -> Bot:
    clock = Clock()
    clock.advance(1000.0)
    options = Options()
    options.parseOptions(["--no-progress"])
    bot = Bot(0, "b0", "pw", Fleet(options.settings, clock), clock, random.Random(1))
    bot.transport = Link()  # type: ignore[assignment]
    bot.playing_since = bot.last_update = 990.0
    bot.state = "playing"
    return bot


def measures(bot: Bot) -> tuple:
    fleet = bot.fleet
    return (bot.counters(), bot.visible, bot.last_type, (bot.x, bot.y), bot.longest_gap,
            bot.last_update, fleet.interval.update_age.to_dict(), fleet.interval.rtt.to_dict(),
            dict(fleet.stats.corrections), dict(fleet.stats.errors),
            bot.protocol_error and str(bot.protocol_error), bot.transport.aborted)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, max_size=30), st.one_of(st.none(), bad_headers),
       st.lists(st.integers(1, 300), min_size=1, max_size=20))
def test_a_bot_counts_the_same_through_either_scan(parts, bad, reads):
    stream = b"".join(parts) + (bad or b"")
    seen = []
    for scan in (fastpath.scan, fastpath.scan_py):
        bot = playing_bot()
        old = bot_module._scan_update
        bot_module._scan_update = scan
        try:
            pos, i = 0, 0
            while pos < len(stream):
                n = reads[i % len(reads)]
                buf = bytearray(stream[pos:pos + n]) + bytearray(7)  # a reused buffer: junk after
                bot.received(memoryview(buf), min(n, len(stream) - pos))
                pos += n
                i += 1
        finally:
            bot_module._scan_update = old
        seen.append(measures(bot))
    assert seen[0] == seen[1]
    # And both are right, not merely alike: every frame before a bad header counted.
    if bad is None:
        counters = seen[0][0]
        assert counters["frames_in"] == len(parts)
        assert counters["ticks"] == sum(p[4] == m.Tick.TYPE for p in parts)
        assert counters["entity_updates"] == sum(
            struct.unpack_from(">H", p, 5)[0] for p in parts
            if p[4] in (m.Moves.TYPE, m.Enter.TYPE, m.Leave.TYPE))
    else:
        assert seen[0][-1] is True and seen[0][-2] is not None  # refused, connection dropped
