"""The client-side call limiter: how many OneFile calls may start, and whose budget they use.

OneFile allows a customer 300 calls a minute, whoever calls (contract: Rate limit). The hook
asks a :class:`CallLimiter` before every call. On its own a hook counts only its own calls
(:class:`SlidingWindowLimiter`, in memory); the sync's tasks pass a :data:`LimiterFactory`
that shares one window between every task and process through the staging database
(``picsweb_sync.run.call_budget``), keyed by :func:`budget_key`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

ARRIVAL_JITTER_MARGIN_SECONDS = 0.2
"""Added to the limiter's period: see :class:`SlidingWindowLimiter`."""


class CallLimiter(Protocol):
    """What the hook asks of its rate limiter (in memory, or shared by every task)."""

    def acquire(self) -> None:
        """Block until a call may start, and count it."""

    def pause(self, seconds: float) -> None:
        """No call starts for ``seconds`` (OneFile answered 429)."""

    def seconds_until_clear(self) -> float:
        """Seconds until none of the recent calls can still count in OneFile's window."""


LimiterFactory = Callable[[str, int, float], CallLimiter]
"""``(budget key, calls, period seconds) -> limiter``: see ``OneFileHook(limiter_factory=)``."""


class SlidingWindowLimiter:
    """At most ``calls`` starts in any ``period`` seconds, shared by all threads of one hook.

    The server stamps a call when it arrives, later than we do and by a varying amount
    (network, queueing), so two calls exactly one period apart here may look closer there
    and earn a 429. A fixed margin on the period absorbs that jitter; without it a burst
    against the simulator already sees 429s on loopback.
    """

    def __init__(self, calls: int, period: float, monotonic: Callable[[], float] = time.monotonic):
        self.calls = calls
        self.period = period + ARRIVAL_JITTER_MARGIN_SECONDS
        self._monotonic = monotonic
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a call may start, and count it. Waiters queue on the lock in turn."""
        with self._lock:
            while True:
                now = self._monotonic()
                if now < self._paused_until:
                    time.sleep(self._paused_until - now)
                    continue
                while self._starts and self._starts[0] <= now - self.period:
                    self._starts.popleft()
                if len(self._starts) < self.calls:
                    self._starts.append(now)
                    return
                time.sleep(self._starts[0] + self.period - now)

    def pause(self, seconds: float) -> None:
        """Hold back every thread's next call for ``seconds`` (a later pause wins)."""
        self._paused_until = max(self._paused_until, self._monotonic() + seconds)

    def seconds_until_clear(self) -> float:
        """Seconds until none of our recent calls can still count in the server's window."""
        with self._lock:
            if not self._starts:
                return 0.0
            return max(0.0, self._starts[-1] + self.period - self._monotonic())


def own_limiter(budget_key: str, calls: int, period: float) -> SlidingWindowLimiter:
    """The default :data:`LimiterFactory`: a window of this hook's own calls only."""
    return SlidingWindowLimiter(calls, period)


def budget_key(base_url: str, customer_token: str) -> str:
    """Who the rate limit belongs to: the customer, i.e. the token in its environment.

    A hash (the token itself is a secret and never stored): the same customer through two
    connections gets one key, two customers two keys.
    """
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{customer_token}".encode()).hexdigest()[:32]
