"""
One definition of each frame's bytes: the structs of :mod:`mmo.wire.layout`.

The message codec, the per-tick encoders and the load generator's bots all
use them: the fast paths give and read exactly the bytes of
``Message.encode()``, and no module outside :mod:`mmo.wire` spells a frame's
struct format (the cluster's codec is another protocol and has its own).
"""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from mmo.loadgen.bot import Bot
from mmo.loadgen.stats import Interval, Stats
from mmo.wire import fast, layout
from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder, decode_all

ROOT = Path(__file__).resolve().parents[1]

layout_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
f64 = st.floats(-1e12, 1e12, allow_nan=False)
entity_info = st.builds(m.EntityInfo, u32, u8, f32, f32, st.text(max_size=12))

#: The frames a bot reads itself rather than through the decoder.
measured = st.one_of(
    st.builds(m.Tick, u32, f64),
    st.builds(m.Pong, u32, f64, f64),
    st.builds(m.Correction, u32, f32, f32, st.sampled_from(list(m.CorrectionReason))),
    st.builds(m.Moves, st.lists(st.tuples(u32, f32, f32), max_size=10).map(tuple)),
    st.builds(m.Enter, st.lists(entity_info, max_size=6).map(tuple)),
    st.builds(m.Leave, st.lists(u32, max_size=10).map(tuple)),
    st.just(m.Resync()),
)


# ---------------------------------------------------------------- the layout


def test_header_and_whole_frame_structs_are_the_parts_joined() -> None:
    assert layout.HEADER.size == layout.LENGTH_SIZE + 1
    assert layout.TICK_FRAME.size == layout.HEADER.size + layout.TICK.size
    assert layout.MOVE_FRAME.size == layout.HEADER.size + layout.MOVE.size
    assert layout.COUNTED_HEAD.size == layout.HEADER.size + layout.COUNT.size
    assert layout.frame_length(layout.MOVE_FRAME) == 1 + layout.MOVE.size
    assert layout.repeated(layout.MOVE_ITEM, 3, layout.COUNT).size == 2 + 3 * 12
    assert layout.repeated(layout.LEAVE_ITEM, 0).size == 0


@layout_settings
@given(u32, f32, f32)
def test_move_body_layout_is_what_the_codec_writes(seq: int, x: float, y: float) -> None:
    # The server's session reads Move bodies with layout.MOVE directly.
    (type_, body), = FrameDecoder.for_server().feed_frames(m.Move(seq, x, y).encode())
    assert type_ == m.Move.TYPE
    assert len(body) == layout.MOVE.size
    assert layout.MOVE.unpack(body) == (seq, x, y)


# ---------------------------------------------------------------- fast encoders


@layout_settings
@given(u32, f32, f32)
def test_fast_move_frame_is_the_move_message(seq: int, x: float, y: float) -> None:
    assert fast.move_frame(seq, x, y) == m.Move(seq, x, y).encode()


@layout_settings
@given(u32, f64)
def test_fast_tick_frame_is_the_tick_message(tick: int, t: float) -> None:
    assert fast.tick_frame(tick, t) == m.Tick(tick, t).encode()


@layout_settings
@given(st.lists(entity_info, max_size=8, unique_by=lambda e: e.entity_id))
def test_fast_entity_frames_are_the_messages(infos: list[m.EntityInfo]) -> None:
    ents = [_Entity(e.entity_id, e.kind, e.x, e.y, e.name) for e in infos]
    moves = m.Moves(tuple((e.entity_id, e.x, e.y) for e in infos)).encode()
    assert fast.moves_frames(ents) == (moves if ents else b"")
    enter = m.Enter(tuple(infos)).encode()
    assert fast.enter_frames(ents, {}) == ([enter] if ents else [])
    leave = m.Leave(tuple(e.entity_id for e in infos)).encode()
    assert fast.leave_frames(e.id for e in ents) == ([leave] if ents else [])


class _Entity:
    """What the tick hands the encoders: a world entity's fields."""

    def __init__(self, id: int, kind: int, x: float, y: float, name: str) -> None:
        self.id, self.kind, self.x, self.y, self.name = id, kind, x, y, name


# ---------------------------------------------------------------- the bot reads


class _FleetRecorder:
    """What a bot reports to its fleet, kept for the test to look at."""

    zone = ""
    spread = "spawn"

    def __init__(self) -> None:
        self.stats = Stats()
        self.interval = Interval()
        self.ages: list[float] = []
        self.rtts: list[float] = []

    def update_age(self, seconds: float) -> None:
        self.ages.append(seconds)

    def rtt(self, seconds: float) -> None:
        self.rtts.append(seconds)

    def error(self, name: str) -> None:
        self.stats.errors[name] += 1


