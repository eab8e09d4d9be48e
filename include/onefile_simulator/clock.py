"""A clock the tests can move forward, so 24-hour token expiry is testable in milliseconds."""

from __future__ import annotations

import datetime as dt
import threading
import time


class SimClock:
    """Simulated wall clock: ticks with real time from `start`, plus whatever `advance` adds."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("SimClock needs an aware start datetime")
        self._base = (start or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        self._mono = time.monotonic()
        self._offset = dt.timedelta()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        """The simulated current instant, aware, in UTC."""
        with self._lock:
            offset = self._offset
        return self._base + dt.timedelta(seconds=time.monotonic() - self._mono) + offset

    def advance(self, by: float | dt.timedelta) -> None:
        """Jump forward by seconds or a timedelta (e.g. past a session token's 24 hours)."""
        step = by if isinstance(by, dt.timedelta) else dt.timedelta(seconds=by)
        with self._lock:
            self._offset += step
