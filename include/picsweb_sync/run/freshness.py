"""Stale loads refuse: OneFile data never overwrites newer OneFile data already loaded.

A data team clears an old run's failed ``load_reviews`` days later. That run's staged
OneFile rows are days old; newer runs have loaded what OneFile said since (a review
started, a date corrected). Loading the old rows now would pass every per-row guard
(PICSWeb still holds what the *new* merge read) and quietly undo the newer changes.

So every write carries the basis it was computed from, stored with the data it justifies:

- a merge records its change set's basis (``sync_change_basis``: when the oldest staged
  OneFile row it read was extracted, and for reviews the review window) in the same
  transaction as the change set. The load judges the change set by *that* basis, never by
  the run's latest extract: an extract cleared and rerun after the merge makes the staging
  newer, not the change set. A change set without a basis (purged, or written by a merge
  that did not record one) is never applied;
- a load refuses when another run has already loaded OneFile data *extracted later* over an
  overlapping window (``sync_load_mark``), and records its own mark;
- each PICSWeb row the sync writes remembers the extraction time of the OneFile data written
  (``sync_row_basis``, in the PICSWeb database, committed with the write); a write of older
  OneFile data over that row is refused row by row (``picsweb_writes.apply_updates``), so
  a reflection rebuilt by a cleared push, or any other path, cannot undo a newer write.

Extraction time, not the run's logical date, decides: a backfill run made today for last
March extracts today, and is as fresh as anything. Clearing the old run from its extract
tasks *with downstream* (``-t extract_ -d``) re-merges from fresh data and makes it fresh again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables import STAGING, sync_change_basis, sync_load_mark, utcnow
from picsweb_sync.storage.project_tables.common import stamp

QUALIFICATIONS = "qualifications"
REVIEWS = "reviews"
# The staged entities each load's OneFile data comes from.
INPUTS = {QUALIFICATIONS: ("learners", "learning_aims"), REVIEWS: ("reviews", "assessors")}


@dataclass(frozen=True)
class Basis:
    """What a load is based on: when its OneFile rows were extracted, over which window
    (``None``: every review, as for qualifications). Times are naive UTC."""

    extracted_at: dt.datetime
    window_from: dt.datetime | None = None
    window_to: dt.datetime | None = None
    staged_rows: int | None = None  # a change set's basis: how many staged rows it read


@dataclass(frozen=True)
class Newer:
    """A load by another run that a stale load would undo."""

    run_id: str
    extracted_at: dt.datetime
    loaded_at: dt.datetime


def extracted_at(conn: Connection, run_id: str, stage: str) -> dt.datetime | None:
    """When the oldest of the run's staged rows for ``stage`` was extracted (``None``:
    nothing staged)."""
    return _staged(conn, run_id, stage)[0]


def _staged(conn: Connection, run_id: str, stage: str) -> tuple[dt.datetime | None, int]:
    """The oldest ``created_at`` and the number of the run's staged rows for ``stage``:
    one query per staged entity."""
    times, rows = [], 0
    for entity in INPUTS[stage]:
        table = STAGING[entity]
        stmt = select(func.min(table.c.created_at), func.count()).where(table.c.run_id == run_id)
        oldest, count = conn.execute(stmt).one()
        times.append(oldest)
        rows += count
    known = [t for t in times if t is not None]
    return (min(known) if known else None), rows


def merge_basis(
    conn: Connection,
    run_id: str,
    stage: str,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    now: dt.datetime | None = None,
) -> Basis:
    """The basis of the change set a merge of ``stage`` computes now from the run's staging:
    when its oldest staged input was extracted (``now`` when nothing is staged: the change
    set then holds no OneFile data) and how many staged rows there are."""
    oldest, rows = _staged(conn, run_id, stage)
    extracted = oldest or stamp(now)
    window = window and tuple(stamp(t) for t in window)
    return Basis(extracted, *(window or (None, None)), staged_rows=rows)


def record_change_basis(conn: Connection, run_id: str, stage: str, basis: Basis) -> None:
    """Store the basis of the run's ``stage`` change set; call in the transaction that
    replaces the change set, so the two are never apart."""
    table = sync_change_basis
    conn.execute(delete(table).where(table.c.run_id == run_id, table.c.merge_name == stage))
    conn.execute(
        insert(table).values(
            run_id=run_id,
            merge_name=stage,
            extracted_at=basis.extracted_at,
            window_from=basis.window_from,
            window_to=basis.window_to,
            staged_rows=basis.staged_rows or 0,
            created_at=utcnow(),
        )
    )


def change_basis(conn: Connection, run_id: str, stage: str) -> Basis | None:
    """The basis the run's ``stage`` change set was computed from; ``None`` when it has none
    (purged with its run, or never merged): such a change set is never applied."""
    c = sync_change_basis.c
    row = conn.execute(
        select(c.extracted_at, c.window_from, c.window_to, c.staged_rows).where(
            c.run_id == run_id, c.merge_name == stage
        )
    ).first()
    if row is None:
        return None
    return Basis(row.extracted_at, row.window_from, row.window_to, int(row.staged_rows))


def _overlaps(basis: Basis):
    mark = sync_load_mark.c
    conditions = [mark.window_from.is_(None), mark.window_to.is_(None)]
    if basis.window_from is None or basis.window_to is None:
        return True
    conditions.append((mark.window_from < basis.window_to) & (mark.window_to > basis.window_from))
    return or_(*conditions)


def newer_load(conn: Connection, run_id: str, stage: str, basis: Basis) -> Newer | None:
    """The newest load of ``stage`` by another run based on OneFile data extracted after
    ``basis``, over a window overlapping it; ``None`` when this load is not stale."""
    mark = sync_load_mark.c
    row = conn.execute(
        select(mark.run_id, mark.extracted_at, mark.loaded_at)
        .where(
            mark.stage == stage,
            mark.run_id != run_id,
            mark.extracted_at > basis.extracted_at,
            _overlaps(basis),
        )
        .order_by(mark.extracted_at.desc())
        .limit(1)
    ).first()
    return None if row is None else Newer(row.run_id, row.extracted_at, row.loaded_at)


def record_load(
    conn: Connection, run_id: str, stage: str, basis: Basis, now: dt.datetime | None = None
) -> None:
    """Remember what the run's ``stage`` load was based on (replacing a rerun's mark)."""
    values = {
        "extracted_at": basis.extracted_at,
        "window_from": basis.window_from,
        "window_to": basis.window_to,
        "loaded_at": now or utcnow(),
    }
    mark = sync_load_mark.c
    done = conn.execute(
        update(sync_load_mark).where(mark.run_id == run_id, mark.stage == stage).values(values)
    )
    if done.rowcount == 0:
        conn.execute(insert(sync_load_mark).values(run_id=run_id, stage=stage, **values))


def no_basis(stage: str, task: str) -> str:
    """What the log says when a change set has no basis to judge it by."""
    return (
        f"not loading: this run's {stage} change set has no recorded basis (its run was "
        f"purged by retention, or it was merged before bases were recorded), so nothing "
        f"shows it is not older than what PICSWeb holds; {task} changed nothing. To redo "
        f"this run, clear it from its extract tasks with downstream tasks"
    )


def refusal(newer: Newer, basis: Basis, stage: str, task: str) -> str:
    """What the log says when a stale load refuses."""
    return (
        f"not loading: run {newer.run_id} already loaded OneFile {stage} extracted at "
        f"{newer.extracted_at:%Y-%m-%d %H:%M} UTC, later than this run's "
        f"({basis.extracted_at:%Y-%m-%d %H:%M} UTC, when the rows its change set was merged "
        f"from were extracted); loading them would undo "
        f"newer changes. To redo this run with fresh data, clear it from its extract tasks "
        f"with downstream tasks (`airflow tasks clear onefile_picsweb_sync -t extract_ -d "
        f"-s <day> -e <day>T23:59`); {task} itself changed nothing"
    )
