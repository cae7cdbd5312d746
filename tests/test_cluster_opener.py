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
    BEFORE_START,
    LOOPED,
    MALFORMED,
    NO_KEY,
    REPLAY,
    RESTARTED,
    SKEW,
    STALE_EPOCH,
    TOO_NEW,
    TOO_OLD,
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

NOT_READ = (AUTH_FAILED, MALFORMED, REPLAY, STALE_EPOCH, BEFORE_START, TOO_OLD, TOO_NEW)


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


# -- time: nothing recorded before the reader started -----------------------------------


class Clock:
    """Seconds since 1970, moved by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_datagrams_stamped_before_the_reader_started_are_refused_and_counted():
    clock = Clock()
    sealer = codec.Sealer(KEY, "alpha", 1, clock=clock)
    recorded = [heartbeat(sealer) for _ in range(3)]
    clock.now += 0.001
    opener = Opener(KEY, "me", clock=clock)
    opener.start()
    clock.now += 5.0
    refused = [opener.open(d) for d in recorded]
    assert {o.verdict for o in refused} == {BEFORE_START}
    assert refused[0].header.sender == "alpha" and "before this reader started" in refused[0].why
    assert opener.before_start == 3 and opener.untimely == 3 and opener.replays == 3
    # Refused by time before the replay window: the sender's next datagram is new.
    assert opener.replay.senders == {}
    assert opener.open(heartbeat(sealer)).verdict == ACCEPT


def test_a_reader_that_was_not_started_refuses_only_beyond_the_skew():
    clock = Clock()
    opener = Opener(KEY, clock=clock)
    sealer = codec.Sealer(KEY, "alpha", 1, clock=clock)
    recorded = heartbeat(sealer)
    clock.now += SKEW - 1
    assert opener.open(recorded).verdict == ACCEPT


@pytest.mark.parametrize("off, verdict", [
    (-SKEW - 0.5, TOO_OLD), (-SKEW + 0.5, ACCEPT), (SKEW - 0.5, ACCEPT), (SKEW + 0.5, TOO_NEW),
])
def test_the_senders_clock_may_be_off_by_the_skew_either_way(off, verdict):
    here = Clock()
    opener = Opener(KEY, "me", clock=here)
    opener.start()
    here.now += SKEW + 10  # the reader started long ago: only the skew matters
    there = Clock(here.now + off)
    assert opener.open(heartbeat(codec.Sealer(KEY, "alpha", 1, clock=there))).verdict == verdict
    assert opener.counts[verdict] == 1
    assert opener.untimely == (verdict != ACCEPT)



def test_untimely_datagrams_are_reported_once_per_burst():
    clock = Clock()
    opener = Opener(KEY, "me", clock=clock)
    sealer = codec.Sealer(KEY, "alpha", 1, clock=clock)
    old = [heartbeat(sealer) for _ in range(4)]
    clock.now += 1
    opener.start()
    for data in old:
        assert opener.open(data).verdict == BEFORE_START
    assert opener.to_report(BEFORE_START, 100.0) == 4
    assert opener.to_report(BEFORE_START, 101.0) == 0
    assert opener.to_report(TOO_OLD, 101.0) == 0


def test_after_a_bye_nothing_more_of_that_run_is_accepted(opener):
    sealer = codec.Sealer(KEY, "alpha", 1)
    first, late = heartbeat(sealer), heartbeat(sealer)
    assert opener.open(first).ok
    assert opener.open(sealer.seal(codec.BYE, b"")).ok
    # Sent before the bye but never received, or replayed: that run is over.
    assert opener.open(late).verdict == REPLAY
    assert opener.open(heartbeat(sealer)).verdict == REPLAY
    # A new run is a restart.
    assert opener.open(heartbeat(codec.Sealer(KEY, "alpha", 2))).verdict == RESTARTED
