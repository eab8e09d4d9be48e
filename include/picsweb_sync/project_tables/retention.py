"""Retention: per-run rows (staging, change sets, work tables, outbox, rejects) are deleted
after a retention period, since staging and rejects hold learners' personal data; audit and
run records are kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, delete
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Delete

# The modules defining per-run tables, so each is registered before PURGED_TABLES is read.
from picsweb_sync.project_tables import change_sets, picsweb_work, rejects, staging  # noqa: F401
from picsweb_sync.project_tables.common import project_metadata, stamp
from picsweb_sync.project_tables.outbox import sync_outbox, unknown_outcome

PURGED_TABLES: tuple[Table, ...] = tuple(
    table for table in project_metadata.sorted_tables if "created_at" in table.c
)


def purge(
    conn: Connection,
    older_than_days: int,
    now: dt.datetime | None = None,
    tables: tuple[Table, ...] = PURGED_TABLES,
) -> dict[str, int]:
    """Delete per-run rows (staging, change sets, work tables, outbox, rejects) created more
    than ``older_than_days`` days before ``now``; audit and run records are kept.

    Staging and rejects hold learners' personal data, so they are not kept for ever.
    Returns rows deleted per table.
    """
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1: the current run needs its data")
    cutoff = stamp(now) - dt.timedelta(days=older_than_days)
    return {
        table.name: conn.execute(purge_statement(table, cutoff)).rowcount
        for table in tables
        if table in PURGED_TABLES
    }


def purge_statement(table: Table, cutoff: dt.datetime) -> Delete:
    """Delete the rows of ``table`` created before ``cutoff``; never an outbox row whose
    outcome is still unknown (a review OneFile may hold that PICSWeb does not know yet)."""
    stmt = delete(table).where(table.c.created_at < cutoff)
    if table is sync_outbox:
        stmt = stmt.where(~unknown_outcome())
    return stmt
