"""Named locks in the staging database, on SQLite and PostgreSQL: one holder at a time,
waiting says for whom, a dead holder's lock frees itself, and threads really exclude
each other; every lock time is the database's clock (a claimant whose clock runs ahead
never takes a live lock); a holder that lost its lock (paused past STALE_AFTER, in a
process of its own) is fenced off: its next check raises LockLost, it writes nothing
more and frees nothing; every statement compiles for SQL Server."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Unicode,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import ClauseElement

from picsweb_sync.run import locks
from picsweb_sync.storage.engines import engine_for_url
from picsweb_sync.storage.project_tables import ensure_project_tables, sync_lock
from picsweb_sync.storage.project_tables.common import database_epoch, epoch_instant, utcnow
from tests.data.lock_holder import fenced_write

from .test_mssql_compile import DIALECT, NOT_TSQL, tsql

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def staging(empty_engine):
    ensure_project_tables(empty_engine)
    return empty_engine


def test_one_holder_at_a_time_and_release_frees_it(staging):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "run A") == 1
    assert locks.try_claim(staging, "reviews", "run A") == 2  # its own lock again
    assert locks.try_claim(staging, "reviews", "run B") is None
    assert locks.current_holder(staging, "reviews")[0] == "run A"
    assert not locks.release(staging, "reviews", "run B", 2)  # not B's to free
    assert not locks.release(staging, "reviews", "run A", 1)  # nor A's earlier claim's
    assert locks.try_claim(staging, "reviews", "run B") is None
    assert locks.release(staging, "reviews", "run A", 2)
    assert locks.try_claim(staging, "reviews", "run B") == 3


def test_a_waiting_task_names_the_holder_and_gives_up_after_its_timeout(staging, caplog):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "run manual__1, push_reviews try 1")
    naps: list[float] = []
    caplog.set_level(logging.INFO, logger="picsweb_sync.run.locks")
    with (
        pytest.raises(locks.LockTimeout, match="held by run manual__1, push_reviews try 1"),
        locks.held(staging, "reviews", "run backfill__2", timedelta(0), sleep=naps.append),
    ):
        pytest.fail("entered a lock someone else holds")
    assert "waiting for run manual__1, push_reviews try 1 to release" in caplog.text


def test_a_holder_whose_heartbeat_stopped_loses_the_lock(staging):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "killed worker")
    with staging.begin() as conn:  # its last heartbeat was longer ago than STALE_AFTER
        conn.execute(
            update(sync_lock).values(
                heartbeat_at=database_epoch() - locks.STALE_AFTER.total_seconds() - 1
            )
        )
    assert locks.try_claim(staging, "reviews", "next run")
    assert locks.current_holder(staging, "reviews")[0] == "next run"


def test_a_live_holder_keeps_its_lock(staging):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "working")
    with staging.begin() as conn:
        conn.execute(
            update(sync_lock).values(
                heartbeat_at=database_epoch() - locks.STALE_AFTER.total_seconds() + 5
            )
        )
    assert not locks.try_claim(staging, "reviews", "next run")


def test_threads_holding_the_lock_never_overlap(staging, monkeypatch):
    monkeypatch.setattr(locks, "POLL", timedelta(milliseconds=10))
    inside, overlaps, done = [0], [0], []
    guard = threading.Lock()

    def work(name: str) -> None:
        for _ in range(3):
            with locks.held(staging, "reviews", name, timedelta(seconds=60)):
                with guard:
                    inside[0] += 1
                    overlaps[0] = max(overlaps[0], inside[0])
                threading.Event().wait(0.02)
                with guard:
                    inside[0] -= 1
                done.append(name)

    threads = [threading.Thread(target=work, args=(f"run {n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 9
    assert overlaps[0] == 1
    assert locks.current_holder(staging, "reviews")[0] is None


# ----- one clock: the database's ---------------------------------------------------------
SKEW = timedelta(minutes=3)


def _in(skew: timedelta):
    """This process's clock ``skew`` away from the real one (the database's stays true)."""
    return time_machine.travel(dt.datetime.now(dt.UTC) + skew, tick=True)


def _database_now(engine) -> dt.datetime:
    with engine.connect() as conn:
        return epoch_instant(conn.execute(select(database_epoch())).scalar_one())


def test_a_claimant_whose_clock_runs_ahead_never_takes_a_live_lock(staging):
    """By its own clock the holder's heartbeat is three minutes old, longer than
    STALE_AFTER; by the database's (the one that counts) it is fresh."""
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "working") == 1
    with _in(SKEW):
        assert utcnow() - _database_now(staging) > SKEW - timedelta(seconds=5)
        assert locks.try_claim(staging, "reviews", "ahead") is None
        with (
            pytest.raises(locks.LockTimeout, match="held by working"),
            locks.held(staging, "reviews", "ahead", timedelta(0), sleep=lambda _: None),
        ):
            pytest.fail("took a live lock")
    assert locks.current_holder(staging, "reviews")[0] == "working"


