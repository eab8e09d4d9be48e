"""OneFile's call budget, shared by every task and process of the sync through the staging
database.

OneFile allows 300 calls a minute **per customer** (contract: Rate limit). A limiter inside
one hook only knows its own calls: every task starts with an empty window, so a task that
follows another in the one-slot ``onefile_api`` pool spends the minute its predecessor
already spent and meets a 429 (measured: a push at 1,500 learners waited 60 s for one).
Here the window lives in the staging database instead, where every task of every run, in
any process on any worker, claims its calls from the same budget.

**The ring.** A customer's budget is ``calls`` rows of ``sync_call_slot``, each holding
when the last call it granted may have started (``used_until``, seconds on the database's
clock). A slot may be granted again only once that moment is a whole period past. Two calls
granted from one slot therefore start at least a period apart, and since there are only
``calls`` slots, no period ever holds more than ``calls`` calls, whoever made them. The ring
is the exact sliding window, in a fixed number of rows per customer.

**Claims.** One short transaction: an ``UPDATE`` of the customer's ``sync_call_budget`` row
first (its row lock is what makes claimants take turns: two processes can never both take
the last slot), then the free slots, oldest first, are stamped. Times come from the
database's own clock (:class:`database_epoch`, chosen by dialect in one place), so workers
on machines whose clocks differ still share one timeline. A claim may take a few slots at
once, for a hook calling fast: each is stamped with the end of a short *lease* (at most
:data:`~picsweb_sync.run.budget_limiter.MAX_LEASE_SECONDS`), and a slot not used before its lease ends is dropped, never used
late, so the stamp is never earlier than the call it stands for.

**One limit, the lowest.** Holders of one budget may be configured differently: two
Airflow connections to the same customer, or a connection edited while a run's tasks still
hold hooks built from its old value. Each holder records its limit (``sync_call_limit``,
when it starts and at every claim), and the ring is sized to the lowest number of calls,
over the longest period, among the limits claimed under within
:data:`LIMIT_MEMORY_SECONDS`: a holder with a higher limit never spends more than the
lowest. A lower limit binds at once; a higher one only once nobody has claimed under the
lower one for that long (to raise the limit at once, after editing every connection,
delete the customer's ``sync_call_limit`` rows).

**429.** An answer of 429 means someone is over the budget (a client outside the sync, or
OneFile counting differently): :meth:`~picsweb_sync.run.budget_limiter.SharedCallBudget.pause` records ``paused_until`` on
the customer's row, and every holder waits until then before its next call.

The customer is identified by the base URL and a hash of the customer token (never the
token itself): two connections to the same customer share one budget.

This module is the budget in the database: its rows, claims and pauses. The limiter a hook
holds over it, and the factory the hook takes, are :mod:`picsweb_sync.run.budget_limiter`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from picsweb_sync.storage.project_tables import ensure_project_tables
from picsweb_sync.storage.project_tables.call_budget import (
    BUDGET_TABLES,
    sync_call_budget,
    sync_call_limit,
    sync_call_slot,
)
from picsweb_sync.storage.project_tables.common import database_epoch

log = logging.getLogger(__name__)

LIMIT_MEMORY_SECONDS = 15 * 60.0
"""How long a configured limit binds the budget after the last claim under it. The budget
keeps the lowest limit any holder claimed under within this time, so a connection edited
to a higher limit (or a second connection to the same customer with a higher one) takes
effect only once no hook built with the lower one has called for this long; a lower limit
takes effect at its first claim."""


class _Created(Exception):
    """The budget's rows were just created (or resized): claim again."""


def _ensure_rows(engine: Engine, key: str, calls: int) -> None:
    """The customer's budget row and a ring of ``calls`` free slots, if not there yet."""
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(sync_call_budget).values(
                    budget_key=key, calls=calls, paused_until=0.0, claims=0
                )
            )
            conn.execute(
                insert(sync_call_slot),
                [{"budget_key": key, "slot_no": n, "used_until": 0.0} for n in range(calls)],
            )
    except IntegrityError:  # another process made them first
        pass


def _resize(conn: Connection, key: str, calls: int) -> None:
    """Make the ring ``calls`` slots long, keeping the newest stamps (a new limit must not
    forget the calls just made). Only when the lowest limit seen lately changed."""
    stamps = conn.execute(
        select(sync_call_slot.c.used_until)
        .where(sync_call_slot.c.budget_key == key)
        .order_by(sync_call_slot.c.used_until.desc())
    ).scalars()
    kept = list(stamps)[:calls]
    kept += [0.0] * (calls - len(kept))
    conn.execute(delete(sync_call_slot).where(sync_call_slot.c.budget_key == key))
    conn.execute(
        insert(sync_call_slot),
        [{"budget_key": key, "slot_no": n, "used_until": t} for n, t in enumerate(kept)],
    )
    conn.execute(
        update(sync_call_budget).where(sync_call_budget.c.budget_key == key).values(calls=calls)
    )
    log.warning(
        "OneFile call budget resized to %d calls a period (the lowest limit its holders "
        "claimed under in the last %d minutes)",
        calls,
        LIMIT_MEMORY_SECONDS // 60,
    )


def _note_limit(conn: Connection, key: str, calls: int, period: float) -> None:
    """Record that a holder of budget ``key`` claims under ``calls`` per ``period`` now."""
    limit = sync_call_limit.c
    where = (
        limit.budget_key == key,
        limit.calls == calls,
        limit.period_ms == _milliseconds(period),
    )
    seen = conn.execute(
        update(sync_call_limit).where(*where).values(seen_at=database_epoch())
    ).rowcount
    if not seen:
        conn.execute(
            insert(sync_call_limit).values(
                budget_key=key,
                calls=calls,
                period_ms=_milliseconds(period),
                seen_at=database_epoch(),
            )
        )


