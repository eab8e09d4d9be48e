"""New PICSWeb reviews and their OneFile links, each written exactly once.

:func:`insert_reviews` inserts a run's new reviews through a work table in the PICSWeb
database, skipping any whose OneFile review is already there, so a retry inserts nothing
twice; :func:`link_review` / :func:`link_reviews` record the OneFile Review ID of an
uploaded review only where none is set, so a retry never overwrites a link. Every write is
audited in the caller's transaction. :func:`reviews_already_linked` and
:func:`reviews_with_onefile_ids` are the bounded reads the push needs around them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, case, exists, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, Update

from picsweb_sync.storage import picsweb_tables
from picsweb_sync.storage.project_tables import ensure_project_tables
from picsweb_sync.storage.project_tables.audit_log import audit
from picsweb_sync.storage.project_tables.basis import record_row_bases
from picsweb_sync.storage.project_tables.common import stamp
from picsweb_sync.storage.project_tables.picsweb_work import (
    PICSWEB_SIDE_TABLES,
    sync_review_insert_work,
)
from picsweb_sync.storage.sqlframes import read_frame, replace_partition, select_in_chunks

__all__ = [
    "insert_new_statement",
    "insert_reviews",
    "link_review",
    "link_reviews",
    "mark_existing_statement",
    "reviews_already_linked",
    "reviews_with_onefile_ids",
]


def mark_existing_statement(run_id: str) -> Update:
    """Flag the run's review inserts whose OneFile review is already in PICSWeb."""
    work = sync_review_insert_work.c
    review = picsweb_tables.review.c
    already = exists().where(review.onefile_system_id == work.onefile_system_id)
    return (
        update(sync_review_insert_work)
        .where(work.run_id == run_id)
        .values(existed=case((already, True), else_=False))
    )


def insert_new_statement(run_id: str) -> Insert:
    """``INSERT INTO review ... SELECT`` of the run's reviews not yet in PICSWeb."""
    work = sync_review_insert_work.c
    names = [c.name for c in picsweb_tables.review.c if c.name != "review_id"]
    source = select(*(work[name] for name in names)).where(work.run_id == run_id, ~work.existed)
    return insert(picsweb_tables.review).from_select(names, source)


def insert_reviews(
    conn: Connection,
    run_id: str,
    inserts: pd.DataFrame,
    now: dt.datetime | None = None,
    *,
    basis_at: dt.datetime | None = None,
) -> pd.DataFrame:
    """Insert ``picsweb_review_inserts`` rows, skipping any whose ``onefile_system_id`` is
    already in PICSWeb, so a retry inserts nothing twice.

    Returns ``onefile_system_id``, ``review_id`` (the generated key) and ``inserted`` for
    every input row. The keys are read back by ``onefile_system_id`` (unique) rather than
    with ``RETURNING``/``OUTPUT``, which SQL Server refuses on tables with triggers.
    Each inserted review's non-null fields are audited, and with ``basis_at`` (when the
    OneFile reviews were extracted) each inserted row records it (``project_tables.basis``).
    """
    ids = inserts["onefile_system_id"]
    if ids.isna().any() or ids.duplicated().any():
        raise ValueError("every review insert needs a distinct onefile_system_id")
    ensure_project_tables(conn, PICSWEB_SIDE_TABLES)
    replace_partition(conn, sync_review_insert_work, {"run_id": run_id}, inserts)
    conn.execute(mark_existing_statement(run_id))
    conn.execute(insert_new_statement(run_id))
    work = sync_review_insert_work.c
    review = picsweb_tables.review.c
    keys = read_frame(
        conn,
        select(work.onefile_system_id, review.review_id, work.existed)
        .join_from(
            sync_review_insert_work,
            picsweb_tables.review,
            review.onefile_system_id == work.onefile_system_id,
        )
        .where(work.run_id == run_id)
        .order_by(work.onefile_system_id),
    )
    keys = keys.assign(inserted=~keys.pop("existed"))
    new = inserts.merge(keys[keys["inserted"]][["onefile_system_id", "review_id"]])
    fields = new.melt(id_vars="review_id", var_name="field", value_name="new")
    fields = fields[fields["new"].notna()]
    audit(
        conn,
        run_id,
        pd.DataFrame(
            {
                "system": "picsweb",
                "entity": "review",
                "entity_key": fields["review_id"],
                "field": fields["field"],
                "old": None,
                "new": fields["new"],
            }
        ),
        now,
    )
    if basis_at is not None:
        record_row_bases(
            conn,
            run_id,
            pd.DataFrame(
                {
                    "table_name": picsweb_tables.review.name,
                    "entity_key": new["review_id"].drop_duplicates(),
                    "basis_at": stamp(basis_at),
                }
            ),
        )
    return keys


def link_review(conn: Connection, run_id: str, review_id: int, onefile_id: int) -> bool:
    """Record the OneFile Review ID of an uploaded PICSWeb review, audited.

    Only a review with no ID yet is written, so a retry never overwrites a link; returns
    whether this call wrote it.
    """
    review = picsweb_tables.review
    written = conn.execute(
        update(review)
        .where(review.c.review_id == review_id, review.c.onefile_system_id.is_(None))
        .values(onefile_system_id=onefile_id)
    ).rowcount
    if written:
        change = {"system": "picsweb", "entity": "review", "entity_key": review_id}
        row = {**change, "field": "onefile_system_id", "old": None, "new": onefile_id}
        audit(conn, run_id, pd.DataFrame([row]))
    return bool(written)


def link_reviews(
    conn: Connection, run_id: str, links: pd.DataFrame, now: dt.datetime | None = None
) -> list[bool]:
    """:func:`link_review` for many uploaded reviews (``review_id``, ``onefile_id``) in
    the caller's transaction, audited in one insert: whether each link was written."""
    review = picsweb_tables.review
    guarded = (
        update(review)
        .where(review.c.review_id == bindparam("b_review"), review.c.onefile_system_id.is_(None))
        .values(onefile_system_id=bindparam("b_onefile"))
    )
    written = [
        bool(conn.execute(guarded, {"b_review": int(r), "b_onefile": int(o)}).rowcount)
        for r, o in zip(links["review_id"], links["onefile_id"], strict=True)
    ]
    made = links[written]
    audit(
        conn,
        run_id,
        pd.DataFrame(
            {
                "system": "picsweb",
                "entity": "review",
                "entity_key": made["review_id"],
                "field": "onefile_system_id",
                "old": None,
                "new": made["onefile_id"],
            }
        ),
        now,
    )
    return written


def reviews_already_linked(conn: Connection, review_ids: Iterable[Any]) -> set[int]:
    """Which of these PICSWeb reviews already hold a OneFile Review ID (a query per
    ``sqlframes.MAX_IN_LIST`` IDs)."""
    review = picsweb_tables.review
    found = select_in_chunks(
        conn,
        lambda chunk: select(review.c.review_id).where(
            review.c.review_id.in_(chunk), review.c.onefile_system_id.is_not(None)
        ),
        review_ids,
    )
    return {int(r) for r in found["review_id"]}


def reviews_with_onefile_ids(conn: Connection, onefile_ids: Iterable[Any]) -> pd.DataFrame:
    """The PICSWeb ``review`` rows (every column, typed) whose ``onefile_system_id`` is one
    of ``onefile_ids`` (OneFile Review IDs; nulls and repeats ignored), ordered by it."""
    review = picsweb_tables.review
    return select_in_chunks(
        conn,
        lambda chunk: select(review).where(review.c.onefile_system_id.in_(chunk)),
        onefile_ids,
    ).sort_values("onefile_system_id", ignore_index=True)
