"""
WebSocket players against a real ``twistd -n mmo --websocket``, over real
sockets on 127.0.0.1: bad input (a text message, a 10 MB message, garbage
after the handshake, a reader that never reads, a page of another site)
gets the documented error or close, while a TCP player and a browser
player keep playing together.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest
from support import WireClient, wait_until
from wsclient import OP_TEXT, HandshakeRefused, WsWireClient

from mmo.wire import messages as m
from mmo.wire.messages import ErrorCode

WEBSOCKET = ("--websocket", "tcp:0:interface=127.0.0.1", "--zone", "town:300x300")
#: Players start in a quiet arena; in the town next door 2,500 NPCs wander,
#: 20 ticks a second: 400 kB of updates a second for whoever goes there,
#: enough to fill the socket buffers of a reader that does not read within a
#: few seconds.
CROWDED = ("--websocket", "tcp:0:interface=127.0.0.1", "--zone", "arena:300x300",
           "--zone", "town:300x300", "--npcs", "town:2500", "--tick-rate", "20",
           "--stuck-timeout", "2", "--output-buffer", "65536")


@pytest.fixture
def node(start_node: Any) -> Any:
    return start_node(*WEBSOCKET)


def refused(client: WsWireClient, code: int) -> m.Error:
    """The Error the node sent ``client`` before closing it."""
    error = client.expect(m.Error, lambda e: e.code == code, timeout=10)
    client.wait_closed(10)
    return error


def still_playing(tcp: WireClient, browser: WsWireClient, tag: str, chat: bool = True) -> None:
    """
    The TCP player sees the browser player move and (``chat``, within the
    chat rate) chat, and the other way round.
    """
    browser.drain(0)
    # Half a unit: legal however soon after the last move.
    browser.x = getattr(browser, "x", 150.0) + 0.5
    browser.send(m.Move(1, browser.x, browser.y))
    tcp.expect(m.Moves, lambda mv: any(abs(e[1] - browser.x) < 0.01
                                       and abs(e[2] - browser.y) < 0.01 for e in mv.moves))
    if not chat:
        return
    tcp.send(m.Chat(m.Channel.ZONE, f"tcp {tag}"))
    browser.expect(m.ChatMessage, lambda c: c.text == f"tcp {tag}", timeout=5)
    browser.send(m.Chat(m.Channel.ZONE, f"browser {tag}"))
    tcp.expect(m.ChatMessage, lambda c: c.text == f"browser {tag}", timeout=5)


def players(node: Any) -> tuple[WireClient, WsWireClient]:
    tcp = WireClient(node.port)
    tcp.login("tcp-player")
    browser = WsWireClient(node.websocket_port, origin="http://127.0.0.1:9100")
    enter = browser.login("web-player")
    browser.x, browser.y = enter.x, enter.y
    return tcp, browser


def test_bad_websocket_input_is_refused_while_others_play(node: Any) -> None:
    tcp, browser = players(node)
    still_playing(tcp, browser, "start")

    # A text message: BAD_FRAME, then a WebSocket close (1000).
    text = WsWireClient(node.websocket_port)
    text.login("texter")
    text.send_message(b'{"hello": "json"}', OP_TEXT)
    assert "text messages" in refused(text, ErrorCode.BAD_FRAME).text
    assert text.close_frame is not None and text.close_frame[0] == 1000
    still_playing(tcp, browser, "text")

    # 10 MB in one message: FRAME_TOO_LARGE from its header, the rest dropped.
    huge = WsWireClient(node.websocket_port)
    huge.login("huge")
    try:
        huge.send_message(os.urandom(10 * 1024 * 1024))
    except OSError:
        pass  # the node may close before the last bytes: it said why first
    assert "exceeds the limit" in refused(huge, ErrorCode.FRAME_TOO_LARGE).text
    still_playing(tcp, browser, "huge")

    # Bytes that are not WebSocket frames at all.
    garbage = WsWireClient(node.websocket_port)
    garbage.login("garbage")
    garbage.send_raw(b"\xf2\x05GARBAGE and then some more of it")
    assert refused(garbage, ErrorCode.BAD_FRAME).text.startswith("not a WebSocket frame")
    still_playing(tcp, browser, "garbage")

    # Several frames in one message.
    two = WsWireClient(node.websocket_port)
    two.login("two")
    two.send_message(m.Ping(1, 0.0).encode() + m.Ping(2, 0.0).encode())
    assert "exactly one frame" in refused(two, ErrorCode.BAD_FRAME).text
    still_playing(tcp, browser, "two")


def test_a_websocket_reader_that_never_reads_is_cut(start_node: Any) -> None:
    node = start_node(*CROWDED)
    tcp, browser = players(node)
    slow = WsWireClient(node.websocket_port, rcvbuf=4096)
    slow.login("slow")
    slow.send(m.ChangeZone("town"))
    # It reads nothing from here on; 2,500 NPCs move in its view.

    def cut() -> bool:
        try:
            slow.sock.setblocking(False)
            return slow.sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True

    # The node stops updating it once its buffer is full, and cuts it after
    # stuck_timeout (2 s); the others move on meanwhile.
    deadline = time.monotonic() + 30
    while not (cut() or "SLOW_READER" in node.output):
        assert time.monotonic() < deadline, "the slow reader was never cut"
        still_playing(tcp, browser, "slow", chat=False)
    wait_until(lambda: "refused 127.0.0.1 (slow): SLOW_READER" in node.output, timeout=10)
    still_playing(tcp, browser, "after")


def test_a_page_of_another_site_is_turned_away(node: Any) -> None:
    with pytest.raises(HandshakeRefused, match="403"):
        WsWireClient(node.websocket_port, origin="https://evil.example")
    # Not a browser (no Origin), or a page of this host: let in.
    WsWireClient(node.websocket_port).login("no-origin")
    WsWireClient(node.websocket_port, origin="http://127.0.0.1:8000").login("same-host")