def _milliseconds(period: float) -> int:
    return round(period * 1000)


def _recent_limits(key: str) -> tuple[Any, Any]:
    """The lowest number of calls and the longest period among the limits claimed under
    within :data:`LIMIT_MEMORY_SECONDS` (scalar subqueries, on the database's clock)."""
    limit = sync_call_limit.c
    recent = (
        limit.budget_key == key,
        limit.seen_at >= database_epoch() - LIMIT_MEMORY_SECONDS,
    )
    return (
        select(func.min(limit.calls)).where(*recent).scalar_subquery(),
        select(func.max(limit.period_ms)).where(*recent).scalar_subquery(),
    )


def _lock_budget(conn: Connection, key: str) -> None:
    """Take the customer's budget row lock (claims take turns behind it)."""
    budget = sync_call_budget.c
    locked = conn.execute(
        update(sync_call_budget).where(budget.budget_key == key).values(claims=budget.claims + 1)
    ).rowcount
    if not locked:
        raise _Created


def register(engine: Engine, key: str, calls: int, period: float) -> None:
    """A holder of budget ``key`` says, before its first call, which limit its connection
    has: from now on the budget never grants more than the lowest limit seen lately."""
    for _ in range(3):
        try:
            with engine.begin() as conn:
                _lock_budget(conn, key)
                _note_limit(conn, key, calls, period)
                return
        except _Created:
            _ensure_rows(engine, key, calls)
    raise RuntimeError(f"could not create the OneFile call budget {key!r}")


def claim(
    engine: Engine, key: str, calls: int, period: float, want: int, lease: float
) -> tuple[int, float]:
    """Take up to ``want`` call slots of budget ``key`` for a holder whose limit is
    ``calls`` per ``period`` seconds, each counted as used until ``lease`` seconds from now.

    The budget grants at most the lowest ``calls`` per the longest ``period`` among the
    limits its holders claimed under within :data:`LIMIT_MEMORY_SECONDS` (this one's
    included): a holder configured with a higher limit never spends more than the lowest.

    Returns ``(granted, wait)``: when nothing could be granted, ``wait`` is how many seconds
    until the oldest slot frees (or a 429 pause ends). One transaction; the ``UPDATE`` of
    the budget row comes first, so claims on one budget take turns.
    """
    budget, slot = sync_call_budget.c, sync_call_slot.c
    for _ in range(3):
        try:
            with engine.begin() as conn:
                _lock_budget(conn, key)
                _note_limit(conn, key, calls, period)
                lowest, longest = _recent_limits(key)
                now, paused_until, ring, limit, period_ms = conn.execute(
                    select(
                        database_epoch(), budget.paused_until, budget.calls, lowest, longest
                    ).where(budget.budget_key == key)
                ).one()
                if ring != limit:
                    _resize(conn, key, limit)
                period = max(period, period_ms / 1000)
                if paused_until > now:
                    return 0, paused_until - now
                free = (
                    conn.execute(
                        select(slot.slot_no)
                        .where(slot.budget_key == key, slot.used_until <= now - period)
                        .order_by(slot.used_until)
                        .limit(want)
                    )
                    .scalars()
                    .all()
                )
                if not free:
                    oldest = conn.execute(
                        select(func.min(slot.used_until)).where(slot.budget_key == key)
                    ).scalar_one()
                    return 0, max(0.0, oldest + period - now)
                conn.execute(
                    update(sync_call_slot)
                    .where(slot.budget_key == key, slot.slot_no.in_(free))
                    .values(used_until=now + lease)
                )
                return len(free), 0.0
        except _Created:
            _ensure_rows(engine, key, calls)
    raise RuntimeError(f"could not create the OneFile call budget {key!r}")


def pause(engine: Engine, key: str, seconds: float) -> None:
    """Nobody claims from budget ``key`` for ``seconds`` from now (a later pause wins)."""
    until = database_epoch() + seconds
    paused = sync_call_budget.c.paused_until
    with engine.begin() as conn:
        conn.execute(
            update(sync_call_budget)
            .where(sync_call_budget.c.budget_key == key)
            .values(paused_until=case((paused < until, until), else_=paused))
        )


def seconds_until_clear(engine: Engine, key: str, period: float) -> float:
    """Seconds until no call granted from budget ``key`` can still count in OneFile's window
    (``period``, or the longest period the budget's holders claimed under lately)."""
    slot = sync_call_slot.c
    _, longest = _recent_limits(key)
    with engine.connect() as conn:
        newest, now, period_ms = conn.execute(
            select(func.max(slot.used_until), database_epoch(), longest).where(
                slot.budget_key == key
            )
        ).one()
    if newest is None:
        return 0.0
    return max(0.0, newest + max(period, (period_ms or 0) / 1000) - now)


_ready_engines: set[str] = set()
_ready_lock = threading.Lock()


def ensure_budget_tables(engine: Engine) -> None:
    """Create the budget's tables in the staging database once per process (idempotent; a
    process that loses the race to create them finds them made)."""
    url = engine.url.render_as_string(hide_password=True)
    with _ready_lock:
        if url in _ready_engines:
            return
        try:
            ensure_project_tables(engine, tables=BUDGET_TABLES)
        except SQLAlchemyError:
            ensure_project_tables(engine, tables=BUDGET_TABLES)  # made meanwhile: now found
        _ready_engines.add(url)


def lowest_recent_limit(engine: Engine, key: str) -> int | None:
    """The lowest number of calls any holder of budget ``key`` claimed under within
    :data:`LIMIT_MEMORY_SECONDS` (``None`` when nobody did)."""
    lowest, _ = _recent_limits(key)
    with engine.connect() as conn:
        return conn.execute(select(lowest)).scalar()
