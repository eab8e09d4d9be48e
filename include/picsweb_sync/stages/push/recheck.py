"""How fresh a re-check must be: what both systems hold *now*, read at most
:data:`CHECK_MAX_AGE_SECONDS` before the write it allows, on one monotonic clock.

A push may run long after its merge (a task cleared days later, a run waiting for another's
lock), and at 300 calls a minute a long push sends its last row tens of minutes after its
first. So every row is checked against what both systems hold now, at most
:data:`CHECK_MAX_AGE_SECONDS` (measured on a monotonic clock, :func:`monotonic`) before it
is sent, a chunk at a time (:func:`chunk_calls`: the calls that fit within that limit at the
hook's rate): the learning aims as :mod:`~picsweb_sync.stages.push.aims` tells, the review
creates as :mod:`~picsweb_sync.stages.push.reviews` tells. A row that no longer applies is
``skipped``, with the reason in ``last_error``.

Both pushes read the clock and the chunk's size through this module (``recheck.monotonic()``,
``recheck.chunk_calls(hook)``), so one replacement (a test's clock) reaches both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.storage.sqlframes import select_in_chunks

CHECK_MAX_AGE_SECONDS = 50.0
"""The longest a re-check (the reads of both systems) may precede the write it allows:
a minute, less a margin for the call itself. Measured on :func:`monotonic`."""
CHUNK_BUDGET_SHARE = 0.9
"""The share of the call budget of :data:`CHECK_MAX_AGE_SECONDS` a chunk is sized to (the
rest is slack for retries and the other tasks sharing the customer's budget)."""


_monotonic: Callable[[], float] = time.monotonic  # the clock of every re-check's age


def monotonic() -> float:
    """Now on the clock of every re-check's age (:data:`_monotonic`, looked up at each call)."""
    return _monotonic()


def rows_where_in(conn: sa.Connection, table: sa.Table, column: str, ids) -> pd.DataFrame:
    """Rows of ``table`` whose ``column`` is one of ``ids``, in bounded ``IN`` lists."""
    return select_in_chunks(
        conn, lambda chunk: sa.select(table).where(table.c[column].in_(chunk)), ids
    )


def chunk_calls(hook: Any) -> int:
    """OneFile calls one chunk may make (its re-reads and its writes) so that all of them
    go within :data:`CHECK_MAX_AGE_SECONDS` of its re-check at the hook's rate limit, less
    :data:`CHUNK_BUDGET_SHARE`'s slack: 225 at OneFile's 300 calls a minute."""
    settings = hook_settings(hook)
    calls = getattr(settings, "calls_per_minute", 300) or 300
    period = getattr(settings, "rate_period_seconds", 60.0) or 60.0
    share = min(1.0, CHECK_MAX_AGE_SECONDS / float(period))
    return max(2, int(calls * share * CHUNK_BUDGET_SHARE))


def hook_settings(hook: Any) -> Any:
    """The hook's tuning as its connection sets it (read once, before the first call)."""
    ready = getattr(hook, "_ready", None)
    if callable(ready):
        ready()  # loads the connection (its extras: page size, rate); no OneFile call
    return getattr(hook, "settings", None)
