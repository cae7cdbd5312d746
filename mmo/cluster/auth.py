"""
Authentication of cluster datagrams: the key file, the HMAC and the replay
window.  Pure Python, no I/O except :func:`load_or_create_key`, which the
service calls once at start-up.

Every datagram ends with ``HMAC-SHA256(key, everything before it)`` cut to
:data:`MAC_SIZE` bytes.  Replays are refused with the sender's *epoch* (a
number fixed for the life of its process, larger after a restart) and a
sliding window over its per-datagram sequence number.
"""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from typing import Any

MAC_SIZE = 16
KEY_SIZE = 32
#: Sequence numbers below the highest seen that are still accepted once.
WINDOW = 1024
#: Senders whose replay state is kept; a forged datagram never adds one
#: (the HMAC is checked first), so this only bounds honest restarts.
MAX_SENDERS = 4096


class KeyFileError(Exception):
    """The cluster key file cannot be read, created or is not a key."""


def load_or_create_key(path: str) -> bytes:
    """
    The key in ``path``, created (random, mode 0600) when absent.

    The file holds the key as hex on one line (so that operators can copy it
    between hosts); at least 16 bytes of key are required.
    """
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except FileNotFoundError:
        key = secrets.token_bytes(KEY_SIZE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Another node on this host created it first: use theirs.
            return load_or_create_key(path)
        except OSError as e:
            raise KeyFileError(f"cannot create cluster key file {path}: {e.strerror}") from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex() + "\n")
        return key
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"cannot read cluster key file {path}: {e}") from None
    if not text:
        raise KeyFileError(f"cluster key file {path} is empty (a node may be writing it)")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"cluster key file {path} does not hold a hex key") from None
    if len(key) < 16:
        raise KeyFileError(f"cluster key in {path} is shorter than 16 bytes")
    return key


#: Keys seen by :func:`keyed`, each with its keyed HMAC (a process knows one
#: or two: a new key file, tests).
_KEYED: dict[bytes, Any] = {}


def keyed(key: bytes) -> Any:
    """
    An HMAC-SHA256 object keyed with ``key``, not to be updated: ``copy()``
    it for each message (``copy``, ``update``, ``digest``), which gives
    ``hmac.digest(key, msg, sha256)`` at about half its cost.
    """
    h = _KEYED.get(key)
    if h is None:
        if len(_KEYED) >= 16:
            _KEYED.clear()
        h = _KEYED[key] = _new_keyed(key)
    return h


def _new_keyed(key: bytes) -> Any:
    try:
        # OpenSSL's own HMAC object: its copy is one C call, and skips the
        # key schedule (two of the four or five SHA-256 blocks of a MAC).
        from _hashlib import hmac_new
    except ImportError:  # pragma: no cover - Python built without OpenSSL
        return hmac.new(key, digestmod=sha256)
    return hmac_new(key, digestmod="sha256")


def sign(key: bytes, data: bytes) -> bytes:
    """``data`` followed by its MAC."""
    h = keyed(key).copy()
    h.update(data)
    return data + h.digest()[:MAC_SIZE]


def verify(key: bytes, datagram: bytes) -> bytes | None:
    """The signed part of ``datagram`` if its MAC is right, else ``None``."""
    if len(datagram) <= MAC_SIZE:
        return None
    data = datagram[:-MAC_SIZE]
    h = keyed(key).copy()
    h.update(data)
    if not hmac.compare_digest(h.digest()[:MAC_SIZE], datagram[-MAC_SIZE:]):
        return None
    return data


ACCEPT, REPLAY, STALE_EPOCH, RESTARTED = "accept", "replay", "stale-epoch", "restarted"


class ReplayWindow:
    """
    Which ``(epoch, seq)`` pairs of each sender were already accepted.

    :meth:`check` returns :data:`ACCEPT`, :data:`RESTARTED` (accepted, and
    the sender has a new epoch: it restarted), :data:`REPLAY` or
    :data:`STALE_EPOCH`.  Only call it for datagrams whose MAC is right.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        #: sender -> [epoch, highest seq, bitmap of seen seqs below highest]
        self.senders: dict[str, list[int]] = {}

    def check(self, sender: str, epoch: int, seq: int) -> str:
        state = self.senders.get(sender)
        if state is None:
            if len(self.senders) >= MAX_SENDERS:
                self.senders.pop(next(iter(self.senders)))
            self.senders[sender] = [epoch, seq, 0]
            return ACCEPT
        known_epoch, highest, seen = state
        if epoch < known_epoch:
            return STALE_EPOCH
        if epoch > known_epoch:
            state[:] = [epoch, seq, 0]
            return RESTARTED
        if seq > highest:
            shift = seq - highest
            seen = ((seen << shift) | (1 << (shift - 1))) if shift <= self.window else 0
            state[1] = seq
            state[2] = seen & ((1 << self.window) - 1)
            return ACCEPT
        back = highest - seq
        if back == 0 or back > self.window:
            return REPLAY
        bit = 1 << (back - 1)
        if seen & bit:
            return REPLAY
        state[2] = seen | bit
        return ACCEPT

    def close(self, sender: str) -> None:
        """
        ``sender`` said bye: nothing more of its current epoch is accepted
        (a late or replayed datagram of that run would bring it back).
        """
        state = self.senders.get(sender)
        if state is not None:
            state[1:] = [CLOSED, 0]


#: The highest sequence number of a closed epoch: every u64 is below it and
#: out of the window.
CLOSED = 1 << 65
