"""The shared OneFile call budget (``picsweb_sync.run.call_budget``) on SQLite and PostgreSQL:
the ring never grants more than its size within a period, whoever claims; a 429 pause
holds everyone; holders configured with different limits share the lowest (a higher one
binds only once the lower was not claimed under lately); a changed limit keeps the newest
calls; every statement compiles for SQL Server. Periods here are long (a minute) so nothing frees while a test runs: the answers
are decided by the ring, not by how fast the machine is."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import ClauseElement

from picsweb_sync.run import call_budget as cb
from picsweb_sync.run.budget_limiter import MAX_SHARED_CALLS, SharedCallBudget, limiter_factory
from picsweb_sync.storage.engines import engine_for_url

from .test_mssql_compile import DIALECT, NOT_TSQL, tsql

PERIOD = 60.0
LEASE = 1.0


@pytest.fixture
def engine(db_url: str):
    engine = engine_for_url(db_url)
    cb.ensure_budget_tables(engine)
    yield engine
    engine.dispose()


def granted(engine: sa.Engine, calls: int, wants: list[int], key: str = "k") -> list[int]:
    return [cb.claim(engine, key, calls, PERIOD, want, LEASE)[0] for want in wants]


@pytest.mark.parametrize(
    ("calls", "wants", "expected"),
    [
        (5, [3, 3, 3], [3, 2, 0]),
        (5, [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]),
        (1, [4, 1], [1, 0]),
        (4, [10], [4]),
    ],
    ids=["batches", "one-by-one", "single-slot", "batch-larger-than-ring"],
)
def test_a_ring_grants_its_size_per_period_and_no_more(
    engine: sa.Engine, calls: int, wants: list[int], expected: list[int]
) -> None:
    assert granted(engine, calls, wants) == expected


def test_an_exhausted_budget_says_when_its_oldest_slot_frees(engine: sa.Engine) -> None:
    assert granted(engine, 2, [2]) == [2]
    granted_now, wait = cb.claim(engine, "k", 2, PERIOD, 1, LEASE)
    assert granted_now == 0
    # The slots were counted as used until the lease's end: a period after that.
    assert PERIOD - 5 < wait <= PERIOD + LEASE


def test_budgets_of_two_customers_are_separate(engine: sa.Engine) -> None:
    assert granted(engine, 3, [3, 1], key="customer-a") == [3, 0]
    assert granted(engine, 3, [3, 1], key="customer-b") == [3, 0]


@pytest.mark.parametrize(
    ("pauses", "least", "most"),
    [([30.0], 29.0, 30.0), ([30.0, 5.0], 29.0, 30.0), ([5.0, 30.0], 29.0, 30.0)],
    ids=["one-pause", "a-shorter-pause-does-not-shorten", "a-longer-pause-extends"],
)
def test_a_429_pause_holds_every_claimant(
    engine: sa.Engine, pauses: list[float], least: float, most: float
) -> None:
    assert granted(engine, 10, [1]) == [1]
    for seconds in pauses:
        cb.pause(engine, "k", seconds)
    other = engine_for_url(engine.url)  # another holder, through its own connections
    try:
        granted_now, wait = cb.claim(other, "k", 10, PERIOD, 1, LEASE)
    finally:
        other.dispose()
    assert granted_now == 0
    assert least < wait <= most


def ring_size(engine: sa.Engine, key: str = "k") -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(cb.sync_call_slot.c.budget_key == key)
        ).scalar_one()


def forget_limits_older_than_memory(engine: sa.Engine, calls: int) -> None:
    """As if no holder had claimed under ``calls`` for longer than LIMIT_MEMORY_SECONDS."""
    limit = cb.sync_call_limit.c
    with engine.begin() as conn:
        conn.execute(
            sa.update(cb.sync_call_limit)
            .where(limit.calls == calls)
            .values(seen_at=cb.database_epoch() - cb.LIMIT_MEMORY_SECONDS - 1)
        )


@pytest.mark.parametrize(
    ("first", "used", "then", "expected"),
    [(5, 5, 3, 0), (5, 2, 3, 1)],
    ids=["lowered-keeps-newest-used", "lowered-partly-used"],
)
def test_a_lowered_limit_binds_at_once_and_keeps_the_calls_already_made(
    engine: sa.Engine, first: int, used: int, then: int, expected: int
) -> None:
    assert granted(engine, first, [used]) == [used]
    assert granted(engine, then, [then]) == [expected]
    assert ring_size(engine) == then


def test_a_raised_limit_waits_until_the_lower_one_was_not_claimed_under_lately(
    engine: sa.Engine,
) -> None:
    """A holder with 8 beside one with 5 (seen just now) gets nothing beyond the 5; once
    nobody has claimed under 5 for LIMIT_MEMORY_SECONDS, the ring grows to 8, keeping the
    calls already made."""
    assert granted(engine, 5, [5]) == [5]
    assert granted(engine, 8, [8]) == [0]
    assert ring_size(engine) == 5
    forget_limits_older_than_memory(engine, 5)
    assert granted(engine, 8, [8]) == [3]
    assert ring_size(engine) == 8


def test_holders_with_different_limits_share_the_lowest(engine: sa.Engine) -> None:
    """Two limiters of one customer, one configured with 5 calls a period and one with 8
    (two connections, or one edited mid-run), calling in turn: 5 calls start, never 8,
    whichever holder asks first or most."""
    budgets = {
        calls: SharedCallBudget(engine, "k", calls, PERIOD, sleep=_stop_at_wait) for calls in (8, 5)
    }
    started = {8: 0, 5: 0}
    for calls in [8, 8, 5, 8, 5, 8, 8, 5, 8, 5, 8]:
        try:
            budgets[calls].acquire()
            started[calls] += 1
        except _Slept:
            pass
    assert sum(started.values()) == 5
    assert started[8] >= 3  # the higher one got its share of the lowest, not its own
    assert ring_size(engine) == 5


def test_the_longest_period_among_the_limits_binds(engine: sa.Engine) -> None:
    assert granted(engine, 3, [3]) == [3]
    granted_now, wait = cb.claim(engine, "k", 3, 2 * PERIOD, 1, LEASE)
    assert granted_now == 0
    assert 2 * PERIOD - 5 < wait <= 2 * PERIOD + LEASE
    # and the period of the 60 s holder is now 120 s too
    granted_now, wait = cb.claim(engine, "k", 3, PERIOD, 1, LEASE)
    assert granted_now == 0
    assert 2 * PERIOD - 5 < wait <= 2 * PERIOD + LEASE
    assert 2 * PERIOD - 5 < cb.seconds_until_clear(engine, "k", PERIOD) <= 2 * PERIOD + LEASE


def test_a_holder_counts_from_its_start_not_its_first_claim(engine: sa.Engine) -> None:
    """A hook registers its limit when it is built, so a holder with a higher limit that
    calls first is already held to the lower one."""
    SharedCallBudget(engine, "k", 2, PERIOD)
    assert granted(engine, 8, [8]) == [2]


def test_seconds_until_clear_follows_the_newest_call(engine: sa.Engine) -> None:
    assert cb.seconds_until_clear(engine, "k", PERIOD) == 0.0  # no budget yet
    granted(engine, 3, [1])
    assert PERIOD - 5 < cb.seconds_until_clear(engine, "k", PERIOD) <= PERIOD + LEASE


def test_claimants_at_once_never_share_a_slot(engine: sa.Engine) -> None:
    """Eight holders, each with its own engine (own connections), claim from one budget
    of 40 at the same moment until it is spent: exactly 40 granted, never more."""
    calls, start = 40, threading.Barrier(8)
    totals: list[int] = []

    def holder() -> None:
        own = engine_for_url(engine.url)
        got = 0
        start.wait()
        try:
            while True:
                granted_now, _ = cb.claim(own, "k", calls, PERIOD, 3, LEASE)
                if not granted_now:
                    break
                got += granted_now
        finally:
            own.dispose()
        totals.append(got)

    threads = [threading.Thread(target=holder) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == calls
    assert len(totals) == 8


class _Slept(Exception):
    """Stops a limiter at its first wait, so the test sees what it would wait for."""


def _stop_at_wait(seconds: float) -> None:
    raise _Slept


def test_shared_budget_waits_rather_than_overspends(engine: sa.Engine) -> None:
    """The limiter the hook gets: calls within the ring start at once; the first beyond
    it sleeps for as long as the database says its oldest slot stays used."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise _Slept

    budget = SharedCallBudget(engine, "k", 3, PERIOD, sleep=sleep)
    for _ in range(3):
        budget.acquire()
    assert waits == []
    with pytest.raises(_Slept):
        budget.acquire()
    (wait,) = waits
    assert PERIOD - 5 < wait <= budget.period + budget.lease


