"""Create and fill the PICSWeb tables for the demo and the tests.

The project never creates PICSWeb tables in production; this stands in for a PICSWeb
database, filled from the generator's ``Dataset.picsweb`` (table name -> row dicts with the
contract's column names).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Engine

from picsweb_sync.picsweb_tables import metadata, review
from picsweb_sync.sqlframes import to_records


def create_picsweb_tables(engine: Engine) -> None:
    """Create the contract's tables in an empty database (idempotent)."""
    metadata.create_all(engine)


def load_picsweb_rows(engine: Engine, rows: Mapping[str, list[dict]]) -> dict[str, int]:
    """Bulk insert ``rows`` in foreign-key order, in one transaction; returns rows per table."""
    unknown = set(rows) - set(metadata.tables)
    if unknown:
        raise ValueError(f"not PICSWeb tables: {sorted(unknown)}")
    loaded: dict[str, int] = {}
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            records = to_records(pd.DataFrame(rows.get(table.name, [])), table)
            if records:
                conn.execute(insert(table), records)
            loaded[table.name] = len(records)
        _advance_review_identity(conn)
    return loaded


def _advance_review_identity(conn: Connection) -> None:
    """Let generated ``review_id`` values continue after the loaded ones.

    PostgreSQL's identity does not see explicitly inserted keys (SQLite's rowid does).
    """
    if conn.dialect.name != "postgresql":
        return
    next_id = conn.execute(select(func.coalesce(func.max(review.c.review_id), 0) + 1)).scalar_one()
    conn.execute(
        text("SELECT setval(pg_get_serial_sequence('review', 'review_id'), :next, false)"),
        {"next": next_id},
    )
