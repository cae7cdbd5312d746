"""
Accounts: who may log in.

:class:`~mmo.interfaces.IAccountStore` is the seam; :class:`MemoryAccountStore` keeps
accounts for the life of the process.  Password hashes are salted
PBKDF2-SHA256, computed by the ``hasher`` given (a thread pool in the node)
so that a slow hash never blocks the reactor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from zope.interface import implementer

from ..interfaces import IAccountStore, LoginRefused
from ..wire.messages import ErrorCode, valid_name


@dataclass
class Account:
    name: str
    salt: bytes
    digest: bytes
    iterations: int
    #: Persistent player state: zone, x, y, and extensions' keys.
    state: dict[str, Any] = field(default_factory=dict)
    #: When ``state`` was saved (Unix seconds), if it was.
    saved_at: float | None = None


Hasher = Callable[[Callable[[], bytes]], Deferred]


def hash_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def _inline(fn: Callable[[], bytes]) -> Deferred:
    return succeed(fn())


@implementer(IAccountStore)
class MemoryAccountStore:
    """Accounts in a dict; ``hasher`` runs the hash (off the reactor)."""

    def __init__(self, iterations: int = 100_000, hasher: Hasher = _inline,
                 clock: Any = None) -> None:
        self.iterations = iterations
        self.hasher = hasher
        self.accounts: dict[str, Account] = {}
        #: Stamps saves (``saved_at``), as the database does.
        self.seconds: Callable[[], float] = clock.seconds if clock is not None else time.time

    @inlineCallbacks
    def authenticate(self, name: str, password: str, create: bool) -> Any:
        if not valid_name(name):
            raise LoginRefused(
                ErrorCode.INVALID,
                "a name is 1 to 24 letters, digits, '_' or '-'",
            )
        account = self.accounts.get(name)
        if account is None:
            if not create:
                raise LoginRefused(
                    ErrorCode.REGISTRATION_CLOSED,
                    f"no account named {name!r} and registration is closed",
                )
            salt = os.urandom(16)
            iterations = self.iterations
            digest = yield self.hasher(lambda: hash_password(password, salt, iterations))
            # Another login may have created it while we hashed.
            account = self.accounts.setdefault(
                name, Account(name, salt, digest, iterations)
            )
            if account.digest is digest:
                return account
        salt, iterations = account.salt, account.iterations
        digest = yield self.hasher(lambda: hash_password(password, salt, iterations))
        if not hmac.compare_digest(digest, account.digest):
            raise LoginRefused(ErrorCode.AUTH_FAILED, "wrong name or password")
        return account

    def resume(self, name: str) -> Deferred:
        account = self.accounts.get(name)
        if account is None:
            return succeed(Account(name, b"", b"", 0))
        return succeed(account)

    def save_state(self, name: str, state: dict) -> Deferred:
        account = self.accounts.get(name)
        if account is not None:
            account.state = dict(state)
            account.saved_at = self.seconds()
        return succeed(None)
