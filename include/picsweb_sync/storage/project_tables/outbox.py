"""The outbox: what a push will send to OneFile, one row per learning aim update or review
create, with what OneFile answered (state, VisitID, result ID, attempts, last error; for a
create also the moment OneFile accepted it, in ``sync_create_basis``), and the queries the
pushes and their recovery ask of it.

Also the visits the sync created in OneFile and could not use (``sync_empty_visit``): a
review create whose Visit call went through but whose review never came (refused, the
PICSWeb review changed or gone before a retry, a crash followed by a reschedule), or whose
Visit call answered a server fault (the visit may exist, its ID unknown). OneFile has no
visit search in the contract, so the sync cannot clear them itself: each is recorded, with
what to do, until someone deletes or reuses it in OneFile."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Identity,
    Index,
    Integer,
    String,
    Table,
    UnicodeText,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import (
    INSTANT,
    SURROGATE,
    partitioned,
    project_metadata,
    run_id_column,
    stamp,
    utcnow,
)
from picsweb_sync.storage.project_tables.rejects import add_rejects
from picsweb_sync.storage.sqlframes import bulk_insert, plain, read_frame

# ``skipped``: not sent, because re-checked just before sending it no longer applied
# (the PICSWeb row or the OneFile value changed since the merge, or another run did it);
# ``last_error`` says why.
OUTBOX_STATES = ("pending", "sent", "failed", "rejected", "skipped")
FINAL_STATES = ("sent", "rejected", "skipped")
# Outbox kinds.
AIM_UPDATE = "learning_aim_update"
REVIEW_CREATE = "review_create"
sync_outbox = partitioned(
    "sync_outbox",
    Column("outbox_id", SURROGATE, Identity(), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("target_id", BigInteger, nullable=False),
    Column("payload", UnicodeText, nullable=False),
    Column("state", String(10), nullable=False),
    Column("visit_id", BigInteger),
    Column("result_id", BigInteger),
    Column("attempts", Integer, nullable=False),
    Column("last_error", UnicodeText),
    Column("updated_at", INSTANT, nullable=False),
)
UniqueConstraint(sync_outbox.c.run_id, sync_outbox.c.kind, sync_outbox.c.target_id)

# When OneFile accepted each review create (naive UTC): the moment the payload sent was
# OneFile's state of that review, so what rule 6 copies back from it is based on that moment.
# A table of its own, not a column of sync_outbox: the sync creates its missing tables and
# never alters one (the preflight holds an existing table to its definition).
sync_create_basis = partitioned(
    "sync_create_basis",
    Column("outbox_id", BigInteger, primary_key=True),
    Column("target_id", BigInteger, nullable=False),
    Column("result_id", BigInteger, nullable=False),
    Column("basis_at", INSTANT),  # null: found by search without OneFile's CreatedOn
)


def enqueue_outbox(
    conn: Connection, run_id: str, kind: str, items: pd.DataFrame, now: dt.datetime | None = None
) -> int:
    """Add ``items`` (``target_id``, ``payload`` dict) as pending sends; returns how many.

    Idempotent per run + kind + target: an item already queued (maybe already sent) is left
    as it is, so a retried merge never sends anything twice.
    """
    queued = read_frame(
        conn,
        select(sync_outbox.c.target_id).where(
            sync_outbox.c.run_id == run_id, sync_outbox.c.kind == kind
        ),
    )
    new = items[~items["target_id"].isin(queued["target_id"])]
    frame = pd.DataFrame(
        {
            "target_id": new["target_id"],
            "payload": new["payload"].map(lambda p: json.dumps(p, sort_keys=True)),
        }
    ).assign(run_id=run_id, kind=kind, state="pending", attempts=0, updated_at=stamp(now))
    return bulk_insert(conn, sync_outbox, frame)


_OUTBOX_COLUMNS = (
    sync_outbox.c.outbox_id,
    sync_outbox.c.kind,
    sync_outbox.c.target_id,
    sync_outbox.c.payload,
    sync_outbox.c.state,
    sync_outbox.c.visit_id,
    sync_outbox.c.result_id,
    sync_outbox.c.attempts,
    sync_outbox.c.last_error,
)


def outbox_rows(
    conn: Connection, run_id: str, kind: str | None = None, states: tuple[str, ...] = OUTBOX_STATES
) -> pd.DataFrame:
    """The run's outbox rows in ``states``, oldest first, with ``payload`` decoded."""
    stmt = select(*_OUTBOX_COLUMNS).where(
        sync_outbox.c.run_id == run_id, sync_outbox.c.state.in_(states)
    )
    if kind is not None:
        stmt = stmt.where(sync_outbox.c.kind == kind)
    frame = read_frame(conn, stmt.order_by(sync_outbox.c.outbox_id))
    return frame.assign(payload=frame["payload"].map(json.loads).astype(object))


