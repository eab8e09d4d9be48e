"""What a holder of OneFile's call budget says when it has to wait for it.

A push that stalls for a minute looks broken unless its log says why. So when a call must
wait for a free slot of the budget, or for a 429 pause to end
(:class:`picsweb_sync.run.budget_limiter.SharedCallBudget`), the holder logs one line::

    waiting 41.6 s for OneFile's call budget (limit 300 per minute; until 20:14:05 UTC)

A long push at the limit waits a fraction of a second before most of its calls, and a line
per call would bury everything else in the log. So a short wait (under
:data:`LONG_WAIT_SECONDS`) is said only when no wait was said for
:data:`QUIET_SECONDS`; the short waits in between are summed up in the next line
(``; 57 shorter waits since 20:12:58 UTC, 11.3 s in all``). A long wait is always said.

The line names durations, times and the limit only: the budget's key (a hash of the
customer token, never the token) is not in it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

LONG_WAIT_SECONDS = 5.0
"""A wait this long (or longer) is always logged: a person watching the task notices it."""

QUIET_SECONDS = 60.0
"""Short waits are said at most once in this long; those in between are summed up."""


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def limit_text(calls: int, period: float) -> str:
    """``300 per minute`` (or ``10 per 5 s`` for a period that is not a minute)."""
    return f"{calls} per minute" if abs(period - 60.0) < 1e-6 else f"{calls} per {period:g} s"


class WaitLog:
    """Logs the waits of one budget holder (see the module doc). Not thread-safe on its
    own: the holder calls it under its lock."""

    def __init__(
        self,
        calls: int,
        period: float,
        logger: logging.Logger,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit_text(calls, period)
        self._log = logger
        self._monotonic = monotonic
        self._wall = wall
        self._last_line: float | None = None
        self._quiet_waits = 0
        self._quiet_seconds = 0.0
        self._quiet_since: float | None = None  # wall clock of the first unsaid wait

    def waiting(self, seconds: float) -> None:
        """The holder is about to sleep ``seconds`` for the budget."""
        now = self._monotonic()
        quiet = self._last_line is not None and now - self._last_line < QUIET_SECONDS
        if seconds < LONG_WAIT_SECONDS and quiet:
            if self._quiet_since is None:
                self._quiet_since = self._wall()
            self._quiet_waits += 1
            self._quiet_seconds += seconds
            return
        line = (
            f"waiting {_seconds(seconds)} s for OneFile's call budget "
            f"(limit {self.limit}; until {_clock(self._wall() + seconds)})"
        )
        if self._quiet_waits:
            plural = "s" if self._quiet_waits > 1 else ""
            line += (
                f"; {self._quiet_waits} shorter wait{plural} since "
                f"{_clock(self._quiet_since or self._wall())}, "
                f"{_seconds(self._quiet_seconds)} s in all"
            )
        self._log.info("%s", line)
        self._last_line = now
        self._quiet_waits, self._quiet_seconds, self._quiet_since = 0, 0.0, None
