"""
``docs/PROTOCOL.md`` must agree with the codec.

This module holds the field layout of every message as the document states
it, encodes messages field by field from that layout and checks the bytes
against :mod:`mmo.wire.messages`; it checks the document's layout tables and
enum tables against the codec; and it generates the document's worked
example, byte for byte, and checks that the document holds exactly that.

After a deliberate change to the protocol, regenerate the example with::

    .venv/bin/python tests/test_protocol_doc.py
"""

from __future__ import annotations

import re
import struct
import sys
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from mmo.wire import messages as m
from mmo.wire.frames import decode_all

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
BEGIN = "<!-- BEGIN GENERATED EXAMPLE: tests/test_protocol_doc.py -->"
END = "<!-- END GENERATED EXAMPLE -->"

# ---------------------------------------------------------------- layouts

#: Each message's body, field by field in wire order.  A nested list is a
#: repeated item; the ``count`` field before it says how many there are.
Layout = list[tuple[str, Any]]
LAYOUTS: dict[type[m.Message], Layout] = {
    m.Hello: [("version", "u16"), ("client", "str")],
    m.Login: [("name", "str"), ("password", "str")],
    m.Move: [("seq", "u32"), ("x", "f32"), ("y", "f32")],
    m.Ping: [("token", "u32"), ("client_time", "f64")],
    m.Chat: [("channel", "u8"), ("target", "str"), ("text", "str")],
    m.ChangeZone: [("zone", "str")],
    m.Who: [],
    m.Bye: [],
    m.Welcome: [("version", "u16"), ("max_frame", "u32"), ("node_id", "str"),
                ("server", "str")],
    m.EnterWorld: [("entity_id", "u32"), ("x", "f32"), ("y", "f32"),
                   ("zone_width", "f32"), ("zone_height", "f32"), ("aoi", "f32"),
                   ("tick_hz", "u16"), ("zone", "str"), ("node_id", "str")],
    m.Tick: [("tick", "u32"), ("server_time", "f64")],
    m.Enter: [("count", "u16"), ("entities", [
        ("entity_id", "u32"), ("kind", "u8"), ("x", "f32"), ("y", "f32"),
        ("name", "str")])],
    m.Leave: [("count", "u16"), ("entity_ids", [("entity_id", "u32")])],
    m.Moves: [("count", "u16"), ("moves", [
        ("entity_id", "u32"), ("x", "f32"), ("y", "f32")])],
    m.Correction: [("seq", "u32"), ("x", "f32"), ("y", "f32"), ("reason", "u8")],
    m.Pong: [("token", "u32"), ("client_time", "f64"), ("server_time", "f64")],
    m.ChatMessage: [("channel", "u8"), ("sender", "str"), ("text", "str")],
    m.WhoReply: [("total", "u32"), ("count", "u16"), ("players", [
        ("name", "str"), ("zone", "str"), ("node_id", "str")])],
    m.Notice: [("kind", "u8"), ("text", "str")],
    m.Error: [("code", "u16"), ("text", "str")],
    m.Resync: [],
    m.Resume: [("token", "str")],
    m.Ticket: [("valid_for", "u16"), ("token", "str")],
    m.Redirect: [("host", "str"), ("port", "u16"), ("websocket_port", "u16"), ("token", "str")],
}

SCALARS = {"u8": ">B", "u16": ">H", "u32": ">I", "f32": ">f", "f64": ">d"}
ENUMS: dict[tuple[type, str], type[IntEnum]] = {
    (m.Chat, "channel"): m.Channel, (m.ChatMessage, "channel"): m.Channel,
    (m.Enter, "kind"): m.Kind, (m.Correction, "reason"): m.CorrectionReason,
    (m.Notice, "kind"): m.NoticeKind, (m.Error, "code"): m.ErrorCode,
}


def _item_values(item: Any, layout: Layout) -> list[Any]:
    if isinstance(item, tuple):
        return list(item)
    if isinstance(item, int):
        return [item]
    return [getattr(item, name) for name, _ in layout]


