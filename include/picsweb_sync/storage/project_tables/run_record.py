"""The run record: each run's start, end, outcome and failure (``sync_run``), its summary
for the sync page, the note and the alerts (``sync_run_summary``), its counts per stage
(``sync_run_count``: the latest try; ``sync_run_try_count``: every try), the error of each
failed task try (``sync_task_error``) and each load that refused (``sync_load_refusal``).

The last two tables came with a later version: like every ``sync_*`` table they are
created when missing (``ensure_project_tables``), so no existing table is ever altered; a
run recorded before them has its counts in ``sync_run_count`` only, read as its one try."""

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
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import (
    INSTANT,
    project_metadata,
    run_id_column,
    stamp,
    utcnow,
)
from picsweb_sync.storage.sqlframes import read_frame, replace_partition

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
# and the alerts (``picsweb_sync.run.summary``). One row per run: written by ``start_run``
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
    # JSON object of counts (``picsweb_sync.run.summary.SUMMARY_KEYS`` and breakdowns).
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
# Every try's counts, kept: ``sync_run_count`` holds a stage's latest try only (a cleared
# task's rerun replaces it), so without these a run whose load created a review and was
# then rerun (creating nothing more) would say it created none. ``attempt`` is the n-th
# time the stage recorded its counts in this run (a try that failed before recording any
# has none). Run records: kept by the retention purge, like ``sync_run_count``.
sync_run_try_count = Table(
    "sync_run_try_count",
    project_metadata,
    run_id_column(),
    Column("stage", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("recorded_at", INSTANT, nullable=False),
    Index(None, "run_id", "stage"),
)
# Each load that refused and changed nothing (``picsweb_sync.stages.load``): the task is skipped
# and its log says why, but a skipped task's log is folded away in the UI, so the reason,
# and the newer run the load deferred to, are kept here for the run's page.
sync_load_refusal = Table(
    "sync_load_refusal",
    project_metadata,
    run_id_column(),
    Column("stage", String(100), nullable=False),  # the task: load_reviews, ...
    Column("try_number", Integer),  # Airflow's try of the task that refused
    # stale: another run already loaded newer OneFile data; no_basis: nothing to judge by
    Column("kind", String(20), nullable=False),
    Column("newer_run_id", String(250)),  # the run whose newer load this one deferred to
    Column("newer_extracted_at", INSTANT),  # when that run's OneFile data was extracted
    Column("extracted_at", INSTANT),  # when this run's change set's data was extracted
    Column("reason", UnicodeText, nullable=False),  # the task log's last line, as logged
    Column("refused_at", INSTANT, nullable=False),
    Index(None, "run_id"),
)
REFUSAL_KINDS = ("stale", "no_basis")


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
    """Replace one stage's counts for the run (e.g. ``extract[123]``: learners=40, ...),
    and keep them as that stage's next try (``sync_run_try_count``), in the same
    transaction: the latest try and the list of tries never disagree."""
    frame = pd.DataFrame({"name": list(counts), "value": list(counts.values())})
    replace_partition(conn, sync_run_count, {"run_id": run_id, "stage": stage}, frame)
    t = sync_run_try_count.c
    last = conn.execute(
        select(func.max(t.attempt)).where(t.run_id == run_id, t.stage == stage)
    ).scalar()
    if counts:
        attempt, now = int(last or 0) + 1, utcnow()
        conn.execute(
            insert(sync_run_try_count),
            [
                {
                    "run_id": run_id,
                    "stage": stage,
                    "attempt": attempt,
                    "name": name,
                    "value": int(value),
                    "recorded_at": now,
                }
                for name, value in counts.items()
            ],
        )


def count_tries(conn: Connection, run_id: str) -> dict[str, list[dict[str, int]]]:
    """The counts of every try of each stage of the run, oldest try first: stage ->
    [counts of try 1, counts of try 2, ...]. A stage recorded before tries were kept
    (only in ``sync_run_count``) has its one known try."""
    t = sync_run_try_count.c
    rows = conn.execute(
        select(t.stage, t.attempt, t.name, t.value)
        .where(t.run_id == run_id)
        .order_by(t.stage, t.attempt, t.name)
    )
    tries: dict[str, dict[int, dict[str, int]]] = {}
    for stage, attempt, name, value in rows:
        tries.setdefault(stage, {}).setdefault(attempt, {})[name] = int(value)
    found = {stage: [by[a] for a in sorted(by)] for stage, by in tries.items()}
    for stage, latest in run_counts(conn, run_id).items():
        if stage not in found:
            found[stage] = [{name: int(value) for name, value in latest.items()}]
    return found


def record_refusal(
    conn: Connection,
    run_id: str,
    stage: str,
    kind: str,
    reason: str,
    *,
    try_number: int | None = None,
    newer_run_id: str | None = None,
    newer_extracted_at: dt.datetime | None = None,
    extracted_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Keep a load's refusal (``kind``: one of :data:`REFUSAL_KINDS`) for the run's page."""
    if kind not in REFUSAL_KINDS:
        raise ValueError(f"unknown refusal kind {kind!r}; expected one of {REFUSAL_KINDS}")
    conn.execute(
        insert(sync_load_refusal).values(
            run_id=run_id,
            stage=stage,
            try_number=try_number,
            kind=kind,
            newer_run_id=newer_run_id,
            newer_extracted_at=newer_extracted_at,
            extracted_at=extracted_at,
            reason=reason,
            refused_at=stamp(now),
        )
    )


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
