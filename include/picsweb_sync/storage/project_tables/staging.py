"""Staging: the parsed OneFile frames (docs/architecture.md), one table per entity,
partitioned by run and organisation so a retried extract replaces exactly its own rows."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import BigInteger, Column, Date, Integer, Table, UnicodeText, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import INSTANT, TEXT, partitioned
from picsweb_sync.storage.sqlframes import read_frame, replace_partition


def _staging(entity: str, *columns: Column) -> Table:
    return partitioned(
        f"sync_stage_{entity}",
        Column("organisation_id", BigInteger, nullable=False),
        *columns,
        Column("raw", UnicodeText),
        by=("run_id", "organisation_id"),
    )


STAGING: dict[str, Table] = {
    "learners": _staging(
        "learner",
        Column("learner_id", BigInteger, nullable=False),
        Column("first_name", TEXT),
        Column("last_name", TEXT),
        Column("email", TEXT),
        Column("mis_id", TEXT),
        Column("uln", TEXT),
        Column("default_assessor_id", BigInteger),
        Column("last_modified", INSTANT),
    ),
    "assessors": _staging(
        "assessor",
        Column("assessor_id", BigInteger, nullable=False),
        Column("first_name", TEXT),
        Column("last_name", TEXT),
        Column("email", TEXT),
        Column("role", Integer),
    ),
    "learning_aims": _staging(
        "learning_aim",
        Column("learning_aim_id", BigInteger, nullable=False),
        Column("learner_id", BigInteger),
        Column("code", TEXT),
        Column("title", TEXT),
        Column("total_elements", Integer),
        Column("elements_done", Integer),
        Column("registration_number", TEXT),
        Column("registration_date", Date),
        Column("certificate_applied_date", Date),
        Column("certificate_received_date", Date),
    ),
    "reviews": _staging(
        "review",
        Column("review_id", BigInteger, nullable=False),
        Column("learner_id", BigInteger),
        Column("assessor_id", BigInteger),
        Column("scheduled_for", INSTANT),
        Column("status", Integer),
        Column("started_on", INSTANT),
        Column("learner_signed_on", INSTANT),
        Column("end_time", INSTANT),
        Column("visit_id", BigInteger),
    ),
}


def replace_staging(
    conn: Connection, run_id: str, entity: str, organisation_id: int, frame: pd.DataFrame
) -> int:
    """Replace this run's staged ``entity`` rows of one organisation (a retried extract)."""
    partition = {"run_id": run_id, "organisation_id": organisation_id}
    return replace_partition(conn, STAGING[entity], partition, frame)


def read_staging(
    conn: Connection,
    run_id: str,
    entity: str,
    organisation_id: int | None = None,
    *,
    with_raw: bool = True,
) -> pd.DataFrame:
    """This run's staged ``entity`` frame (all organisations unless one is named).

    ``with_raw=False`` leaves out ``raw``, the JSON each row came as: the merges and the
    pushes never read it, and at provider scale it is most of the bytes (50,000 reviews).
    """
    table = STAGING[entity]
    skipped = ("run_id", "created_at") if with_raw else ("run_id", "created_at", "raw")
    stmt = select(*(c for c in table.c if c.name not in skipped))
    stmt = stmt.where(table.c.run_id == run_id)
    if organisation_id is not None:
        stmt = stmt.where(table.c.organisation_id == organisation_id)
    return read_frame(conn, stmt)
