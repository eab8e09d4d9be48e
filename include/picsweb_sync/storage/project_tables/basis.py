"""What each write is based on, stored with the data it justifies (``picsweb_sync.run.freshness``).

Two tables, one per side of a write:

- ``sync_change_basis`` (staging, beside the change sets): for each run and merge, the
  OneFile data its change set was computed from: when the oldest staged row it read was
  extracted, and for reviews the review window. Written in the same transaction as the
  change set, read with it by the load, purged with the run. A change set whose basis is
  gone is never applied.
- ``sync_row_basis`` (PICSWeb database, committed with PICSWeb's own changes): for each
  PICSWeb row the sync has written, the extraction time of the OneFile data that write
  came from. A later write of *older* OneFile data over the same row is refused, whatever
  run, task or clear it comes from. Not per run: never purged.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import BigInteger, Column, String, Table, delete, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import (
    INSTANT,
    partitioned,
    project_metadata,
    utcnow,
)
from picsweb_sync.storage.sqlframes import bulk_insert, id_chunks, select_in_chunks

sync_change_basis = partitioned(
    "sync_change_basis",
    Column("merge_name", String(30), nullable=False),
    Column("extracted_at", INSTANT, nullable=False),
    Column("window_from", INSTANT),
    Column("window_to", INSTANT),
    # How many staged OneFile rows the merge read: none, and ``extracted_at`` is the merge's
    # own time (the change set then holds no OneFile data, and its load leaves no mark).
    Column("staged_rows", BigInteger, nullable=False),
    by=("run_id", "merge_name"),
)

sync_row_basis = Table(
    "sync_row_basis",
    project_metadata,
    Column("table_name", String(64), primary_key=True),
    Column("entity_key", BigInteger, primary_key=True, autoincrement=False),
    Column("basis_at", INSTANT, nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("written_at", INSTANT, nullable=False, default=utcnow),
)


def newer_row_bases(
    conn: Connection, tables: pd.Series, keys: pd.Series, basis: pd.Series
) -> pd.DataFrame:
    """For each write (PICSWeb ``tables`` and ``keys``, the OneFile ``basis`` it comes
    from, aligned), the row's recorded basis where it is *newer* than the write's:
    ``newer_at`` and ``newer_run`` (NA where the write is not stale). A query per table and
    ``MAX_IN_LIST`` keys."""
    newer_at = pd.Series(pd.NaT, index=keys.index, dtype="datetime64[us]")
    newer_run = pd.Series(pd.NA, index=keys.index, dtype="string")
    c = sync_row_basis.c
    for table_name, group in keys.groupby(tables.to_numpy(), sort=False):
        found = select_in_chunks(
            conn,
            lambda chunk, table_name=table_name: select(c.entity_key, c.basis_at, c.run_id).where(
                c.table_name == table_name, c.entity_key.in_(chunk)
            ),
            group,
        )
        if found.empty:
            continue
        known = found.set_index(found["entity_key"].astype("int64"))
        ids = group.astype("int64")
        at = known["basis_at"].reindex(ids).to_numpy()
        run = known["run_id"].reindex(ids).to_numpy()
        write_basis = pd.to_datetime(basis.loc[group.index]).to_numpy()
        stale = pd.notna(at) & (at > write_basis)
        newer_at.loc[group.index[stale]] = at[stale]
        newer_run.loc[group.index[stale]] = run[stale]
    return pd.DataFrame({"newer_at": newer_at, "newer_run": newer_run})


def record_row_bases(conn: Connection, run_id: str, written: pd.DataFrame) -> None:
    """Remember that each PICSWeb row of ``written`` (``table_name``, ``entity_key``,
    ``basis_at``) now holds OneFile data of that basis (the newest, where a row was written
    twice). Only a row's older basis is replaced: a newer one that another writer committed
    meanwhile survives the delete and makes the insert fail on the primary key, so the
    caller's transaction rolls back rather than write over it."""
    if written.empty:
        return
    rows = (
        written.sort_values("basis_at")
        .drop_duplicates(["table_name", "entity_key"], keep="last")
        .reset_index(drop=True)
    )
    c = sync_row_basis.c
    for (table_name, at), group in rows.groupby(["table_name", "basis_at"], sort=False):
        for chunk in id_chunks(group["entity_key"]):
            conn.execute(
                delete(sync_row_basis).where(
                    c.table_name == table_name, c.entity_key.in_(chunk), c.basis_at <= at
                )
            )
    bulk_insert(conn, sync_row_basis, rows.assign(run_id=run_id, written_at=utcnow()))
