"""The one datagram opener of nodes and monitor: each verdict, and its count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmo.cluster import codec
from mmo.cluster.auth import sign
from mmo.cluster.opener import (
    ACCEPT,
    AUTH_FAILED,
    LOOPED,
    MALFORMED,
    NO_KEY,
    REPLAY,
    RESTARTED,
    STALE_EPOCH,
    Opener,
)

KEY = b"k" * 32
SOURCE = ("127.0.0.1", 30001)


def heartbeat(sealer: codec.Sealer) -> bytes:
    hb = codec.Heartbeat(4000, 2, 3, 100.0, 1000, "127.0.0.1", "0.1.0")
    return sealer.seal(codec.HEARTBEAT, hb.body())


@pytest.fixture
def opener() -> Opener:
    return Opener(KEY, node_id="me")


def test_a_good_datagram_opens_with_its_header_and_message(opener):
    opened = opener.open(heartbeat(codec.Sealer(KEY, "alpha", 7)), SOURCE)
    assert opened.ok and opened.verdict == ACCEPT and not opened.restarted
    assert (opened.header.sender, opened.header.epoch, opened.header.seq) == ("alpha", 7, 1)
    assert opened.header.type == codec.HEARTBEAT
    assert opened.message.tcp_port == 4000 and opened.source == SOURCE
    assert opener.accepted == 1


def test_a_wrong_key_is_an_authentication_failure(opener):
    opened = opener.open(heartbeat(codec.Sealer(b"x" * 32, "alpha", 1)), SOURCE)
    assert opened.verdict == AUTH_FAILED and not opened.ok
    assert opened.header is None and opened.message is None
    assert opener.auth_failures == 1 and opener.accepted == 0


@pytest.mark.parametrize("where", ["header", "sender", "body", "mac"])
def test_a_flipped_byte_is_an_authentication_failure(opener, where):
    data = bytearray(heartbeat(codec.Sealer(KEY, "alpha", 1)))
    at = {"header": 12, "sender": 21, "body": 30, "mac": len(data) - 1}[where]
    data[at] ^= 0x01
    assert opener.open(bytes(data)).verdict == AUTH_FAILED
    assert opener.counts == {AUTH_FAILED: 1}


@pytest.mark.parametrize("keep", [0, 1, 5, 21, -1])
def test_a_truncated_datagram_is_an_authentication_failure(opener, keep):
    data = heartbeat(codec.Sealer(KEY, "alpha", 1))
    assert opener.open(data[:keep]).verdict == AUTH_FAILED
    assert opener.auth_failures == 1


def test_an_authentic_but_unreadable_body_is_malformed(opener):
    opened = opener.open(codec.Sealer(KEY, "alpha", 1).seal(codec.HEARTBEAT, b"\x00\x01"))
    assert opened.verdict == MALFORMED and opened.why
    assert opener.malformed == 1


def test_a_replay_is_refused_and_counted(opener):
    data = heartbeat(codec.Sealer(KEY, "alpha", 1))
    assert opener.open(data).ok
    opened = opener.open(data)
    assert opened.verdict == REPLAY and not opened.ok and opened.message is None
    assert opened.header is not None and opened.header.sender == "alpha"
    assert opener.counts[REPLAY] == 1 and opener.replays == 1


def test_an_old_epoch_is_stale_and_a_new_one_a_restart(opener):
    old, new = codec.Sealer(KEY, "alpha", 1), codec.Sealer(KEY, "alpha", 2)
    first = heartbeat(old)
    assert opener.open(first).verdict == ACCEPT
    restarted = opener.open(heartbeat(new))
    assert restarted.verdict == RESTARTED and restarted.ok and restarted.restarted
    # The previous run's next datagram, and its first one again.
    assert opener.open(heartbeat(old)).verdict == STALE_EPOCH
    assert opener.open(first).verdict == STALE_EPOCH
    assert opener.stale_epochs == 2 and opener.replays == 2
    assert opener.restarts == 1 and opener.accepted == 2


def test_its_own_datagrams_are_looped_before_any_check(opener):
    mine = heartbeat(codec.Sealer(b"another key".ljust(32), "me", 1))
    assert opener.open(mine).verdict == LOOPED
    assert opener.looped == 1 and opener.auth_failures == 0
    # Without a node id (the monitor), nothing is looped.
    assert Opener(KEY).open(heartbeat(codec.Sealer(KEY, "me", 1))).verdict == ACCEPT


def test_without_a_key_nothing_is_opened_until_it_is_set():
    opener = Opener(None)
    data = heartbeat(codec.Sealer(KEY, "alpha", 1))
    assert opener.open(data).verdict == NO_KEY and opener.no_key == 1
    opener.key = KEY
    assert opener.open(data).ok


def test_a_forgery_never_reaches_the_replay_window(opener):
    forged = heartbeat(codec.Sealer(b"x" * 32, "alpha", 99))
    opener.open(forged)
    assert opener.replay.senders == {}
    # So the real sender's first datagram is still accepted.
    assert opener.open(heartbeat(codec.Sealer(KEY, "alpha", 1))).verdict == ACCEPT


def test_authentication_failures_are_reported_at_most_every_ten_seconds(opener):
    bad = b"garbage"
    opener.open(bad)
    assert opener.auth_failures_to_report(100.0) == 1  # the first at once
    opener.open(bad)
    opener.open(bad)
    assert opener.auth_failures_to_report(105.0) == 0
    assert opener.auth_failures_to_report(110.0) == 2  # the ones since
    assert opener.auth_failures_to_report(130.0) == 0  # nothing new


@given(st.binary(max_size=300))
def test_any_bytes_get_a_verdict_and_never_raise(data):
    opener = Opener(KEY, node_id="me")
    opened = opener.open(data)
    assert opened.verdict in (LOOPED, AUTH_FAILED)
    assert sum(opener.counts.values()) == 1


# -- any bytes, sealed or not ---------------------------------------------------------

NOT_READ = (AUTH_FAILED, MALFORMED, REPLAY, STALE_EPOCH)


def verdict_of(opener: Opener, data: bytes) -> str:
    """The verdict, checked to be one of the opener's, with a message only when ok."""
    opened = opener.open(data)
    assert opened.verdict in (ACCEPT, RESTARTED, *NOT_READ)
    assert opened.ok == (opened.verdict in (ACCEPT, RESTARTED))
    if not opened.ok:
        assert opened.message is None
    return opened.verdict


