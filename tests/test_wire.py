"""
The client protocol's codec: messages, frames and the per-tick fast encoders.

Unit tests pin the decoder's refusals; hypothesis checks that every message
round-trips, that the fast encoders give the same bytes as the message
classes, and that any bytes in any chunking give messages or a clean
:class:`ProtocolError`.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmo.wire import fast
from mmo.wire import messages as m
from mmo.wire.frames import DEFAULT_MAX_FRAME, FrameDecoder, decode_all
from mmo.wire.messages import ErrorCode, ProtocolError

#: Modest examples so that the whole file runs in a few seconds.
wire_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# ---------------------------------------------------------------- strategies

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
#: f32 fields: only values a float32 holds exactly survive the round trip.
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
f64 = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=40)

entity_info = st.builds(m.EntityInfo, u32, u8, f32, f32, text)

CLIENT = {
    m.Hello: st.builds(m.Hello, u16, text),
    m.Login: st.builds(m.Login, text, text),
    m.Move: st.builds(m.Move, u32, f32, f32),
    m.Ping: st.builds(m.Ping, u32, f64),
    m.Chat: st.builds(m.Chat, u8, text, text),
    m.ChangeZone: st.builds(m.ChangeZone, text),
    m.Who: st.just(m.Who()),
    m.Bye: st.just(m.Bye()),
    m.Resume: st.builds(m.Resume, text),
}
SERVER = {
    m.Welcome: st.builds(m.Welcome, u16, text, u32, text),
    m.EnterWorld: st.builds(m.EnterWorld, u32, text, f32, f32, f32, f32, f32, u16, text),
    m.Tick: st.builds(m.Tick, u32, f64),
    m.Enter: st.builds(m.Enter, st.lists(entity_info, max_size=8).map(tuple)),
    m.Leave: st.builds(m.Leave, st.lists(u32, max_size=16).map(tuple)),
    m.Moves: st.builds(
        m.Moves, st.lists(st.tuples(u32, f32, f32), max_size=16).map(tuple)
    ),
    m.Correction: st.builds(m.Correction, u32, f32, f32, u8),
    m.Pong: st.builds(m.Pong, u32, f64, f64),
    m.ChatMessage: st.builds(m.ChatMessage, u8, text, text),
    m.WhoReply: st.builds(
        m.WhoReply, u32, st.lists(st.tuples(text, text, text), max_size=6).map(tuple)
    ),
    m.Notice: st.builds(m.Notice, u8, text),
    m.Error: st.builds(m.Error, u16, text),
    m.Resync: st.just(m.Resync()),
    m.Ticket: st.builds(m.Ticket, text, u16),
    m.Redirect: st.builds(m.Redirect, text, u16, u16, text),
}
client_message = st.one_of(*CLIENT.values())
server_message = st.one_of(*SERVER.values())
any_message = st.one_of(client_message, server_message)


def test_strategies_cover_every_message() -> None:
    assert set(CLIENT) == set(m.CLIENT_MESSAGES)
    assert set(SERVER) == set(m.SERVER_MESSAGES)
    assert len(m.BY_TYPE) == len(m.CLIENT_MESSAGES) + len(m.SERVER_MESSAGES)
    # Client types have the top bit clear, server types have it set.
    assert all(t.TYPE < 0x80 for t in m.CLIENT_MESSAGES)
    assert all(t.TYPE >= 0x80 for t in m.SERVER_MESSAGES)


# ---------------------------------------------------------------- round trips


@wire_settings
@given(any_message)
def test_every_message_round_trips(msg: m.Message) -> None:
    data = msg.encode()
    length, type_ = m.HEADER.unpack_from(data)
    assert type_ == msg.TYPE
    assert length == len(data) - 4
    assert decode_all(data) == [msg]


@wire_settings
@given(client_message)
def test_server_decoder_reads_client_messages(msg: m.Message) -> None:
    assert FrameDecoder.for_server().feed(msg.encode()) == [msg]


@wire_settings
@given(server_message)
def test_client_decoder_reads_server_messages(msg: m.Message) -> None:
    assert FrameDecoder.for_client().feed(msg.encode()) == [msg]


@wire_settings
@given(st.lists(any_message, max_size=8), st.data())
def test_messages_round_trip_in_any_chunking(msgs: list[m.Message], data: st.DataObject) -> None:
    stream = b"".join(x.encode() for x in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    dec = FrameDecoder()
    out: list[m.Message] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += dec.feed(stream[start:stop])
    assert out == msgs
    assert dec.buffered == 0


def test_known_bytes() -> None:
    # Big-endian, length counts the type byte and the body, strings are
    # u16 length + UTF-8.
    assert m.Hello(1, "é").encode() == bytes.fromhex("00000007" "01" "0001" "0002c3a9")
    assert m.Who().encode() == bytes.fromhex("00000001" "07")
    assert m.Move(7, 1.5, -2.0).encode() == bytes.fromhex(
        "0000000d" "03" "00000007" "3fc00000" "c0000000"
    )
    assert m.Error(ErrorCode.BAD_STATE, "no").encode() == bytes.fromhex(
        "00000007" "8c" "0004" "0002" "6e6f"
    )


def test_chat_puts_target_before_text() -> None:
    body = m.Chat(m.Channel.WHISPER, "hi", "bob").encode()[5:]
    assert body == b"\x02" + b"\x00\x03bob" + b"\x00\x02hi"


def test_encoding_refuses_overlong_strings() -> None:
    m.Notice(0, "x" * m.MAX_STRING).encode()
    with pytest.raises(ValueError):
        m.Notice(0, "x" * (m.MAX_STRING + 1)).encode()


def test_error_text_quoting_a_long_input_is_cut_not_refused() -> None:
    # An error text quotes the client's input (a whisper's 5,000-character
    # target): the refusal must still encode, within the string limit.
    text = "no player named " + repr("x" * 5000)
    (msg,) = decode_all(m.Error(ErrorCode.UNKNOWN_PLAYER, text).encode())
    assert msg.code == ErrorCode.UNKNOWN_PLAYER
    assert len(msg.text.encode("utf-8")) == m.MAX_STRING
    assert text.startswith(msg.text)
    # A cut falls on a character boundary: the text stays valid UTF-8.
    (msg,) = decode_all(m.Error(ErrorCode.INVALID, "a" + "é" * m.MAX_STRING).encode())
    assert msg.text == "a" + "é" * ((m.MAX_STRING - 1) // 2)


# ---------------------------------------------------------------- fast encoders


def entity(eid: int, x: float, y: float, name: str = "", kind: int = 0) -> SimpleNamespace:
    return SimpleNamespace(id=eid, x=x, y=y, name=name, kind=kind)


entities = st.lists(
    st.builds(entity, u32, f32, f32, text, u8), max_size=12,
    unique_by=lambda e: e.id,
)


@wire_settings
@given(u32, f64)
def test_fast_tick_frame_matches_tick(tick: int, t: float) -> None:
    assert fast.tick_frame(tick, t) == m.Tick(tick, t).encode()


def test_fast_tick_number_wraps_at_32_bits() -> None:
    assert fast.tick_frame(2**32 + 5, 1.0) == m.Tick(5, 1.0).encode()


def test_fast_resync_matches_resync() -> None:
    assert fast.RESYNC == m.Resync().encode()


@wire_settings
@given(entities)
def test_fast_moves_match_moves(ents: list[SimpleNamespace]) -> None:
    expected = m.Moves(tuple((e.id, e.x, e.y) for e in ents)).encode() if ents else b""
    assert fast.moves_frames(ents) == expected


@wire_settings
@given(entities)
def test_fast_enter_matches_enter(ents: list[SimpleNamespace]) -> None:
    cache: dict[int, bytes] = {}
    expected = m.Enter(tuple(m.EntityInfo(e.id, e.kind, e.x, e.y, e.name) for e in ents))
    got = fast.enter_frames(ents, cache)
    assert got == ([expected.encode()] if ents else [])
    # A second viewer in the same tick gets the same bytes from the cache.
    assert set(cache) == {e.id for e in ents}
    assert fast.enter_frames(ents, cache) == got


@wire_settings
@given(st.lists(u32, max_size=20))
def test_fast_leave_matches_leave(ids: list[int]) -> None:
    assert fast.leave_frames(ids) == ([m.Leave(tuple(ids)).encode()] if ids else [])


def test_fast_frames_split_past_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "CHUNK", 3)
    ents = [entity(i, i * 1.5, -i * 0.25, f"e{i}") for i in range(1, 9)]
    groups = [ents[0:3], ents[3:6], ents[6:8]]
    assert fast.moves_frames(ents) == b"".join(
        m.Moves(tuple((e.id, e.x, e.y) for e in g)).encode() for g in groups
    )
    assert fast.enter_frames(ents, {}) == [
        m.Enter(tuple(m.EntityInfo(e.id, e.kind, e.x, e.y, e.name) for e in g)).encode()
        for g in groups
    ]
    ids = [e.id for e in ents]
    assert fast.leave_frames(ids) == [
        m.Leave(tuple(ids[0:3])).encode(), m.Leave(tuple(ids[3:6])).encode(),
        m.Leave(tuple(ids[6:8])).encode(),
    ]


def test_fast_moves_round_trip_through_the_client_decoder() -> None:
    ents = [entity(1, 10.5, 20.25), entity(2, 0.0, 1999.0)]
    stream = fast.tick_frame(3, 0.5) + fast.moves_frames(ents)
    assert FrameDecoder.for_client().feed(stream) == [
        m.Tick(3, 0.5), m.Moves(((1, 10.5, 20.25), (2, 0.0, 1999.0))),
    ]


# ---------------------------------------------------------------- refusals


def error_of(data: bytes, dec: FrameDecoder | None = None) -> int:
    dec = dec or FrameDecoder.for_server()
    with pytest.raises(ProtocolError) as info:
        dec.feed(data)
    return info.value.code


def test_zero_length_is_bad_frame() -> None:
    assert error_of(b"\x00\x00\x00\x00\x01") == ErrorCode.BAD_FRAME


def test_unknown_type_is_bad_frame_before_the_body() -> None:
    assert error_of(b"\x00\x00\x00\x10\x7f") == ErrorCode.BAD_FRAME


def test_server_decoder_refuses_server_messages() -> None:
    assert error_of(m.Welcome(1, "n", 10).encode()) == ErrorCode.BAD_FRAME
    assert error_of(m.Who().encode(), FrameDecoder.for_client()) == ErrorCode.BAD_FRAME


def test_frame_over_the_limit_is_refused_before_the_body_arrives() -> None:
    dec = FrameDecoder.for_server(max_frame=1024)
    dec.feed(b"\x00\x00\x04")  # not yet a whole header: nothing to say
    assert error_of(b"\x01\x02", dec) == ErrorCode.FRAME_TOO_LARGE  # length 1025
    # The 10 MB frame of the integration tests: refused on its first 5 bytes.
    assert error_of(struct.pack(">IB", 10_000_000, m.Chat.TYPE)) == ErrorCode.FRAME_TOO_LARGE
    assert error_of(b"\xff\xff\xff\xff\x01") == ErrorCode.FRAME_TOO_LARGE


def test_frame_at_the_limit_is_accepted() -> None:
    limit = 64
    dec = FrameDecoder.for_server(max_frame=limit)
    body = m.pack_string("x" * (limit - 3))
    data = m.frame(m.ChangeZone.TYPE, body)
    assert len(data) == 4 + limit
    assert dec.feed(data) == [m.ChangeZone("x" * (limit - 3))]


def test_buffer_holds_at_most_one_frame() -> None:
    dec = FrameDecoder.for_server(max_frame=DEFAULT_MAX_FRAME)
    head = struct.pack(">IB", DEFAULT_MAX_FRAME, m.ChangeZone.TYPE)
    assert dec.feed(head + b"\x00" * 1000) == []
    assert dec.buffered == 1005


@pytest.mark.parametrize("raw", [b"\xff", b"\xc3", b"a\x80b", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8_is_bad_frame(raw: bytes) -> None:
    body = struct.pack(">H", len(raw)) + raw + m.pack_string("pw")
    assert error_of(m.frame(m.Login.TYPE, body)) == ErrorCode.BAD_FRAME


@wire_settings
@given(st.binary(min_size=1, max_size=20))
def test_any_non_utf8_string_is_bad_frame(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        body = struct.pack(">H", len(raw)) + raw
        assert error_of(m.frame(m.ChangeZone.TYPE, body)) == ErrorCode.BAD_FRAME
    else:
        body = struct.pack(">H", len(raw)) + raw
        assert FrameDecoder.for_server().feed(m.frame(m.ChangeZone.TYPE, body)) == [
            m.ChangeZone(raw.decode("utf-8"))
        ]


@pytest.mark.parametrize(
    "x, y", [(math.nan, 1.0), (1.0, math.nan), (math.inf, 1.0), (1.0, -math.inf)]
)
def test_non_finite_move_is_invalid(x: float, y: float) -> None:
    data = m.frame(m.Move.TYPE, struct.pack(">Iff", 1, x, y))
    assert error_of(data) == ErrorCode.INVALID


def test_trailing_bytes_are_bad_frame() -> None:
    assert error_of(m.frame(m.Who.TYPE, b"\x00")) == ErrorCode.BAD_FRAME
    assert FrameDecoder.for_server().feed(m.Ping(1, 2.0).encode()[:-1]) == []  # waits
    data = m.frame(m.Ping.TYPE, struct.pack(">Id", 1, 2.0) + b"!")
    assert error_of(data) == ErrorCode.BAD_FRAME


def test_short_body_is_bad_frame() -> None:
    assert error_of(m.frame(m.Move.TYPE, b"\x00\x00\x00\x01")) == ErrorCode.BAD_FRAME
    assert error_of(m.frame(m.ChangeZone.TYPE, b"\x00\x05abc")) == ErrorCode.BAD_FRAME
    assert error_of(m.frame(m.Leave.TYPE, b"\x00\x02\x00\x00\x00\x01"),
                    FrameDecoder.for_client()) == ErrorCode.BAD_FRAME


def test_decode_all_refuses_a_partial_frame() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_all(m.Who().encode() + b"\x00\x00")
    assert info.value.code == ErrorCode.BAD_FRAME


# ---------------------------------------------------------------- fuzzing

CLIENT_TYPES = [t.TYPE for t in m.CLIENT_MESSAGES]
SERVER_TYPES = [t.TYPE for t in m.SERVER_MESSAGES]


def junk_frames(types: list[int]) -> st.SearchStrategy[bytes]:
    """Frames with a real type and a random body: the body decoders' fuzz."""
    return st.builds(m.frame, st.sampled_from(types), st.binary(max_size=40))