@layout_settings
@given(st.lists(measured, max_size=12), st.floats(0, 1e9), st.data())
def test_bot_reads_what_the_codec_writes(msgs: list[m.Message], now: float,
                                         data: st.DataObject) -> None:
    clock = Clock()
    clock.advance(now)
    fleet = _FleetRecorder()
    bot = Bot(0, "bot0", "pw", fleet, clock, random.Random(1))  # type: ignore[arg-type]
    stream = b"".join(msg.encode() for msg in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        bot.dataReceived(stream[a:b])

    # What it should have seen, from the codec's own decoding.
    ages, rtts, corrections = [], [], []
    visible = updates = ticks = 0
    for msg in decode_all(stream):
        if isinstance(msg, m.Tick):
            ticks += 1
            ages.append(now - msg.server_time)
        elif isinstance(msg, m.Pong):
            rtts.append(now - msg.client_time)
        elif isinstance(msg, m.Correction):
            corrections.append(msg)
        elif isinstance(msg, m.Moves):
            updates += len(msg.moves)
        elif isinstance(msg, m.Enter):
            visible += len(msg.entities)
            updates += len(msg.entities)
        elif isinstance(msg, m.Leave):
            visible = max(0, visible - len(msg.entity_ids))
            updates += len(msg.entity_ids)
        elif isinstance(msg, m.Resync):
            visible = 0
    assert bot.protocol_error is None
    assert bot.frames_in == len(msgs)
    assert (bot.ticks, fleet.ages, fleet.rtts) == (ticks, ages, rtts)
    assert bot.pongs == len(rtts)
    assert (bot.visible, bot.entity_updates) == (visible, updates)
    assert bot.corrections == len(corrections)
    assert sum(fleet.stats.corrections.values()) == len(corrections)
    if corrections:
        assert (bot.x, bot.y) == (corrections[-1].x, corrections[-1].y)
        reason = m.CorrectionReason(corrections[-1].reason).name.lower()
        assert fleet.stats.corrections[reason] >= 1


# ---------------------------------------------------------------- one definition

#: Outside these, nothing spells a struct format of a client frame.
ALLOWED = ("mmo/wire/", "mmo/cluster/")
#: Modules still to switch to :mod:`mmo.wire.layout`, and what they should use.
#: Remove an entry when its module is switched (the test says so).
PENDING: dict[str, str] = {}
_FORMAT = re.compile(r"[<>!=@][0-9]*[xcbB?hHiIlLqQnNefdspP][0-9xcbB?hHiIlLqQnNefdspP]*")
_STRUCT_CALLS = {"Struct", "pack", "pack_into", "unpack", "unpack_from", "iter_unpack",
                 "calcsize"}


def struct_formats(source: str) -> list[str]:
    """Struct formats written in ``source``: literal or f-string arguments of
    struct calls, and string literals that look like a byte-order format."""
    tree = ast.parse(source)
    modules = {"struct"}
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "struct"}
        elif isinstance(node, ast.ImportFrom) and node.module == "struct":
            functions |= {a.asname or a.name for a in node.names if a.name in _STRUCT_CALLS}
    found = []
    seen: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            # f"{x:>10s}" is a format spec, not a struct format.
            seen |= {id(n) for n in ast.walk(node.format_spec)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            f = node.func
            is_struct = (
                isinstance(f, ast.Attribute) and f.attr in _STRUCT_CALLS
                and isinstance(f.value, ast.Name) and f.value.id in modules
            ) or (isinstance(f, ast.Name) and f.id in functions)
            if is_struct and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)):
                found.append(ast.unparse(node.args[0]))
                seen.add(id(node.args[0]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in seen and _FORMAT.fullmatch(node.value):
            found.append(repr(node.value))
    return found


def test_the_format_finder_finds_formats() -> None:
    assert struct_formats('import struct\nS = struct.Struct(">Iff")\n') == ["'>Iff'"]
    assert struct_formats('import struct as s\ns.calcsize(f">{n}I")\n') == ["f'>{n}I'"]
    assert struct_formats('from struct import pack as p\np("!H", 1)\n') == ["'!H'"]
    assert struct_formats('x = "<b>bold</b>"\ny = ">"\nimport struct\nstruct.pack(f, 1)\n') == []
    assert struct_formats('line = f"{name:<22}{n:>10s}"\n') == []
    assert struct_formats('LAYOUT = ">IBff"\n') == ["'>IBff'"]


def test_no_module_outside_the_wire_spells_a_frame_format() -> None:
    offenders = {}
    for root in ("mmo", "benchmarks", "gui", "plugins"):
        for path in sorted((ROOT / root).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ALLOWED):
                continue
            formats = struct_formats(path.read_text(encoding="utf-8"))
            if formats:
                offenders[rel] = formats
    switched = [p for p in PENDING if p not in offenders]
    assert not switched, f"{switched} no longer spell frame formats: remove them from PENDING"
    unexpected = {p: f for p, f in offenders.items() if p not in PENDING}
    assert not unexpected, (
        f"struct formats outside mmo/wire: {unexpected}; use the structs of mmo.wire.layout"
    )
