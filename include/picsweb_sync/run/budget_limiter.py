"""The hook's limiter over OneFile's shared call budget, and the factory the hook takes.

:class:`SharedCallBudget` is what a ``OneFileHook`` calls before each request
(``acquire``), on a 429 (``pause``) and before it ends (``seconds_until_clear``): it claims
its calls from the budget every task and process shares through the staging database
(:mod:`picsweb_sync.run.call_budget`: the ring, the claims, the lowest limit), a few slots a
claim when it calls fast, each held only for a short lease. :func:`limiter_factory` builds
one per hook (``OneFileHook(limiter_factory=...)``), or the hook's own in-memory limiter for
a limit no real OneFile has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from picsweb_sync.run.budget_wait_log import WaitLog
from picsweb_sync.run.call_budget import (
    claim,
    ensure_budget_tables,
    lowest_recent_limit,
    pause,
    register,
    seconds_until_clear,
)

log = logging.getLogger(__name__)

ARRIVAL_JITTER_MARGIN_SECONDS = 0.2
"""Added to the period, as the in-memory limiter does (``onefile.hook``): OneFile stamps a
call when it arrives, a little later than we grant it, and by a varying amount."""

MAX_LEASE_SECONDS = 1.0
"""How long slots claimed in one batch stay usable. Each slot claimed is counted as used at
the lease's end, so a longer lease costs throughput (lease ÷ period: 1.7 % at 60 s)."""

MAX_SHARED_CALLS = 5000
"""A limit above this is no real OneFile limit (tests and benchmarks lift it to 10**9):
such a hook keeps the in-memory limiter, and no ring of that many rows is built."""


class SharedCallBudget:
    """A hook's limiter (``acquire``, ``pause``, ``seconds_until_clear``) over the shared
    budget ``key`` in ``engine``: at most ``calls`` starts in any ``period`` seconds across
    every holder of the same key. Thread-safe; waits with ``sleep``, and says so in the log
    (:mod:`picsweb_sync.run.budget_wait_log`)."""

    def __init__(
        self,
        engine: Engine,
        key: str,
        calls: int,
        period: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < calls <= MAX_SHARED_CALLS:
            raise ValueError(
                f"a shared call budget holds 1 to {MAX_SHARED_CALLS} calls, not {calls}"
            )
        self.engine = engine
        self.key = key
        self.calls = calls
        self.period = period + ARRIVAL_JITTER_MARGIN_SECONDS
        self.lease = min(MAX_LEASE_SECONDS, self.period / 20)
        # A batch never holds more than a thirtieth of the budget: slots left unused when
        # a task ends are lost to everyone for a period.
        self.max_batch = max(1, calls // 30)
        self.claims = 0  # database round trips, for the benchmark's accounting
        self._monotonic = monotonic
        self._sleep = sleep
        self._held = 0
        self._held_until = 0.0
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()
        self._waits = WaitLog(calls, period, log, monotonic=monotonic)  # says why a call waits
        ensure_budget_tables(engine)
        register(engine, key, calls, self.period)

    def _batch(self, now: float) -> int:
        """Slots to ask for: as many as this holder started in the last lease, plus one."""
        while self._recent and self._recent[0] <= now - self.lease:
            self._recent.popleft()
        return min(self.max_batch, len(self._recent) + 1)

    def acquire(self) -> None:
        """Block until a call may start, and count it against the shared budget."""
        with self._lock:
            while True:
                now = self._monotonic()
                if self._held and now < self._held_until:
                    self._held -= 1
                    self._recent.append(now)
                    return
                self._held = 0
                granted, wait = claim(
                    self.engine, self.key, self.calls, self.period, self._batch(now), self.lease
                )
                self.claims += 1
                if granted:
                    # The lease is measured from before the claim was sent: the database
                    # stamped the slots later than that, so they stay counted past it.
                    self._held, self._held_until = granted, now + self.lease
                    continue
                self._waits.waiting(wait)
                self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Every holder of this budget waits ``seconds`` before its next call (a 429)."""
        with self._lock:
            self._held = 0
        pause(self.engine, self.key, seconds)

    def seconds_until_clear(self) -> float:
        return seconds_until_clear(self.engine, self.key, self.period)


def limiter_factory(engine: Engine) -> Callable[[str, int, float], Any]:
    """What ``OneFileHook(limiter_factory=...)`` takes: a budget shared through ``engine``,
    or, for a limit no real OneFile has, the hook's own in-memory limiter, unless the
    customer's budget has a real limit claimed under lately (that hook then shares the
    budget, held to that limit: a lifted limit never lifts another holder's)."""

    def build(key: str, calls: int, period: float) -> Any:
        if calls > MAX_SHARED_CALLS:
            ensure_budget_tables(engine)
            lowest = lowest_recent_limit(engine, key)
            if lowest is None:
                from onefile.limiter import SlidingWindowLimiter

                return SlidingWindowLimiter(calls, period)
            log.warning(
                "this OneFile connection allows %d calls a period, but the customer's call "
                "budget is held to %d by another connection: sharing it",
                calls,
                lowest,
            )
            calls = lowest
        return SharedCallBudget(engine, key, calls, period)

    return build
