"""The run record: each run's start, end, outcome and failure (``sync_run``), its summary
for the sync page, the note and the alerts (``sync_run_summary``), its counts per stage
(``sync_run_count``) and the error of each failed task try (``sync_task_error``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    UnicodeText,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from picsweb_sync.project_tables.common import INSTANT, project_metadata, run_id_column, stamp
from picsweb_sync.sqlframes import read_frame, replace_partition

sync_run = Table(
    "sync_run",
    project_metadata,
    Column("run_id", String(250), primary_key=True),
    Column("started_at", INSTANT, nullable=False),
    Column("ended_at", INSTANT),
    Column("outcome", String(20), nullable=False),
    # Why a failed run failed: each failed task and its error (no secrets), by record_failure.
    Column("failure", UnicodeText),
    Index(None, "started_at"),  # the run history, newest first, a page at a time
)
# What each run was and what it did, for the sync page, the run's note in the Airflow UI
# and the alerts (``picsweb_sync.summary``). One row per run: written by ``start_run``
# (type, dry run, interval), completed by ``finish_run`` / ``record_failure``.
sync_run_summary = Table(
    "sync_run_summary",
    project_metadata,
    Column("run_id", String(250), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    # scheduled, manual, backfill, asset_triggered, operator_triggered (DagRunType values)
    Column("run_type", String(30), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("interval_start", INSTANT),
    Column("interval_end", INSTANT),
    # When the run first ended: its original duration survives a later rerun of a task.
    Column("first_ended_at", INSTANT),
    # JSON object of counts (``picsweb_sync.summary.SUMMARY_KEYS`` and breakdowns).
    Column("summary", UnicodeText),
    # The thresholds the run crossed, as text naming each threshold and the numbers.
    Column("thresholds_crossed", UnicodeText),
    Column("updated_at", INSTANT, nullable=False),
)
# The error of each failed task try, written by the task itself as it fails
# (``runtime.run_stage``), so ``record_failure`` can say why without reading task logs.
sync_task_error = Table(
    "sync_task_error",
    project_metadata,
    run_id_column(),
    Column("task", String(250), nullable=False),
    Column("try_number", Integer),
    Column("error", UnicodeText, nullable=False),
    Column("failed_at", INSTANT, nullable=False),
    Index(None, "run_id"),
)
# Counts live in their own rows: parallel (mapped) tasks of one run write them at once.
sync_run_count = Table(
    "sync_run_count",
    project_metadata,
    run_id_column(),
    Column("stage", String(100), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", BigInteger, nullable=False),
    Index(None, "run_id", "stage"),
)


def start_run(conn: Connection, run_id: str, now: dt.datetime | None = None) -> None:
    """Mark the run as running; a retry keeps the first start time."""
    reopened = conn.execute(
        update(sync_run).where(sync_run.c.run_id == run_id).values(outcome="running", ended_at=None)
    )
    if reopened.rowcount == 0:
        conn.execute(
            insert(sync_run).values(run_id=run_id, started_at=stamp(now), outcome="running")
        )


def record_counts(conn: Connection, run_id: str, stage: str, counts: Mapping[str, int]) -> None:
    """Replace one stage's counts for the run (e.g. ``extract[123]``: learners=40, ...)."""
    frame = pd.DataFrame({"name": list(counts), "value": list(counts.values())})
    replace_partition(conn, sync_run_count, {"run_id": run_id, "stage": stage}, frame)


def run_counts(conn: Connection, run_id: str) -> dict[str, dict[str, int]]:
    """The run's counts, stage -> name -> value."""
    rows = conn.execute(
        select(sync_run_count.c.stage, sync_run_count.c.name, sync_run_count.c.value)
        .where(sync_run_count.c.run_id == run_id)
        .order_by(sync_run_count.c.stage, sync_run_count.c.name)
    )
    counts: dict[str, dict[str, int]] = {}
    for stage, name, value in rows:
        counts.setdefault(stage, {})[name] = value
    return counts


def finish_run(
    conn: Connection,
    run_id: str,
    outcome: str,
    now: dt.datetime | None = None,
    failure: str | None = None,
) -> None:
    """Close the run record with its outcome (and, for a failed run, why).

    The run's counts stay in ``sync_run_count`` only, the one place every task (and every
    rerun of a task) writes them: :func:`run_counts` reads them.
    """
    done = conn.execute(
        update(sync_run)
        .where(sync_run.c.run_id == run_id)
        .values(ended_at=stamp(now), outcome=outcome, failure=failure)
    )
    if done.rowcount != 1:
        raise LookupError(f"run {run_id!r} was never started")


def record_task_error(
    conn: Connection,
    run_id: str,
    task: str,
    try_number: int | None,
    error: str,
    now: dt.datetime | None = None,
) -> None:
    """Keep one failed task try's error (already free of secrets) for the run record."""
    conn.execute(
        insert(sync_task_error).values(
            run_id=run_id, task=task, try_number=try_number, error=error, failed_at=stamp(now)
        )
    )


def task_errors(conn: Connection, run_id: str) -> pd.DataFrame:
    """The run's task errors, the last try of each task first."""
    columns = [c for c in sync_task_error.c if c.name != "run_id"]
    stmt = select(*columns).where(sync_task_error.c.run_id == run_id)
    return read_frame(conn, stmt.order_by(sync_task_error.c.failed_at.desc()))
