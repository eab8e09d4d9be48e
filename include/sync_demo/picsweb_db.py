"""A stand-in PICSWeb database for the demo and the tests: the contract's tables, created and
filled.

The project never creates PICSWeb tables in production, so none of this is in
``picsweb_sync``: a deployment of the sync meets the customer's own PICSWeb. Rows come from
the generator's ``Dataset.picsweb`` or from a test (table name -> row dicts with the
contract's column names); nothing here imports the simulator, so a data-layer test or a
benchmark builds its PICSWeb without it. ``python -m sync_demo --picsweb-url URL`` puts the
demo in a database of the user's choosing: :func:`rows_held` tells whether that database
already holds data, and :func:`clear_demo_tables` empties it when the user asks to replace it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sqlalchemy import delete, func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from picsweb_sync.storage.picsweb_tables import metadata, review
from picsweb_sync.storage.project_tables import project_metadata
from picsweb_sync.storage.sqlframes import to_records


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


def rows_held(engine: Engine) -> dict[str, int]:
    """Rows already in each PICSWeb or ``sync_*`` table of the database (empty or missing
    tables left out): an empty answer means the demo may load there."""
    with engine.connect() as conn:
        existing = set(inspect(conn).get_table_names())
        held = {}
        for table in (*metadata.sorted_tables, *project_metadata.sorted_tables):
            if table.name in existing:
                count = conn.execute(select(func.count()).select_from(table)).scalar_one()
                if count:
                    held[table.name] = count
    return held


def clear_demo_tables(engine: Engine) -> None:
    """Delete every row of the PICSWeb tables and drop the sync's own ``sync_*`` tables (an
    earlier demo's runs, outbox and audit, which the sync recreates), in one transaction.

    Only for a demo database: on a real PICSWeb this deletes its data.
    """
    with engine.begin() as conn:
        project_metadata.drop_all(conn, checkfirst=True)
        existing = set(inspect(conn).get_table_names())
        for table in reversed(metadata.sorted_tables):
            if table.name in existing:
                conn.execute(delete(table))


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
