"""Rule 6 applied at once to the reviews a push created in OneFile
(:func:`reflect_uploaded_reviews`), and what it would write after a dry run's creates
(:func:`would_reflect`).

A created review is, in OneFile, what the next download would write back; writing it now
keeps PICSWeb equal to OneFile and lets the next run change nothing. Apart from the sending:
it is a PICSWeb write after the creates, by the download's own rule, and each of its
updates carries its own basis (when OneFile accepted that create, :func:`with_basis`).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.payloads import review_create_payload
from picsweb_sync.rules import reviews
from picsweb_sync.rules.blank import is_blank
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push.log import log
from picsweb_sync.stages.push.recheck import rows_where_in
from picsweb_sync.storage import picsweb_tables, picsweb_writes, project_tables
from picsweb_sync.storage.project_tables import outbox as outbox_table
from picsweb_sync.storage.sqlframes import read_frame

REVIEW_CREATE = project_tables.REVIEW_CREATE


def reflect_uploaded_reviews(ctx: RunContext) -> int:
    """Apply rule 6 at once to the reviews this run created in OneFile.

    A created review is, in OneFile, scheduled and not started, with the chosen assessor;
    the next download would write exactly that back (attended ``U``, the assessor's
    officer, a 09:00 start time where PICSWeb had none). Writing it now keeps PICSWeb equal
    to OneFile and lets the next run change nothing. The rule is the download's own
    (``merge_reviews``); the write is the same guarded, audited ``apply_updates``, so a
    retry reflects nothing twice. A review whose attendance was recorded in PICSWeb since
    its upload is left alone: that entry is newer than anything this push knows.

    Each update says what OneFile data it is based on (``basis_at``, :func:`with_basis`):
    the moment OneFile accepted the create, when the payload sent was OneFile's state of
    that review.
    """
    if not ctx.settings.download_review_data:  # rule 6 is off: PICSWeb keeps its own values
        return 0
    with ctx.staging.connect() as conn:
        sent = project_tables.outbox_rows(conn, ctx.run_id, REVIEW_CREATE, ("sent",))
        bases = outbox_table.create_bases(conn, ctx.run_id)
        assessors = project_tables.read_staging(conn, ctx.run_id, "assessors", with_raw=False)
    sent = sent[sent["result_id"].notna()]
    if sent.empty:
        return 0
    created = [
        {**p["review"], "ID": int(rid), "VisitID": int(vid), "StartedOn": None}
        for p, rid, vid in zip(sent["payload"], sent["result_id"], sent["visit_id"], strict=True)
    ]
    staged = onefile_fields.parse_reviews(created, organisation_id=0).frame
    with ctx.picsweb.begin() as conn:
        linked = picsweb_writes.reviews_with_onefile_ids(conn, staged["review_id"])
        updates = _reflected_updates(conn, staged, linked, assessors)
        updates = with_basis(updates, bases)
        unknown = updates["basis_at"].isna()
        updates = updates[~unknown]
        applied = picsweb_writes.apply_updates(conn, ctx.run_id, updates, work_key="review_uploads")
    if unknown.any():  # a write without a basis is refused: the next download brings them
        log.warning(
            "%d field(s) of created reviews not reflected: the outbox has no time OneFile "
            "accepted their create (sent by an earlier version); the next run's download "
            "sets them",
            int(unknown.sum()),
        )
    for row in applied.stale.itertuples(index=False):
        log.info(
            "review %s: %s not reflected: a later download (run %s) wrote newer OneFile data",
            row.key,
            row.field,
            row.newer_run,
        )
    return len(applied.applied)


def with_basis(updates: pd.DataFrame, bases: pd.DataFrame) -> pd.DataFrame:
    """``updates`` (``picsweb_updates`` of ``review`` rows) with ``basis_at``: when OneFile
    accepted the create of the PICSWeb review each one writes (naive UTC; ``NaT`` where the
    outbox has no such time), from ``bases`` (:func:`~picsweb_sync.storage.project_tables.outbox.create_bases`)."""
    when = bases.drop_duplicates("target_id", keep="last").set_index("target_id")["basis_at"]
    when.index = when.index.astype("int64")
    keys = updates["key"].astype("int64")
    basis = pd.to_datetime(when.reindex(keys.to_numpy()).to_numpy())
    return updates.assign(basis_at=pd.Series(basis, index=updates.index).astype("datetime64[us]"))


def _reflected_updates(
    conn: sa.Connection, staged: pd.DataFrame, linked: pd.DataFrame, assessors: pd.DataFrame
) -> pd.DataFrame:
    """Rule 6's ``picsweb_updates`` for the created reviews ``staged`` (as OneFile holds
    them) onto their PICSWeb reviews ``linked``, only where the review is still as it was
    uploaded (attendance blank or ``U``, no actual date)."""
    trainees = read_frame(conn, sa.select(picsweb_tables.trainee))
    officers = read_frame(conn, sa.select(picsweb_tables.officer))
    as_uploaded = linked[is_blank(linked["attended"]) | linked["attended"].eq("U").fillna(False)]
    as_uploaded = as_uploaded[as_uploaded["actual_date"].isna()]
    merged = reviews.merge_reviews(staged, trainees, officers, assessors, linked)
    updates = merged.picsweb_updates
    return updates[updates["key"].isin(as_uploaded["review_id"])]


def would_reflect(ctx: RunContext, would_send: pd.DataFrame) -> picsweb_writes.ApplyResult:
    """What :func:`reflect_uploaded_reviews` would write after creating ``would_send``
    (``review_uploads`` rows), read-only: each review as OneFile would hold it, tied to its
    PICSWeb review by a stand-in ID (its own ``review_id``; OneFile's is not known yet)."""
    created = [
        {**review_create_payload(u)["review"], "ID": int(u.review_id), "StartedOn": None}
        for u in would_send.itertuples(index=False)
    ]
    staged = onefile_fields.parse_reviews(created, organisation_id=0).frame
    with ctx.staging.connect() as conn:
        assessors = project_tables.read_staging(conn, ctx.run_id, "assessors", with_raw=False)
    with ctx.picsweb.connect() as conn:
        review = picsweb_tables.review
        linked = rows_where_in(conn, review, "review_id", would_send["review_id"])
        linked = linked.assign(onefile_system_id=linked["review_id"])
        updates = _reflected_updates(conn, staged, linked, assessors)
        return picsweb_writes.classify_updates(conn, updates)
