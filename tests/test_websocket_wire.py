"""
The WebSocket binding, sans-IO (:mod:`mmo.wire.websocket`): one frame per
message each way, the server's message headers, and the checks of what a
client sends.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsclient import OP_BINARY, OP_PING, OP_TEXT, client_frame, parse_frames

from mmo.wire import messages as m
from mmo.wire.frames import FrameDecoder
from mmo.wire.messages import ErrorCode, ProtocolError
from mmo.wire.websocket import (
    MessageReader,
    message_header,
    read_messages,
    server_messages,
    split_frames,
)


def frame(body_size: int, type_: int = m.Chat.TYPE) -> bytes:
    """A frame of ``body_size`` body bytes (its content does not matter here)."""
    return (body_size + 1).to_bytes(4, "big") + bytes([type_]) + b"x" * body_size


bodies = st.lists(st.integers(0, 70_000), min_size=0, max_size=6)


@given(bodies)
def test_split_frames_gives_each_frame_back(sizes: list[int]) -> None:
    frames = [frame(n) for n in sizes]
    assert split_frames(b"".join(frames)) == frames


@given(bodies)
def test_server_messages_are_one_final_unmasked_binary_frame_each(sizes: list[int]) -> None:
    frames = [frame(n) for n in sizes]
    parsed, rest = parse_frames(server_messages(b"".join(frames)))
    assert rest == b""
    assert parsed == [(OP_BINARY, f) for f in frames]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_message_header_uses_the_shortest_length(size: int) -> None:
    header = message_header(size)
    assert header[0] == 0x82
    assert len(header) == (2 if size < 126 else 4 if size < 65536 else 10)
    parsed, rest = parse_frames(header + b"y" * size)
    assert (parsed, rest) == ([(OP_BINARY, b"y" * size)], b"")


@pytest.mark.parametrize("data", [b"\x00\x00", frame(3)[:-1], frame(3) + b"\x00\x00\x00",
                                  frame(2) + frame(5)[:6]])
def test_a_partial_frame_is_a_bug_not_a_message(data: bytes) -> None:
    with pytest.raises(ValueError, match="partial frame"):
        server_messages(data)
    with pytest.raises(ValueError, match="partial frame"):
        split_frames(data)


def read(reader: MessageReader, *fragments: bytes, binary: bool = True) -> bytes:
    reader.begin(binary)
    for part in fragments:
        reader.fragment(len(part))
        reader.data(part)
    return reader.end()


def test_a_binary_message_of_one_frame_is_that_frame() -> None:
    reader = MessageReader(16384)
    move = m.Move(1, 2.0, 3.0).encode()
    assert read(reader, move) == move
    # Fragmented by the browser or a proxy: the same frame.
    assert read(reader, move[:3], move[3:9], move[9:]) == move


def test_a_text_message_is_a_bad_frame() -> None:
    with pytest.raises(ProtocolError) as e:
        MessageReader(16384).begin(False)
    assert e.value.code == ErrorCode.BAD_FRAME
    assert "text messages" in e.value.text


def test_a_message_over_the_largest_frame_is_refused_before_its_bytes() -> None:
    reader = MessageReader(16384)
    reader.begin(True)
    reader.fragment(16388)  # a frame of max_frame bytes and its length: fine
    with pytest.raises(ProtocolError) as e:
        reader.fragment(1)
    assert e.value.code == ErrorCode.FRAME_TOO_LARGE
    reader.begin(True)
    with pytest.raises(ProtocolError) as e:
        reader.fragment(10 * 1024 * 1024)
    assert e.value.code == ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize("message", [
    b"", b"\x00\x00\x01", m.Who().encode() + m.Who().encode(), m.Who().encode()[:-1] + b"",
    (9).to_bytes(4, "big") + b"\x03abc",
])
def test_a_message_that_is_not_exactly_one_frame_is_a_bad_frame(message: bytes) -> None:
    reader = MessageReader(16384)
    reader.begin(True)
    reader.fragment(len(message))
    reader.data(message)
    with pytest.raises(ProtocolError) as e:
        reader.end()
    assert e.value.code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("message, code", [
    ((20_000).to_bytes(4, "big") + b"\x03", ErrorCode.FRAME_TOO_LARGE),
    ((0).to_bytes(4, "big") + b"\x03\x00", ErrorCode.BAD_FRAME),
])
def test_a_bad_header_gets_the_decoders_own_error(message: bytes, code: int) -> None:
    # Handed on, so that the session's decoder refuses it as it would on TCP.
    passed = read(MessageReader(16384), message)
    with pytest.raises(ProtocolError) as e:
        FrameDecoder.for_server(16384).feed_frames(passed)
    assert e.value.code == code


@given(st.lists(st.tuples(st.booleans(), st.lists(st.binary(max_size=40), max_size=4)),
                max_size=8))
def test_any_messages_give_frames_or_one_clean_error(messages: list) -> None:
    reader = MessageReader(64)
    for binary, fragments in messages:
        try:
            got = read(reader, *fragments, binary=binary)
        except ProtocolError as e:
            assert e.code in (ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE)
            continue
        assert binary and got == b"".join(fragments)
        assert sum(len(p) for p in reader.parts) == 0


def server_frame(payload: bytes, opcode: int = OP_BINARY, fin: bool = True) -> bytes:
    return bytes([(0x80 if fin else 0) | opcode]) + message_header(len(payload))[1:] + payload


@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans(), st.integers(0, 20))
def test_read_messages_reads_whole_binary_messages(payloads: list[bytes], masked: bool,
                                                   cut: int) -> None:
    make = client_frame if masked else server_frame
    data = b"".join(make(p) for p in payloads)
    got, used = read_messages(data, masked, 16384)
    assert (got, used) == (payloads, len(data))
    # A partial frame at the end is left for later, whole.
    if payloads and cut:
        last = make(payloads[-1])
        short = data[:-min(cut, len(last))]
        got, used = read_messages(short, masked, 16384)
        assert got == payloads[:-1] and used == len(data) - len(last)


@pytest.mark.parametrize("frame", [
    client_frame(b"text", OP_TEXT),                     # not binary
    client_frame(b"ping", OP_PING),                     # a control frame
    client_frame(b"part", OP_BINARY, fin=False),        # a fragment
    server_frame(b"unmasked"),                          # a client's frame must be masked
    client_frame(b"x" * 70000),                         # a 64-bit length
    client_frame(b"x" * 200),                           # over the limit given
])
def test_read_messages_leaves_anything_else_to_the_full_parser(frame: bytes) -> None:
    before = client_frame(b"ok")
    got, used = read_messages(before + frame + client_frame(b"after"), True, 100)
    assert (got, used) == ([b"ok"], len(before))


def test_a_long_length_written_short_is_left_to_the_full_parser() -> None:
    # 126 says "16-bit length follows", but 5 fits in 7 bits: not the shortest form.
    frame = bytes([0x82, 0x80 | 126, 0, 5]) + b"\x00" * 4 + b"hello"
    assert read_messages(frame, True, 100) == ([], 0)