def stream_of(messages: st.SearchStrategy[m.Message], types: list[int]) -> st.SearchStrategy[bytes]:
    segment = st.one_of(
        messages.map(lambda x: x.encode()),
        junk_frames(types),
        st.binary(max_size=12),
    )
    return st.lists(segment, max_size=6).map(b"".join)


def chunked(stream: bytes, data: st.DataObject) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


def frames_until_error(
    dec: FrameDecoder, chunks: list[bytes]
) -> tuple[list[tuple[int, bytes]], int | None]:
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        try:
            out += dec.feed_frames(chunk)
        except ProtocolError as e:
            return out, e.code
    return out, None


def messages_until_error(
    dec: FrameDecoder, chunks: list[bytes]
) -> tuple[list[m.Message], int | None]:
    out: list[m.Message] = []
    for chunk in chunks:
        try:
            out += dec.feed(chunk)
        except ProtocolError as e:
            assert isinstance(e.code, int) and e.code in ErrorCode._value2member_map_
            assert isinstance(e.text, str) and e.text
            return out, e.code
    return out, None


def check_stream(make: Callable[[], FrameDecoder], stream: bytes, data: st.DataObject) -> None:
    chunks = chunked(stream, data)
    # Frames: the same whatever the chunking; an error in the framing is the
    # same error, found at the same place (frames before it may be lost
    # with it when they arrived in the same read).
    whole, whole_error = frames_until_error(make(), [stream])
    parts, parts_error = frames_until_error(make(), chunks)
    assert parts_error == whole_error
    if whole_error is None:
        assert parts == whole
    else:
        reference, _ = frames_until_error(make(), [bytes([b]) for b in stream])
        assert parts == reference[: len(parts)]
    # Messages: only ever messages or a clean ProtocolError.
    msgs_whole, error = messages_until_error(make(), [stream])
    msgs_parts, _ = messages_until_error(make(), chunks)
    if error is None:
        assert msgs_parts == msgs_whole