def pending_outbox(conn: Connection, run_id: str, kind: str | None = None) -> pd.DataFrame:
    """Outbox rows still to send (``pending``, or ``failed`` and so worth retrying);
    ``visit_id`` tells a half-done review create."""
    return outbox_rows(conn, run_id, kind, ("pending", "failed"))


def unknown_outcome(table: Table = sync_outbox) -> ColumnElement[bool]:
    """Review creates whose outcome is unknown: the Visit was created and recorded, the
    Review call may or may not have reached OneFile, and nobody has found out yet."""
    return (
        (table.c.kind == REVIEW_CREATE)
        & table.c.visit_id.is_not(None)
        & table.c.result_id.is_(None)
        & table.c.state.not_in(FINAL_STATES)
    )


def unknown_creates(conn: Connection) -> pd.DataFrame:
    """Every review create of any run whose outcome is unknown, oldest first, with the
    payload it was sent with (recovery searches by what was sent, not by what PICSWeb
    holds now)."""
    stmt = select(*_OUTBOX_COLUMNS, sync_outbox.c.run_id).where(unknown_outcome())
    frame = read_frame(conn, stmt.order_by(sync_outbox.c.outbox_id))
    return frame.assign(payload=frame["payload"].map(json.loads).astype(object))


def unlinked_upload_visits(conn: Connection) -> list[int]:
    """VisitIDs of review creates, from any run, that OneFile may hold but PICSWeb does not
    yet know: their outcome is still unknown (see :func:`unknown_outcome`)."""
    visits = conn.execute(select(sync_outbox.c.visit_id).where(unknown_outcome()).distinct())
    return sorted(int(v) for v in visits.scalars())


def set_payload(conn: Connection, outbox_id: int, payload: Mapping[str, Any]) -> None:
    """Replace what an unsent outbox row will send (re-planned from the current state)."""
    conn.execute(
        update(sync_outbox)
        .where(sync_outbox.c.outbox_id == plain(outbox_id), sync_outbox.c.state != "sent")
        .values(payload=json.dumps(payload, sort_keys=True), updated_at=utcnow())
    )


def restart_create(conn: Connection, outbox_id: int, payload: Mapping[str, Any], note: str) -> None:
    """Start a review create afresh with ``payload``: its recorded visit is known to hold
    no review (searched for) and no longer fits the review, so it is let go (``note``)."""
    conn.execute(
        update(sync_outbox)
        .where(sync_outbox.c.outbox_id == plain(outbox_id), sync_outbox.c.result_id.is_(None))
        .values(
            payload=json.dumps(payload, sort_keys=True),
            visit_id=None,
            state="pending",
            last_error=note,
            updated_at=utcnow(),
        )
    )