def test_a_lifted_limit_keeps_the_hooks_own_limiter(engine: sa.Engine) -> None:
    from onefile.limiter import SlidingWindowLimiter

    build = limiter_factory(engine)
    assert isinstance(build("k", 10**9, 60.0), SlidingWindowLimiter)
    assert isinstance(build("k", 300, 60.0), SharedCallBudget)
    with pytest.raises(ValueError, match="shared call budget holds"):
        SharedCallBudget(engine, "k", MAX_SHARED_CALLS + 1, 60.0)


def test_a_lifted_limit_does_not_lift_a_real_one_claimed_under_lately(
    engine: sa.Engine,
) -> None:
    """A connection with a limit no real OneFile has (tests lift theirs to 10**9) keeps
    its own limiter only while the customer's budget has no real limit: beside a holder
    with 3 calls a period it shares the budget and is held to 3."""
    SharedCallBudget(engine, "k", 3, PERIOD)
    lifted = limiter_factory(engine)("k", 10**9, PERIOD)
    assert isinstance(lifted, SharedCallBudget)
    lifted._sleep = _stop_at_wait
    for _ in range(3):
        lifted.acquire()
    with pytest.raises(_Slept):
        lifted.acquire()
    forget_limits_older_than_memory(engine, 3)
    from onefile.limiter import SlidingWindowLimiter

    assert isinstance(limiter_factory(engine)("k", 10**9, PERIOD), SlidingWindowLimiter)


