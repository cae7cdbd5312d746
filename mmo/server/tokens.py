"""
Resume tokens: a player comes back (after a dropped connection, a node's
restart, a redirect) with a MAC check instead of a password hash.

A token is minted by a node for one logged-in player and says who it is
and where it stood; it is sealed with a key derived from the cluster key
(so any node of the cluster can check it, and nothing else can make one),
runs out after ``lifetime`` seconds and is good for one use: the node that
takes it remembers its nonce until it runs out, and tells the other nodes
(:meth:`TokenBook.spend` is also how their notices arrive), or, for a
``Redirect``'s token, is the only node that takes it while it is live
(:mod:`mmo.server.resume`).

The token travels as a string of URL-safe base64 (no padding) of::

    version u8 (1) | expires u32 (Unix seconds) | nonce 8 bytes |
    name str | zone str | for_node str | x f32 | y f32 | mac 16 bytes

where ``str`` is a u16 byte count and UTF-8, ``for_node`` names the node a
``Redirect`` sends the player to (empty in a ``Ticket``), and ``mac`` is
``HMAC-SHA256(HMAC-SHA256(cluster key, "mmo resume token v1"), all before)``
cut to 16 bytes.  Clients treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from ..wire import layout
from ..wire.base import ProtocolError, Reader, pack_string, valid_name

VERSION = 1
MAC_SIZE = 16
NONCE_SIZE = 8
_HEAD = layout.TOKEN_HEAD
_POSITION = layout.TOKEN_POSITION
_LABEL = b"mmo resume token v1"
#: The longest token string taken (a name and a zone of at most 255 bytes).
MAX_TOKEN = 800
#: Spent nonces remembered at most (each until its token runs out); past
#: that, the oldest are forgotten early, so resumes never grow memory.
MAX_SPENT = 200_000


class TokenRefused(Exception):
    """Why a token is not taken (one line for the ``Error`` frame)."""


@dataclass(frozen=True)
class Claims:
    """What a checked token says."""

    name: str
    zone: str
    x: float
    y: float
    expires: int
    nonce: bytes
    #: The node a Redirect sent the player to ("" for a Ticket's token).
    for_node: str = ""

    def issued(self, lifetime: float) -> float:
        return self.expires - lifetime


def derive_key(cluster_key: bytes) -> bytes:
    """The tokens' own key: never the cluster's datagram key itself."""
    return hmac.new(cluster_key, _LABEL, sha256).digest()


class TokenBook:
    """Mints and takes resume tokens; remembers the spent ones."""

    def __init__(self, cluster_key: bytes, clock: Any, lifetime: float = 60.0) -> None:
        self._key = derive_key(cluster_key)
        self.clock = clock
        self.lifetime = float(lifetime)
        #: nonce -> the time its token runs out, oldest first.
        self.spent: OrderedDict[bytes, float] = OrderedDict()
        self.minted = 0
        self.taken = 0
        self.refused = 0

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, sha256).digest()[:MAC_SIZE]

    def mint(self, name: str, zone: str, x: float, y: float, for_node: str = "") -> str:
        expires = int(self.clock.seconds() + self.lifetime)
        body = (_HEAD.pack(VERSION, expires, os.urandom(NONCE_SIZE)) + pack_string(name)
                + pack_string(zone) + pack_string(for_node) + _POSITION.pack(x, y))
        self.minted += 1
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def check(self, token: str) -> Claims:
        """What ``token`` says, if it is sound, current and unspent; else :exc:`TokenRefused`."""
        try:
            claims = self._check(token)
        except TokenRefused:
            self.refused += 1
            raise
        return claims

    def _check(self, token: str) -> Claims:
        if len(token) > MAX_TOKEN:
            raise TokenRefused("the resume token is too long")
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_",
                                   validate=True)
        except (binascii.Error, ValueError):
            raise TokenRefused("the resume token is not base64") from None
        if len(raw) < _HEAD.size + MAC_SIZE:
            raise TokenRefused("the resume token is too short")
        body, mac = raw[:-MAC_SIZE], raw[-MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise TokenRefused("the resume token is not this cluster's (wrong key or altered)")
        r = Reader(body)
        try:
            version, expires, nonce = r.unpack(_HEAD)
            if version != VERSION:
                raise TokenRefused(f"resume token version {version} is not known here")
            name, zone, for_node = r.string(), r.string(), r.string()
            x, y = r.unpack(_POSITION)
            r.finish()
        except ProtocolError as e:
            raise TokenRefused(f"the resume token is malformed: {e}") from None
        if not valid_name(name):
            raise TokenRefused("the resume token names no valid player")
        now = self.clock.seconds()
        if now >= expires:
            raise TokenRefused("the resume token has run out; log in with the password")
        self._forget(now)
        if nonce in self.spent:
            raise TokenRefused("the resume token was used already; log in with the password")
        return Claims(name, zone, x, y, expires, nonce, for_node)

    def take(self, token: str) -> Claims:
        """Check ``token`` and spend it: it will not be taken again here."""
        claims = self.check(token)
        self.use(claims)
        return claims

    def use(self, claims: Claims) -> None:
        """Spend the token ``claims`` were checked from (:meth:`check`) and count it taken."""
        self.spend(claims.nonce, claims.expires)
        self.taken += 1

    def spend(self, nonce: bytes, expires: float) -> None:
        """Remember ``nonce`` as used until ``expires`` (here or on another node)."""
        if expires <= self.clock.seconds() or len(nonce) != NONCE_SIZE:
            return
        self.spent[nonce] = expires
        while len(self.spent) > MAX_SPENT:
            self.spent.popitem(last=False)

    def _forget(self, now: float) -> None:
        """Drop spent nonces whose tokens ran out (they fail on time anyway)."""
        spent = self.spent
        while spent:
            nonce, expires = next(iter(spent.items()))
            if expires > now:
                # Not strictly ordered (other nodes' notices), but close:
                # the rest is dropped on later calls or by MAX_SPENT.
                break
            del spent[nonce]

    def numbers(self) -> dict[str, Any]:
        return {"resumes": self.taken, "resumes_refused": self.refused}
