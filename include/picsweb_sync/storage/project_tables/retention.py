"""Retention: per-run rows (staging, change sets and their basis, work tables, outbox,
rejects) are deleted after a retention period, a whole run at a time, since staging and
rejects hold learners' personal data; audit and run records are kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Delete

# The modules defining per-run tables, so each is registered before PURGED_TABLES is read.
from picsweb_sync.storage.project_tables import (  # noqa: F401
    basis,
    change_sets,
    drift,
    picsweb_work,
    rejects,
    staging,
)
from picsweb_sync.storage.project_tables.common import project_metadata, stamp
from picsweb_sync.storage.project_tables.outbox import sync_outbox, unknown_outcome
from picsweb_sync.storage.sqlframes import MAX_IN_LIST

PURGED_TABLES: tuple[Table, ...] = tuple(
    table for table in project_metadata.sorted_tables if "created_at" in table.c
)


def purge(
    conn: Connection,
    older_than_days: int,
    now: dt.datetime | None = None,
    tables: tuple[Table, ...] = PURGED_TABLES,
) -> dict[str, int]:
    """Delete every per-run row (staging, change sets and their basis, work tables,
    outbox, rejects) of each run whose newest such row was created more than
    ``older_than_days`` days before ``now``; audit and run records are kept.

    Staging and rejects hold learners' personal data, so they are not kept for ever. A run
    is purged whole, never partially: a change set whose staged rows and basis were
    deleted row by row (each by its own ``created_at``) could outlive them, and a cleared
    load of it would then find nothing to judge it by. Returns rows deleted per table.
    """
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1: the current run needs its data")
    cutoff = stamp(now) - dt.timedelta(days=older_than_days)
    purged = tuple(table for table in tables if table in PURGED_TABLES)
    runs = runs_to_purge(conn, cutoff, purged)
    deleted = dict.fromkeys((table.name for table in purged), 0)
    for start in range(0, len(runs), MAX_IN_LIST):
        chunk = runs[start : start + MAX_IN_LIST]
        for table in purged:
            deleted[table.name] += conn.execute(purge_statement(table, chunk)).rowcount
    return deleted


def runs_to_purge(
    conn: Connection, cutoff: dt.datetime, tables: tuple[Table, ...] = PURGED_TABLES
) -> list[str]:
    """The runs whose newest row in any of ``tables`` was created before ``cutoff``."""
    newest: dict[str, dt.datetime] = {}
    for table in tables:
        stmt = select(table.c.run_id, func.max(table.c.created_at)).group_by(table.c.run_id)
        for run_id, created in conn.execute(stmt):
            if run_id not in newest or created > newest[run_id]:
                newest[run_id] = created
    return sorted(run_id for run_id, created in newest.items() if created < cutoff)


def purge_statement(table: Table, run_ids: list[str]) -> Delete:
    """Delete the rows of ``table`` that belong to ``run_ids``; never an outbox row whose
    outcome is still unknown (a review OneFile may hold that PICSWeb does not know yet)."""
    stmt = delete(table).where(table.c.run_id.in_(run_ids))
    if table is sync_outbox:
        stmt = stmt.where(~unknown_outcome())
    return stmt