def fields(msg: m.Message) -> list[tuple[str, str, Any, bytes]]:
    """``(name, type, value, bytes)`` of each field of ``msg``, in wire order."""
    out: list[tuple[str, str, Any, bytes]] = []
    layout = LAYOUTS[type(msg)]
    for i, (name, kind) in enumerate(layout):
        if isinstance(kind, list):
            for n, item in enumerate(getattr(msg, name)):
                values = _item_values(item, kind)
                for (sub, sub_kind), value in zip(kind, values, strict=True):
                    out.append((f"{name}[{n}].{sub}", sub_kind, value, _pack(sub_kind, value)))
            continue
        if name == "count":
            value = len(getattr(msg, layout[i + 1][0]))
        else:
            value = getattr(msg, name)
        out.append((name, kind, value, _pack(kind, value)))
    return out


def _pack(kind: str, value: Any) -> bytes:
    if kind == "str":
        raw = value.encode("utf-8")
        return struct.pack(">H", len(raw)) + raw
    return struct.pack(SCALARS[kind], value)


def encode_by_layout(msg: m.Message) -> bytes:
    body = b"".join(raw for _, _, _, raw in fields(msg))
    return struct.pack(">IB", len(body) + 1, msg.TYPE) + body


# ---------------------------------------------------------------- the example

NODE = "node-a"
SERVER = "mmo/0.1.0"
T0 = 1700000000.25

EXAMPLE: list[tuple[str, str, list[m.Message]]] = [
    ("C→S", "The client says hello first.",
     [m.Hello(1, "democlient/1")]),
    ("S→C", "The server answers with its version, its node id and the largest "
            "frame it accepts.",
     [m.Welcome(1, NODE, 16384, SERVER)]),
    ("C→S", "Log in (with open registration, an unknown name creates an account).",
     [m.Login("alice", "s3cret")]),
    ("S→C", "Logged in: alice is entity 1 in zone `world`.",
     [m.EnterWorld(1, "world", 1012.5, 987.25, 2000.0, 2000.0, 100.0, 10, NODE)]),
    ("S→C", "The next tick, in one write: the tick header, then bob enters "
            "alice's area.",
     [m.Tick(41, T0), m.Enter((m.EntityInfo(2, m.Kind.PLAYER, 1030.5, 990.0, "bob"),))]),
    ("C→S", "Alice moves 2.5 units east.",
     [m.Move(1, 1015.0, 987.25)]),
    ("S→C", "Tick 42: one Moves frame for the cell alice and bob share; it holds "
            "alice's own new position too.",
     [m.Tick(42, T0 + 0.1), m.Moves(((1, 1015.0, 987.25), (2, 1029.0, 991.5)))]),
    ("C→S", "Alice tries to jump 385 units at once.",
     [m.Move(2, 1400.0, 987.25)]),
    ("S→C", "Refused: the correction carries the true position.",
     [m.Correction(2, 1015.0, 987.25, m.CorrectionReason.TOO_FAST)]),
    ("C→S", "Ping.",
     [m.Ping(7, 12.5)]),
    ("S→C", "Pong echoes the token and the client's time, and adds the server's.",
     [m.Pong(7, 12.5, T0 + 0.15)]),
    ("C→S", "Say hello to the area.",
     [m.Chat(m.Channel.SAY, "hello")]),
    ("S→C", "Every player in the area gets the line, the speaker included.",
     [m.ChatMessage(m.Channel.SAY, "alice", "hello")]),
    ("C→S", "Whisper to bob.",
     [m.Chat(m.Channel.WHISPER, "psst", "bob")]),
    ("S→C", "Bob gets `ChatMessage(WHISPER, \"alice\", \"psst\")`; alice gets "
            "the echo.",
     [m.ChatMessage(m.Channel.WHISPER, "to bob", "psst")]),
    ("C→S", "Who is online?",
     [m.Who()]),
    ("S→C", "Two players.",
     [m.WhoReply(2, (("alice", "world", NODE), ("bob", "world", NODE)))]),
    ("S→C", "Tick 43: bob has walked out of alice's area.",
     [m.Tick(43, T0 + 0.2), m.Leave((2,))]),
    ("C→S", "Goodbye; the server closes the connection.",
     [m.Bye()]),
]