@given(st.binary(max_size=1300))
def test_any_bytes_signed_with_the_key_get_a_verdict_and_never_raise(data):
    # Past the MAC with anything at all behind it: the header's checks.
    opener = Opener(KEY)
    verdict_of(opener, sign(KEY, data))
    assert sum(opener.counts.values()) == 1


@given(kind=st.integers(0, 255), body=st.binary(max_size=1200),
       sender=st.text(min_size=1, max_size=40))
def test_any_body_sealed_by_a_node_gets_a_verdict_and_never_raises(kind, body, sender):
    # Past the MAC and a good header: every body decoder, with any bytes.
    opener = Opener(KEY)
    data = codec.Sealer(KEY, sender, 1).seal(kind, body)
    verdict = verdict_of(opener, data)
    if kind not in codec.TYPES or len(data) > codec.MAX_DATAGRAM:
        assert verdict in (MALFORMED, AUTH_FAILED)


def test_a_datagram_longer_than_any_node_sends_is_refused_before_its_mac(opener):
    data = codec.Sealer(KEY, "alpha", 1).seal(codec.METRICS, b"{}" + b" " * 2000)
    opened = opener.open(data)
    assert opened.verdict == AUTH_FAILED and opened.why == f"{len(data)} bytes"



def test_malformed_datagrams_are_reported_once_per_burst(opener):
    sealer = codec.Sealer(KEY, "alpha", 1)
    for _ in range(5):
        opened = opener.open(sealer.seal(codec.HEARTBEAT, b"\x00"))
        assert opened.verdict == MALFORMED and opened.header.sender == "alpha"
    opener.open(b"garbage")
    assert opener.to_report(MALFORMED, 100.0) == 5
    assert opener.to_report(MALFORMED, 101.0) == 0
    assert opener.to_report(AUTH_FAILED, 101.0) == 1  # each kind its own line
    opener.open(sealer.seal(codec.HEARTBEAT, b"\x00"))
    assert opener.to_report(MALFORMED, 105.0) == 0
    assert opener.to_report(MALFORMED, 110.0) == 1