def test_a_holder_whose_clock_runs_behind_keeps_its_lock_and_loses_it_when_stale(staging):
    """The claim and every heartbeat are stamped by the database, so a holder whose clock
    runs three minutes behind does not look stale to a claimant with the right time; once
    its heartbeat really stops for STALE_AFTER, the lock frees, whatever the clocks say."""
    locks._ensure_row(staging, "reviews")
    with _in(-SKEW):
        token = locks.try_claim(staging, "reviews", "behind")
        locks.Fence(staging, "reviews", "behind", token).check_now()  # a heartbeat
    assert locks.try_claim(staging, "reviews", "on time") is None
    stale = locks.STALE_AFTER.total_seconds() + 1
    with staging.begin() as conn:
        conn.execute(update(sync_lock).values(heartbeat_at=database_epoch() - stale))
    with _in(-SKEW):  # even a claimant whose clock runs behind sees it stale
        assert locks.try_claim(staging, "reviews", "behind too") == token + 1


def test_lock_times_are_the_database_clock(staging):
    locks._ensure_row(staging, "reviews")
    with _in(SKEW):
        locks.try_claim(staging, "reviews", "ahead")
    state = locks.lock_state(staging, "reviews")
    assert abs(state.acquired_at - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < timedelta(
        seconds=5
    )
    assert 0 <= state.heartbeat_age < 5


# ----- fencing ---------------------------------------------------------------------------
def _take_over(engine, name: str, holder: str) -> None:
    """What a claimant does once the holder's heartbeat is stale: the lock and a new token."""
    with engine.begin() as conn:
        conn.execute(
            update(sync_lock)
            .where(sync_lock.c.name == name)
            .values(holder=holder, token=sync_lock.c.token + 1, heartbeat_at=database_epoch())
        )


class _NoDatabase:
    def execute(self, *args, **kwargs):
        pytest.fail("the fence asked the database again after its lock was known lost")


def test_a_fence_check_passes_while_the_token_is_current_and_renews_the_heartbeat(staging):
    locks._ensure_row(staging, "reviews")
    token = locks.try_claim(staging, "reviews", "run A")
    with staging.begin() as conn:
        conn.execute(update(sync_lock).values(heartbeat_at=database_epoch() - 60))
    fence = locks.Fence(staging, "reviews", "run A", token)
    with staging.begin() as conn:
        fence.check(conn)
    assert locks.lock_state(staging, "reviews").heartbeat_age < 5
    fence.check_now()
    assert fence.lost is None


def test_a_fence_whose_token_was_superseded_raises_and_the_write_is_rolled_back(staging):
    fenced_write.create(staging)
    locks._ensure_row(staging, "reviews")
    old = locks.Fence(staging, "reviews", "run A", locks.try_claim(staging, "reviews", "run A"))
    _take_over(staging, "reviews", "run B")
    with pytest.raises(locks.LockLost) as lost, staging.begin() as conn:
        conn.execute(insert(fenced_write).values(n=1, writer="run A"))
        old.check(conn)
        conn.execute(insert(fenced_write).values(n=2, writer="run A"))
    message = str(lost.value)
    assert "lost the reviews lock: run A held it with token 1" in message
    assert "run B holds it now (token 2" in message
    assert "stopped before writing" in message
    with staging.connect() as conn:
        assert conn.execute(select(func.count()).select_from(fenced_write)).scalar_one() == 0
    with pytest.raises(locks.LockLost):  # and from now on at once
        old.check(_NoDatabase())
    with pytest.raises(locks.LockLost):
        old.check_now()


def test_the_same_holder_claiming_again_ends_its_earlier_fence(staging):
    """A task try run twice under one label (two processes): only the newest claim writes."""
    locks._ensure_row(staging, "reviews")
    first = locks.Fence(
        staging, "reviews", "push try 1", locks.try_claim(staging, "reviews", "push try 1")
    )
    second = locks.Fence(
        staging, "reviews", "push try 1", locks.try_claim(staging, "reviews", "push try 1")
    )
    second.check_now()
    with pytest.raises(locks.LockLost, match="push try 1 holds it now \\(token 2"):
        first.check_now()


def test_a_heartbeat_that_finds_the_lock_lost_makes_the_next_check_raise(staging, monkeypatch):
    """The holder does not check for a while; its heartbeat finds another holder's token,
    records it, and the next check raises without asking the database; the block ends with
    LockLost, and leaving it frees nothing (the lock is the successor's)."""
    monkeypatch.setattr(locks, "HEARTBEAT", timedelta(milliseconds=50))
    with (
        pytest.raises(locks.LockLost, match="run B holds it now"),
        locks.held(staging, "reviews", "run A", timedelta(seconds=5)) as fence,
    ):
        assert fence.token == 1
        fence.check_now()
        _take_over(staging, "reviews", "run B")
        deadline = time.monotonic() + 30
        while fence.lost is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "run B holds it now (token 2" in fence.lost
        with pytest.raises(locks.LockLost, match="lost the reviews lock: run A"):
            fence.check(_NoDatabase())
    assert locks.current_holder(staging, "reviews")[0] == "run B"


def test_a_block_that_ends_after_losing_the_lock_ends_with_lock_lost(staging, monkeypatch):
    """Lost between two heartbeats and never checked again: leaving the block finds it."""
    monkeypatch.setattr(locks, "HEARTBEAT", timedelta(hours=1))
    with (
        pytest.raises(locks.LockLost, match="run B holds it now"),
        locks.held(staging, "reviews", "run A", timedelta(seconds=5)),
    ):
        _take_over(staging, "reviews", "run B")
    assert locks.current_holder(staging, "reviews")[0] == "run B"


def test_release_by_a_holder_that_lost_the_lock_frees_nothing(staging):
    """Whether the successor has another label or the same one (a try run twice), the
    earlier claim's release leaves the lock with the successor."""
    locks._ensure_row(staging, "reviews")
    first = locks.try_claim(staging, "reviews", "push try 1")
    _take_over(staging, "reviews", "run B")
    assert not locks.release(staging, "reviews", "push try 1", first)
    assert locks.current_holder(staging, "reviews")[0] == "run B"
    _take_over(staging, "reviews", "push try 1")
    assert not locks.release(staging, "reviews", "push try 1", first)
    assert locks.lock_state(staging, "reviews").holder == "push try 1"
    assert locks.lock_state(staging, "reviews").token == first + 2


def test_no_claimant_takes_the_lock_between_a_check_and_its_commit(staging, monkeypatch):
    """The check locks the lock row until the caller's transaction ends: a claimant that
    finds the heartbeat stale (as committed before the writer's check; and the writer's
    transaction takes longer than STALE_AFTER) waits for the row and gets the lock only
    after the writer committed, never between its check and its commit."""
    monkeypatch.setattr(locks, "STALE_AFTER", timedelta(milliseconds=200))
    fenced_write.create(staging)
    locks._ensure_row(staging, "reviews")
    fence = locks.Fence(staging, "reviews", "run A", locks.try_claim(staging, "reviews", "run A"))
    with staging.begin() as conn:  # its last heartbeat is stale as the writer starts
        conn.execute(update(sync_lock).values(heartbeat_at=database_epoch() - 60))
    claimed: list[tuple[int | None, int]] = []
    other = engine_for_url(staging.url)

    def claim() -> None:
        """Claim, then count the writer's committed rows: the claim waited for its commit."""
        token = locks.try_claim(other, "reviews", "run B")
        with other.connect() as conn:
            written = conn.execute(select(func.count()).select_from(fenced_write)).scalar_one()
        claimed.append((token, written))

    claimant = threading.Thread(target=claim)
    try:
        with staging.begin() as conn:
            fence.check(conn)
            claimant.start()
            time.sleep(0.6)  # longer than STALE_AFTER, inside the writer's transaction
            conn.execute(insert(fenced_write).values(n=1, writer="run A"))
            assert not claimed
        claimant.join(timeout=60)
    finally:
        other.dispose()
    ((token, written),) = claimed
    assert written == 1  # the writer's row was committed when the claimant got the lock
    with staging.connect() as conn:
        assert conn.execute(select(fenced_write.c.writer)).scalars().all() == ["run A"]
    assert token == fence.token + 1  # stale again by then: the claimant got it, after
    with pytest.raises(locks.LockLost):
        fence.check_now()


def test_a_tasks_lock_yields_its_fence_and_works_without_as(staging):
    """``RunContext.lock``: the holder is the run, task and try; the block gets the Fence;
    callers that only write ``with ctx.lock(name):`` keep working."""
    from picsweb_sync.run.runtime import RunContext

    ctx = RunContext(
        run_id="manual__1",
        run_type="manual",
        interval_start=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        interval_end=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        task_label="push_reviews",
        try_number=2,
        params={"lock_wait_minutes": 0},
    )
    ctx.__dict__["staging"] = staging  # the cached engine, without an Airflow connection
    with ctx.lock(locks.REVIEWS) as fence:
        assert isinstance(fence, locks.Fence)
        assert (fence.name, fence.holder, fence.token) == (
            locks.REVIEWS,
            "run manual__1, push_reviews try 2",
            1,
        )
        fence.check_now()
    with ctx.lock(locks.REVIEWS):
        assert locks.current_holder(staging, locks.REVIEWS)[0] == fence.holder
    assert locks.current_holder(staging, locks.REVIEWS)[0] is None


# ----- a paused holder, in processes of their own -----------------------------------------
PAUSED_STALE, PAUSED_HEARTBEAT = 1.5, 0.2


def _line(process: subprocess.Popen) -> str:
    return process.stdout.readline().strip()


def _lock_row_is_free(engine) -> bool:
    """No open transaction holds the lock row (the paused holder was stopped between two
    of its transactions): a claimant would not wait behind it."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '300ms'"))
            try:
                conn.execute(select(sync_lock.c.name).with_for_update())
            except OperationalError:
                return False
            finally:
                conn.rollback()
        return True
    if engine.dialect.name == "mssql":
        with engine.connect() as conn:
            conn.execute(text("SET LOCK_TIMEOUT 300"))
            try:
                conn.execute(text("SELECT name FROM sync_fenced_lock WITH (UPDLOCK, ROWLOCK)"))
            except DBAPIError:
                return False
            finally:
                conn.rollback()
                conn.execute(text("SET LOCK_TIMEOUT -1"))
        return True
    if engine.dialect.name == "sqlite":
        probe = sqlite3.connect(engine.url.database, timeout=0.3, isolation_level=None)
        try:
            probe.execute("BEGIN EXCLUSIVE")  # no other connection holds even a read lock
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
    return True


def _pause(process: subprocess.Popen, engine) -> None:
    """SIGSTOP ``process`` at a moment none of its transactions is open."""
    for _ in range(50):
        os.kill(process.pid, signal.SIGSTOP)
        if _lock_row_is_free(engine):
            return
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail("the holder kept a transaction open at every pause")


def test_a_paused_holder_loses_the_lock_and_writes_nothing_after_resuming(staging, monkeypatch):
    """A holder in its own process writes rows guarded by its fence, then is paused
    (SIGSTOP: a frozen VM) for longer than STALE_AFTER. This process claims the lock once
    the heartbeat is stale and writes. The holder resumes (SIGCONT) and is told to write
    again: its check raises LockLost, it writes nothing, and it does not free the lock."""
    monkeypatch.setattr(locks, "STALE_AFTER", timedelta(seconds=PAUSED_STALE))
    monkeypatch.setattr(locks, "POLL", timedelta(milliseconds=50))
    fenced_write.create(staging)
    url = staging.url.render_as_string(hide_password=False)
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.data.lock_holder", url, "reviews", "paused holder"]
        + [str(PAUSED_STALE), str(PAUSED_HEARTBEAT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )

    def tell(line: str) -> None:
        holder.stdin.write(f"{line}\n")
        holder.stdin.flush()

    try:
        assert _line(holder) == "holding 1"
        for n in (1, 2):
            tell(str(n))
            assert _line(holder) == f"wrote {n}"
        time.sleep(3 * PAUSED_HEARTBEAT)  # its heartbeat keeps the lock meanwhile
        assert locks.try_claim(staging, "reviews", "successor") is None
        _pause(holder, staging)
        with staging.connect() as conn:  # the paused holder's last heartbeat (database clock)
            last_beat = conn.execute(
                select(sync_lock.c.heartbeat_at).where(sync_lock.c.name == "reviews")
            ).scalar_one()
        with locks.held(staging, "reviews", "successor", timedelta(seconds=60)) as fence:
            with staging.connect() as conn:
                taken_at = conn.execute(
                    select(sync_lock.c.acquired_at).where(sync_lock.c.name == "reviews")
                ).scalar_one()
            assert fence.token == 2
            with staging.begin() as conn:
                fence.check(conn)
                conn.execute(insert(fenced_write).values(n=3, writer="successor"))
            os.kill(holder.pid, signal.SIGCONT)
            tell("4")
            out, _ = holder.communicate(timeout=60)
            assert holder.returncode == 3, out
            assert out.startswith("lost lost the reviews lock: paused holder held it with token 1")
            assert "successor holds it now (token 2" in out
            assert "stopped before writing" in out
            with staging.begin() as conn:  # still the successor's
                fence.check(conn)
                conn.execute(insert(fenced_write).values(n=5, writer="successor"))
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
            holder.wait()
    with staging.connect() as conn:
        rows = conn.execute(select(fenced_write).order_by(fenced_write.c.n)).all()
    assert [tuple(row) for row in rows] == [
        (1, "paused holder"),
        (2, "paused holder"),
        (3, "successor"),
        (5, "successor"),
    ]
    # Taken over only once the holder's heartbeat was stale, by the database's own clock.
    assert taken_at - last_beat >= PAUSED_STALE
    assert locks.current_holder(staging, "reviews")[0] is None  # the successor released it


# ----- a deployment with the old lock table ----------------------------------------------
def _previous_sync_lock() -> Table:
    """``sync_lock`` as the versions before the fencing token created it."""
    return Table(
        "sync_lock",
        MetaData(),
        Column("name", String(64), primary_key=True),
        Column("holder", Unicode(500)),
        Column("acquired_at", DateTime),
        Column("heartbeat_at", DateTime),
    )


def test_a_staging_database_with_the_old_sync_lock_table_works(empty_engine):
    """Versions before the token kept their locks in ``sync_lock`` (no token, times by each
    worker's clock). The fenced locks live in a table of their own, which the sync creates
    like its other tables: the old one is left as it was, and the preflight finds nothing
    to block on."""
    from picsweb_sync.preflight.findings import Level
    from picsweb_sync.preflight.own_tables import own_tables_checks

    old = _previous_sync_lock()
    old.create(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(insert(old).values(name="review_writes", holder="an old run"))
    ensure_project_tables(empty_engine)
    with locks.held(empty_engine, locks.REVIEWS, "new run", timedelta(0)) as fence:
        fence.check_now()
    columns = {c["name"] for c in inspect(empty_engine).get_columns("sync_lock")}
    assert columns == {"name", "holder", "acquired_at", "heartbeat_at"}
    with empty_engine.connect() as conn:
        assert conn.execute(select(old.c.holder)).scalars().all() == ["an old run"]
    checks = own_tables_checks(empty_engine, "the test's staging database")
    assert not [c for c in checks if c.level is Level.BLOCKING], checks


def test_during_an_upgrade_a_lock_held_by_the_previous_version_is_waited_for(empty_engine):
    """A task of the previous version still holds its lock in ``sync_lock`` (a heartbeat
    of a minute ago, by its own clock): a task of this version waits for it and names it;
    once that heartbeat is older than STALE_AFTER (or the row freed) it claims as usual."""
    old = _previous_sync_lock()
    old.create(empty_engine)
    ensure_project_tables(empty_engine)
    a_minute_ago = utcnow() - timedelta(minutes=1)
    with empty_engine.begin() as conn:
        conn.execute(
            insert(old).values(
                name=locks.REVIEWS,
                holder="run old__1, push_reviews try 1",
                acquired_at=a_minute_ago,
                heartbeat_at=a_minute_ago,
            )
        )
    assert locks.previous_version_holder(empty_engine, locks.REVIEWS) == (
        "run old__1, push_reviews try 1"
    )
    assert locks.previous_version_holder(empty_engine, locks.QUALIFICATIONS) is None
    with (
        pytest.raises(
            locks.LockTimeout,
            match="held by run old__1, push_reviews try 1 \\(the sync's previous version",
        ),
        locks.held(empty_engine, locks.REVIEWS, "new run", timedelta(0)),
    ):
        pytest.fail("wrote beside the previous version's holder")
    with empty_engine.begin() as conn:
        conn.execute(update(old).values(heartbeat_at=utcnow() - locks.STALE_AFTER - timedelta(1)))
    with locks.held(empty_engine, locks.REVIEWS, "new run", timedelta(0)) as fence:
        fence.check_now()


def test_without_the_previous_versions_table_nothing_is_read_there(staging):
    assert locks.previous_version_holder(staging, locks.REVIEWS) is None


# ----- SQL Server ------------------------------------------------------------------------
def test_every_lock_statement_compiles_as_tsql(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(locks, "HEARTBEAT", timedelta(milliseconds=20))
    engine = engine_for_url(f"sqlite:///{tmp_path / 'locks.sqlite'}")
    ensure_project_tables(engine)
    captured: list[ClauseElement] = []

    @event.listens_for(engine, "before_execute")
    def capture(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, ClauseElement):
            captured.append(clauseelement)

    Table(  # the previous version's table, read while it exists
        "sync_lock",
        MetaData(),
        Column("name", String(64), primary_key=True),
        Column("holder", Unicode(500)),
        Column("heartbeat_at", DateTime),
    ).create(engine)
    with locks.held(engine, "reviews", "run A", timedelta(0)) as fence:
        with engine.begin() as conn:
            fence.check(conn)
        fence.check_now()
        time.sleep(0.1)  # a few heartbeats
        locks.current_holder(engine, "reviews")
    _take_over(engine, "reviews", "run B")
    with pytest.raises(locks.LockLost):
        fence.check_now()
    engine.dispose()

    kinds = {type(stmt).__name__ for stmt in captured}
    assert {"Insert", "Update", "Select"} <= kinds
    texts = [" ".join(tsql(stmt).split()) for stmt in captured]
    for sql in texts:
        assert not [token for token in NOT_TSQL if token in sql.upper()], sql
    clock = "DATEDIFF_BIG(MICROSECOND, '19700101', SYSUTCDATETIME())"
    claims = [sql for sql in texts if "token + 1" in sql.lower() or "token+1" in sql.lower()]
    assert claims and all(clock in sql for sql in claims)
    assert any(sql.startswith("UPDATE sync_fenced_lock SET heartbeat_at") for sql in texts)
    assert any("FROM sync_lock WHERE" in sql for sql in texts)


def test_the_lock_table_compiles_for_sql_server() -> None:
    sql = " ".join(str(CreateTable(sync_lock).compile(dialect=DIALECT)).split())
    assert "CREATE TABLE sync_fenced_lock" in sql
    assert "token BIGINT NOT NULL" in sql
    assert "heartbeat_at FLOAT(53)" in sql
