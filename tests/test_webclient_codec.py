"""
The web client's codec (``mmo/app/webclient/protocol.js``) agrees with
:mod:`mmo.wire`: every server message the codec encodes is decoded by the
page to the same fields, and what the page encodes is what the codec
encodes.  Run with Node.js where it is installed (the page itself is
tested in Chromium by ``test_webclient_browser.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mmo.wire import messages as m

NODE = shutil.which("node") or shutil.which("nodejs")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's codec")
CODEC = Path(__file__).resolve().parent.parent / "mmo" / "app" / "webclient" / "protocol.js"

RUNNER = """
const fs = require("fs"), vm = require("vm");
const context = { TextEncoder, TextDecoder };
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8") + "\\nthis.MMO = MMO;", context);
const { MMO } = context;
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const hex = (buffer) => Buffer.from(buffer).toString("hex");
const decoded = input.decode.map((h) => {
  const bytes = Buffer.from(h, "hex");
  return MMO.decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
});
const e = MMO.encode;
const encoded = [e.hello("web/1"), e.login("alice", "sécret"), e.move(7, 10.5, 20.25),
  e.ping(3, 1.5), e.chat(2, "hi", "bob"), e.changeZone("arena"), e.who(), e.bye(),
  e.resume("AQAB-_tok")].map(hex);
console.log(JSON.stringify({ decoded, encoded }));
"""

SERVER = [
    m.Welcome(1, "node-a", 16384, "mmo/0.1.0"),
    m.EnterWorld(5, "world", 1012.5, 987.25, 2000.0, 2000.0, 100.0, 10, "node-a"),
    m.Tick(41, 1700000000.25),
    m.Enter((m.EntityInfo(2, m.Kind.PLAYER, 1030.5, 990.0, "bob"),
             m.EntityInfo(9, m.Kind.NPC, 1.0, 2.0, "npc-9"))),
    m.Leave((2, 9)),
    m.Moves(((1, 1015.0, 987.25), (2, 1029.0, 991.5))),
    m.Correction(2, 1015.0, 987.25, m.CorrectionReason.TOO_FAST),
    m.Pong(7, 12.5, 1700000000.5),
    m.ChatMessage(m.Channel.WHISPER, "to bob", "psst ✓"),
    m.WhoReply(2, (("alice", "world", "node-a"), ("bob", "arena", "node-b"))),
    m.Notice(m.NoticeKind.SHUTDOWN, "the server is shutting down"),
    m.Error(m.ErrorCode.NAME_IN_USE, "logged in again from elsewhere"),
    m.Resync(),
    m.Ticket("AQAB-_tok", 60),
    m.Redirect("127.0.0.1", 4001, 4081, "AQAB-_tok"),
]

EXPECTED = [
    {"kind": "welcome", "version": 1, "maxFrame": 16384, "nodeId": "node-a", "server": "mmo/0.1.0"},
    {"kind": "enterWorld", "entityId": 5, "x": 1012.5, "y": 987.25, "zoneWidth": 2000,
     "zoneHeight": 2000, "aoi": 100, "tickHz": 10, "zone": "world", "nodeId": "node-a"},
    {"kind": "tick", "tick": 41, "serverTime": 1700000000.25},
    {"kind": "enter", "entities": [{"id": 2, "type": 0, "x": 1030.5, "y": 990, "name": "bob"},
                                   {"id": 9, "type": 1, "x": 1, "y": 2, "name": "npc-9"}]},
    {"kind": "leave", "ids": [2, 9]},
    {"kind": "moves", "moves": [{"id": 1, "x": 1015, "y": 987.25}, {"id": 2, "x": 1029, "y": 991.5}]},
    {"kind": "correction", "seq": 2, "x": 1015, "y": 987.25, "reason": 1},
    {"kind": "pong", "token": 7, "clientTime": 12.5, "serverTime": 1700000000.5},
    {"kind": "chat", "channel": 2, "sender": "to bob", "text": "psst ✓"},
    {"kind": "who", "total": 2, "players": [{"name": "alice", "zone": "world", "nodeId": "node-a"},
                                           {"name": "bob", "zone": "arena", "nodeId": "node-b"}]},
    {"kind": "notice", "type": 1, "text": "the server is shutting down"},
    {"kind": "error", "code": 6, "text": "logged in again from elsewhere"},
    {"kind": "resync"},
    {"kind": "ticket", "validFor": 60, "token": "AQAB-_tok"},
    {"kind": "redirect", "host": "127.0.0.1", "port": 4001, "websocketPort": 4081,
     "token": "AQAB-_tok"},
]


def test_the_pages_codec_agrees_with_the_wire() -> None:
    run = subprocess.run(
        [NODE, "-e", RUNNER, str(CODEC)],  # type: ignore[list-item]
        input=json.dumps({"decode": [msg.encode().hex() for msg in SERVER]}),
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["decoded"] == EXPECTED
    assert out["encoded"] == [msg.encode().hex() for msg in (
        m.Hello(1, "web/1"), m.Login("alice", "sécret"), m.Move(7, 10.5, 20.25),
        m.Ping(3, 1.5), m.Chat(m.Channel.WHISPER, "hi", "bob"), m.ChangeZone("arena"),
        m.Who(), m.Bye(), m.Resume("AQAB-_tok"))]