#: Frames that the session above does not show.
OTHERS: list[tuple[str, str, list[m.Message]]] = [
    ("C→S", "Go to the zone `arena`.",
     [m.ChangeZone("arena")]),
    ("S→C", "Arrived near the arena's centre; the next tick brings Leave and "
            "Enter frames for the new area.",
     [m.EnterWorld(1, "arena", 250.0, 262.5, 500.0, 500.0, 100.0, 10, NODE)]),
    ("S→C", "After a slow reader has drained: forget everything, then the "
            "whole area again.",
     [m.Tick(90, T0 + 5.0), m.Resync(),
      m.Enter((m.EntityInfo(2, m.Kind.PLAYER, 1029.0, 991.5, "bob"),
               m.EntityInfo(5, m.Kind.NPC, 1100.0, 950.0, "guard")))]),
    ("S→C", "The node is going down; the connection closes after this.",
     [m.Notice(m.NoticeKind.SHUTDOWN, "the server is shutting down")]),
    ("C→S", "On another connection, a client of a newer protocol says hello.",
     [m.Hello(2, "future/9")]),
    ("S→C", "Refused, and the server closes the connection.",
     [m.Error(m.ErrorCode.VERSION_MISMATCH, "this server speaks protocol 1, not 2")]),
    ("S→C", "After `EnterWorld`, and again every third of its life: a resume token "
            "(shortened here; real ones are about 60 characters).",
     [m.Ticket("AWVmZ2gA3q2-7wAFYWxpY2U", 60)]),
    ("C→S", "Alice's connection dropped; on a new one, after `Hello`, she comes back "
            "with the newest token instead of `Login`.",
     [m.Resume("AWVmZ2gA3q2-7wAFYWxpY2U")]),
    ("S→C", "At login, on a node that does not own alice's region: play on node b; "
            "the connection closes after this.",
     [m.Redirect("127.0.0.1", 4001, 0, "AWVmZ2gA3q2-7wAFYWxpY2U")]),
]


def _hex(raw: bytes) -> str:
    return " ".join(f"{b:02x}" for b in raw)


def _show(kind: str, value: Any, enum: type[IntEnum] | None) -> str:
    if kind == "str":
        return f"{len(value.encode('utf-8'))} bytes, {value!r}"
    if enum is not None:
        return f"{value} ({enum(value).name})"
    return repr(value)


