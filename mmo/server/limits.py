"""
Failed logins, limited per client address and per account name.

Every failed login (wrong password, unknown name with registration closed)
is remembered for ``window`` seconds.  An address with ``per_ip`` failures,
or a name with ``per_name`` failures, in the window is refused at once with
``RATE_LIMITED`` -- before any password is hashed, so a guessing burst costs
the node almost nothing -- until the oldest failure leaves the window.  A
successful login clears its name's failures.  The counts are per node.
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
        self.by_name = FailureWindow(per_name, window)
        self.refused = 0

    @classmethod
    def from_settings(cls, limits: LimitSettings, clock: IReactorTime) -> LoginLimiter:
        return cls(clock, limits.login_failures_per_ip, limits.login_failures_per_name,
                   limits.login_failure_window)

    def attempt(self, peer: str, name: str, login: Callable[[], Deferred]) -> Deferred:
        """Run ``login()`` unless ``peer`` or ``name`` is locked out."""
        now = self.clock.seconds()
        wait_ip = self.by_ip.blocked_for(peer, now)
        wait_name = self.by_name.blocked_for(name, now)
        if wait_ip or wait_name:
            self.refused += 1
            what = f"from {peer}" if wait_ip >= wait_name else f"for {name!r}"
            return fail(LoginRefused(
                ErrorCode.RATE_LIMITED,
                f"too many failed logins {what}; try again in "
                f"{max(1, round(max(wait_ip, wait_name)))}s"))
        d = login()
        d.addCallbacks(self._succeeded, self._failed,
                       callbackArgs=(name,), errbackArgs=(peer, name))
        return d

    def _succeeded(self, account: Any, name: str) -> Any:
        self.by_name.clear(name)
        return account

    def _failed(self, f: Failure, peer: str, name: str) -> Failure:
        if f.check(LoginRefused) and f.value.code in FAILURES:  # type: ignore[union-attr]
            now = self.clock.seconds()
            self.by_ip.add(peer, now)
            self.by_name.add(name, now)
        return f
