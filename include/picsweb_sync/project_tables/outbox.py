"""The outbox: what a push will send to OneFile, one row per learning aim update or review
create, with what OneFile answered (state, VisitID, result ID, attempts, last error), and the
queries the pushes and their recovery ask of it."""

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
    Integer,
    String,
    Table,
    UnicodeText,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.engine import Connection

from picsweb_sync.project_tables.common import INSTANT, SURROGATE, partitioned, stamp, utcnow
from picsweb_sync.sqlframes import bulk_insert, plain, read_frame

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