def _call(value: Any) -> str:
    """``value`` as Python-like text, with enum members by name."""
    if isinstance(value, IntEnum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, tuple):
        inner = ", ".join(_call(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if hasattr(value, "__dataclass_fields__"):
        args = ", ".join(f"{k}={_call(v)}" for k, v in vars(value).items())
        return f"{type(value).__name__}({args})"
    return repr(value)


WIDTH = 16
COLUMN = 3 * WIDTH + 4


def annotate(msg: m.Message) -> list[str]:
    """The frame of ``msg``, one field per line with what it means."""
    data = msg.encode()
    assert encode_by_layout(msg) == data, f"layout of {type(msg).__name__} is wrong"
    lines: list[tuple[bytes, str]] = [
        (data[:4], f"length = {len(data) - 4}"),
        (data[4:5], f"type = 0x{msg.TYPE:02x} ({type(msg).__name__})"),
    ]
    for name, kind, value, raw in fields(msg):
        base = name.rsplit(".", 1)[-1].split("[")[0]
        enum = ENUMS.get((type(msg), base))
        if name.endswith(".kind") and isinstance(msg, m.Enter):
            enum = m.Kind
        lines.append((raw, f"{name} = {_show(kind, value, enum)}"))
    out = []
    for raw, note in lines:
        rows = [raw[i : i + WIDTH] for i in range(0, len(raw), WIDTH)] or [b""]
        out.append("  " + _hex(rows[0]).ljust(COLUMN) + note)
        out += ["  " + _hex(r) for r in rows[1:]]
    return out


def _section(steps: list[tuple[str, str, list[m.Message]]]) -> list[str]:
    out: list[str] = []
    for direction, words, msgs in steps:
        out.append(f"{direction}  {words}")
        out.append("")
        out.append("```")
        for i, msg in enumerate(msgs):
            if i:
                out.append("")
            out.append(_call(msg))
            out += annotate(msg)
        out.append("```")
        out.append("")
    return out


def _dump(steps: list[tuple[str, str, list[m.Message]]], direction: str) -> bytes:
    return b"".join(x.encode() for d, _, msgs in steps if d == direction for x in msgs)


def render() -> str:
    """The generated part of the document, between the markers."""
    out = [BEGIN, "", "### The session, frame by frame", ""]
    out += _section(EXAMPLE)
    out += ["### Other frames", ""]
    out += _section(OTHERS)
    for direction, title in (("C→S", "client to server"), ("S→C", "server to client")):
        raw = _dump(EXAMPLE, direction)
        out += [
            f"### The whole session's bytes, {title} ({len(raw)} bytes)", "", "```",
        ]
        out += [_hex(raw[i : i + 32]).replace(" ", "") for i in range(0, len(raw), 32)]
        out += ["```", ""]
    out.append(END)
    return "\n".join(out)


def _generated_part(doc: str) -> str:
    start = doc.index(BEGIN)
    stop = doc.index(END) + len(END)
    return doc[start:stop]


# ---------------------------------------------------------------- tests


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_layouts_cover_every_message() -> None:
    assert set(LAYOUTS) == set(m.BY_TYPE.values())


@pytest.mark.parametrize("msg", [x for _, _, msgs in EXAMPLE + OTHERS for x in msgs],
                         ids=lambda x: type(x).__name__)
def test_layout_encodes_like_the_codec(msg: m.Message) -> None:
    assert encode_by_layout(msg) == msg.encode()


def test_every_message_appears_in_the_examples() -> None:
    shown = {type(x) for _, _, msgs in EXAMPLE + OTHERS for x in msgs}
    assert shown == set(m.BY_TYPE.values())


def test_example_in_the_doc_matches_the_codec() -> None:
    assert _generated_part(doc_text()) == render(), (
        "docs/PROTOCOL.md's example is out of date: run "
        ".venv/bin/python tests/test_protocol_doc.py")


def test_example_streams_decode() -> None:
    for direction, accept in (("C→S", m.CLIENT_MESSAGES), ("S→C", m.SERVER_MESSAGES)):
        raw = _dump(EXAMPLE, direction)
        expected = [x for d, _, msgs in EXAMPLE if d == direction for x in msgs]
        assert decode_all(raw, accept) == expected


def _doc_layouts(doc: str) -> dict[tuple[int, str], list[tuple[str, str]]]:
    """Each ``### 0xNN Name`` section's table rows as ``(field, type)``."""
    found: dict[tuple[int, str], list[tuple[str, str]]] = {}
    parts = re.split(r"^### (0x[0-9a-fA-F]{2}) (\w+)\s*$", doc, flags=re.M)
    for i in range(1, len(parts), 3):
        type_, name, body = int(parts[i], 16), parts[i + 1], parts[i + 2]
        body = body.split("\n## ", 1)[0]
        rows = []
        for line in body.splitlines():
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) >= 2 and cells[1] in (*SCALARS, "str"):
                rows.append((cells[0], cells[1]))
        found[(type_, name)] = rows
    return found


def _flat(layout: Layout) -> list[tuple[str, str]]:
    out = []
    for name, kind in layout:
        if isinstance(kind, list):
            out += [(f"↳ {sub}", sub_kind) for sub, sub_kind in kind]
        else:
            out.append((name, kind))
    return out


def test_doc_layout_tables_match_the_codec() -> None:
    found = _doc_layouts(doc_text())
    expected = {(cls.TYPE, cls.__name__): _flat(LAYOUTS[cls]) for cls in m.BY_TYPE.values()}
    assert found == expected


@pytest.mark.parametrize(
    "enum", [m.ErrorCode, m.Channel, m.Kind, m.CorrectionReason, m.NoticeKind],
    ids=lambda e: e.__name__,
)
def test_doc_enum_tables_match_the_codec(enum: type[IntEnum]) -> None:
    doc = doc_text()
    for member in enum:
        row = f"| {member.value} | `{member.name}` |"
        assert row in doc, f"docs/PROTOCOL.md lacks the row {row!r}"


def test_doc_states_the_protocol_version() -> None:
    assert f"The protocol version is **{m.PROTOCOL_VERSION}**" in doc_text()


def main() -> None:
    doc = doc_text()
    DOC.write_text(doc.replace(_generated_part(doc), render()), encoding="utf-8")
    print(f"rewrote the example in {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