def mark_outbox(
    conn: Connection,
    outbox_id: int,
    state: str,
    *,
    visit_id: int | None = None,
    result_id: int | None = None,
    error: str | None = None,
    payload: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Record what OneFile answered for one outbox row.

    ``visit_id``/``result_id`` are only ever set, never cleared, so the VisitID recorded
    before the Review call survives a later failure. Every state but ``pending`` counts an
    attempt; ``error`` is the reason to show (no credentials or tokens in it); ``payload``,
    when given, is what was sent (a re-checked update sends less than was queued).
    """
    if state not in OUTBOX_STATES:
        raise ValueError(f"unknown outbox state {state!r}; expected one of {OUTBOX_STATES}")
    values: dict[str, Any] = {"state": state, "updated_at": stamp(now), "last_error": error}
    if state != "pending":
        values["attempts"] = sync_outbox.c.attempts + 1
    if visit_id is not None:
        values["visit_id"] = plain(visit_id)
    if result_id is not None:
        values["result_id"] = plain(result_id)
    if payload is not None:
        values["payload"] = json.dumps(payload, sort_keys=True)
    done = conn.execute(
        update(sync_outbox).where(sync_outbox.c.outbox_id == plain(outbox_id)).values(values)
    )
    if done.rowcount != 1:
        raise LookupError(f"no outbox row {outbox_id}")


def record_create_bases(conn: Connection, run_id: str, bases: pd.DataFrame) -> int:
    """Keep when OneFile accepted each create (``outbox_id``, ``target_id``, ``result_id``,
    ``basis_at``): the first time recorded for an outbox row stays. Returns rows added."""
    if bases.empty:
        return 0
    b = sync_create_basis.c
    known = conn.execute(
        select(b.outbox_id).where(b.outbox_id.in_([plain(i) for i in bases["outbox_id"]]))
    ).scalars()
    new = bases[~bases["outbox_id"].isin(list(known))].drop_duplicates("outbox_id")
    return bulk_insert(conn, sync_create_basis, new.assign(run_id=run_id))


def create_bases(conn: Connection, run_id: str) -> pd.DataFrame:
    """The run's review creates that OneFile accepted: ``target_id`` (the PICSWeb review),
    ``result_id`` (OneFile's) and ``basis_at`` (when OneFile accepted it; null where not
    known)."""
    o, b = sync_outbox.c, sync_create_basis.c
    return read_frame(
        conn,
        select(o.target_id, o.result_id, b.basis_at)
        .select_from(sync_outbox.outerjoin(sync_create_basis, b.outbox_id == o.outbox_id))
        .where(
            o.run_id == run_id,
            o.kind == REVIEW_CREATE,
            o.state == "sent",
            o.result_id.is_not(None),
        )
        .order_by(o.outbox_id),
    )


# ----- visits the sync created and could not use ----------------------------------------------
EMPTY_VISIT_STAGE = "push_reviews"
EMPTY_VISIT_REASON = "OneFile visit left empty"
"""The kind of reject an empty visit is reported as (its reason up to the first " (")."""

sync_empty_visit = Table(
    "sync_empty_visit",
    project_metadata,
    Column("empty_visit_id", SURROGATE, Identity(), primary_key=True),
    run_id_column(),
    Column("outbox_id", BigInteger),
    Column("review_id", BigInteger),  # the PICSWeb review the visit was made for
    Column("visit_id", BigInteger),  # null: the Visit call failed, the visit may exist
    Column("learner_id", BigInteger, nullable=False),
    Column("organisation_id", BigInteger),
    Column("visit_from", String(40)),  # the visit's DateFrom as sent
    Column("reason", UnicodeText, nullable=False),
    Column("what_to_do", UnicodeText, nullable=False),
    Column("recorded_at", INSTANT, nullable=False, default=utcnow),
)
# Not a per-run table of the retention purge (no ``created_at``): a visit is listed until
# someone deals with it in OneFile, however old its run.
Index(None, sync_empty_visit.c.run_id)
Index(None, sync_empty_visit.c.learner_id)

WHAT_TO_DO = (
    "in OneFile, open learner {learner}'s visits{when} and delete visit {visit}, which holds "
    "no review (or reuse it for this learner's next review); the sync never uses it again"
)
WHAT_TO_DO_UNKNOWN = (
    "in OneFile, look among learner {learner}'s visits{when} for one holding no review (the "
    "Visit call failed, so OneFile may or may not have made it) and delete it, or reuse it"
)


def what_to_do(visit_id: int | None, learner_id: int, visit_from: str | None) -> str:
    """The advice recorded with an empty visit."""
    when = f" on {visit_from[:10]}" if visit_from else ""
    advice = WHAT_TO_DO if visit_id is not None else WHAT_TO_DO_UNKNOWN
    return advice.format(learner=learner_id, when=when, visit=visit_id)


def record_empty_visits(conn: Connection, run_id: str, visits: pd.DataFrame) -> int:
    """Record visits the sync created and could not use (``outbox_id``, ``review_id``,
    ``visit_id`` or null, ``learner_id``, ``organisation_id``, ``visit_from``, ``reason``),
    each also as a reject of the run (``OneFile visit left empty (...)``) so the run's
    summary and the sync page show it. Returns how many."""
    if visits.empty:
        return 0
    frame = visits.reset_index(drop=True)
    advice = [
        what_to_do(None if pd.isna(v) else int(v), int(learner), None if pd.isna(f) else f)
        for v, learner, f in zip(
            frame["visit_id"], frame["learner_id"], frame["visit_from"], strict=True
        )
    ]
    frame = frame.assign(run_id=run_id, what_to_do=advice, recorded_at=utcnow())
    bulk_insert(conn, sync_empty_visit, frame)
    reasons = [
        f"{EMPTY_VISIT_REASON} (visit {'unknown' if pd.isna(v) else int(v)}, learner "
        f"{int(learner)}, PICSWeb review {r}): {why}; what to do: {todo}"
        for v, learner, r, why, todo in zip(
            frame["visit_id"],
            frame["learner_id"],
            frame["review_id"],
            frame["reason"],
            frame["what_to_do"],
            strict=True,
        )
    ]
    rejects = pd.DataFrame(
        {
            "entity": "visit",
            "source_id": [None if pd.isna(v) else str(int(v)) for v in frame["visit_id"]],
            "organisation_id": frame["organisation_id"],
            "reason": reasons,
        }
    )
    add_rejects(conn, run_id, EMPTY_VISIT_STAGE, rejects)
    return len(frame)


def empty_visits(conn: Connection, run_id: str | None = None, limit: int = 500) -> pd.DataFrame:
    """Visits the sync created and could not use, newest first, at most ``limit``: of one
    run, or of every run (for the sync page: what to delete or reuse in OneFile)."""
    e = sync_empty_visit.c
    stmt = select(
        e.run_id,
        e.visit_id,
        e.learner_id,
        e.organisation_id,
        e.review_id,
        e.visit_from,
        e.reason,
        e.what_to_do,
        e.recorded_at,
    )
    if run_id is not None:
        stmt = stmt.where(e.run_id == run_id)
    return read_frame(conn, stmt.order_by(e.empty_visit_id.desc()).limit(limit))
