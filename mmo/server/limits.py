"""
What one connection may cost: a token bucket of requests by cost, and
failed logins limited per client address and per (name, address).

:class:`TokenBucket` refills at ``rate`` a second up to ``burst``; every
frame a client sends takes its :data:`COSTS` from the session's budget
(a ``Who`` costs more than a ``Ping``), and per-kind game limits (moves,
chat lines) are buckets too.

Every failed login (wrong password, unknown name with registration closed)
is remembered for ``window`` seconds.  An address with ``per_ip`` failures,
or a name with ``per_name`` failures from one address, in the window is
refused at once with ``RATE_LIMITED`` -- before any password is hashed, so a
guessing burst costs the node almost nothing -- until the oldest failure
leaves the window.  Failures are never counted per name alone: then anyone
could lock an account out; its owner, from an address with no failures,
always gets in.  A successful login clears its (name, address) failures.
The counts are per node.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..interfaces import LoginRefused
from ..settings import LimitSettings
from ..wire.messages import ErrorCode

#: What each client frame costs from a session's request budget, by type;
#: filled in by the session from the message classes (default 1).
COSTS: dict[int, float] = {}


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def level(self, now: float) -> float:
        """Tokens available at ``now``."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.tokens = tokens = tokens if tokens < self.burst else self.burst
        self.stamp = now
        return tokens

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are that many."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= cost:
            self.tokens = tokens - cost
            return True
        self.tokens = tokens
        return False

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are there (from the last call's time)."""
        return max(0.0, (cost - self.tokens) / self.rate)


#: The refusals that count as a failed guess.
FAILURES = (ErrorCode.AUTH_FAILED, ErrorCode.REGISTRATION_CLOSED)
#: Keys remembered at most (per kind); the oldest are forgotten first.
MAX_KEYS = 100_000


class FailureWindow:
    """Timestamps of failures per key, over a sliding window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self.failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self.failures[key]
            return None
        return times

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        if not self.limit:
            return 0.0
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return times[-self.limit] + self.window - now

    def add(self, key: str, now: float) -> None:
        if not self.limit:
            return
        times = self._recent(key, now)
        if times is None:
            if len(self.failures) >= MAX_KEYS:
                del self.failures[next(iter(self.failures))]
            times = self.failures[key] = deque(maxlen=self.limit)
        times.append(now)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginLimiter:
    """Wraps each login attempt; refuses addresses and names that keep failing."""

    log = Logger()

    def __init__(self, clock: IReactorTime, per_ip: int = 20, per_name: int = 5,
                 window: float = 60.0) -> None:
        self.clock = clock
        self.by_ip = FailureWindow(per_ip, window)
        #: failures by ``name@address``
        self.by_name = FailureWindow(per_name, window)
        self.refused = 0

    @classmethod
    def from_settings(cls, limits: LimitSettings, clock: IReactorTime) -> LoginLimiter:
        return cls(clock, limits.login_failures_per_ip, limits.login_failures_per_name,
                   limits.login_failure_window)

    def attempt(self, peer: str, name: str, login: Callable[[], Deferred]) -> Deferred:
        """Run ``login()`` unless ``peer``, or ``name`` from ``peer``, is locked out."""
        now = self.clock.seconds()
        wait_ip = self.by_ip.blocked_for(peer, now)
        wait_name = self.by_name.blocked_for(f"{name}@{peer}", now)
        if wait_ip or wait_name:
            self.refused += 1
            what = f"from {peer}" if wait_ip >= wait_name else f"for {name!r} from {peer}"
            return fail(LoginRefused(
                ErrorCode.RATE_LIMITED,
                f"too many failed logins {what}; try again in "
                f"{max(1, round(max(wait_ip, wait_name)))}s"))
        d = login()
        d.addCallbacks(self._succeeded, self._failed,
                       callbackArgs=(f"{name}@{peer}",), errbackArgs=(peer, name))
        return d

    def _succeeded(self, account: Any, key: str) -> Any:
        self.by_name.clear(key)
        return account

    def _failed(self, f: Failure, peer: str, name: str) -> Failure:
        if f.check(LoginRefused) and f.value.code in FAILURES:  # type: ignore[union-attr]
            now = self.clock.seconds()
            self.by_ip.add(peer, now)
            self.by_name.add(f"{name}@{peer}", now)
        return f