@wire_settings
@given(st.binary(max_size=200), st.data())
def test_server_decoder_survives_any_bytes(stream: bytes, data: st.DataObject) -> None:
    check_stream(FrameDecoder.for_server, stream, data)


@wire_settings
@given(stream_of(client_message, CLIENT_TYPES), st.data())
def test_server_decoder_survives_mixed_streams(stream: bytes, data: st.DataObject) -> None:
    check_stream(FrameDecoder.for_server, stream, data)


@wire_settings
@given(stream_of(server_message, SERVER_TYPES), st.data())
def test_client_decoder_survives_mixed_streams(stream: bytes, data: st.DataObject) -> None:
    check_stream(FrameDecoder.for_client, stream, data)


@wire_settings
@given(st.sampled_from(CLIENT_TYPES + SERVER_TYPES), st.binary(max_size=64))
def test_any_body_decodes_or_fails_cleanly(type_: int, body: bytes) -> None:
    dec = FrameDecoder()
    try:
        msg = dec.decode(type_, body)
    except ProtocolError as e:
        assert e.code in (ErrorCode.BAD_FRAME, ErrorCode.INVALID)
    else:
        # What decodes re-encodes to the same bytes (a NaN may not keep its
        # exact bits through a float32).
        if not has_nan(msg):
            assert msg.encode() == m.frame(type_, body)


def has_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, tuple):
        return any(has_nan(v) for v in value)
    if dataclasses.is_dataclass(value):
        return any(has_nan(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False