# ----- SQL Server ------------------------------------------------------------------------
def test_every_budget_statement_compiles_as_tsql(tmp_path) -> None:
    engine = engine_for_url(f"sqlite:///{tmp_path / 'budget.sqlite'}")
    captured: list[ClauseElement] = []

    @event.listens_for(engine, "before_execute")
    def capture(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, ClauseElement):
            captured.append(clauseelement)

    cb.ensure_budget_tables(engine)
    cb.register(engine, "k", 2, PERIOD)  # creates, records the limit
    granted(engine, 2, [2, 1])  # claims, finds the ring spent
    forget_limits_older_than_memory(engine, 2)
    granted(engine, 3, [1])  # resizes
    cb.pause(engine, "k", 5.0)
    cb.claim(engine, "k", 3, PERIOD, 1, LEASE)
    cb.seconds_until_clear(engine, "k", PERIOD)
    cb.lowest_recent_limit(engine, "k")
    engine.dispose()

    kinds = {type(stmt).__name__ for stmt in captured}
    assert {"Insert", "Update", "Delete", "Select"} <= kinds
    texts = [" ".join(tsql(stmt).split()) for stmt in captured]
    for sql in texts:
        assert not [token for token in NOT_TSQL if token in sql.upper()], sql
    clock = "DATEDIFF_BIG(MICROSECOND, '19700101', SYSUTCDATETIME())"
    assert any(clock in sql for sql in texts)
    assert any("SELECT TOP" in sql for sql in texts)  # the oldest free slots


@pytest.mark.parametrize("table", cb.BUDGET_TABLES, ids=lambda table: table.name)
def test_budget_tables_compile_for_sql_server(table: sa.Table) -> None:
    sql = str(CreateTable(table).compile(dialect=DIALECT))
    assert "FLOAT(53)" in sql or "calls INTEGER" in sql
    assert f"CONSTRAINT pk_{table.name} PRIMARY KEY" in sql


def test_the_database_clock_agrees_with_ours(engine: sa.Engine) -> None:
    """Each dialect's clock expression reads seconds since 1970 in UTC (to a few seconds:
    the database runs on this machine)."""
    with engine.connect() as conn:
        theirs = conn.execute(sa.select(cb.database_epoch())).scalar_one()
    assert abs(theirs - time.time()) < 5
