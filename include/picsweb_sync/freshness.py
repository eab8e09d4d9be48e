"""Stale loads refuse: OneFile data never overwrites newer OneFile data already loaded.

A data team clears an old run's failed ``load_reviews`` days later. That run's staged
OneFile rows are days old; newer runs have loaded what OneFile said since (a review
started, a date corrected). Loading the old rows now would pass every per-row guard
(PICSWeb still holds what the *new* merge read) and quietly undo the newer changes.

So every load records what it was based on (``sync_load_mark``: when its OneFile rows were
extracted, and for reviews the review window), and a load refuses when another run has
already loaded OneFile data *extracted later* over an overlapping window. Extraction time,
not the run's logical date, decides: a backfill run made today for last March extracts
today, and is as fresh as anything. Clearing the old run from its extract tasks
(``-t extract_`` with downstream) makes its data fresh again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection

from picsweb_sync.project_tables import STAGING, sync_load_mark, utcnow

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


@dataclass(frozen=True)
class Newer:
    """A load by another run that a stale load would undo."""

    run_id: str
    extracted_at: dt.datetime
    loaded_at: dt.datetime


def extracted_at(conn: Connection, run_id: str, stage: str) -> dt.datetime | None:
    """When the oldest of the run's staged rows for ``stage`` was extracted (``None``:
    nothing staged)."""
    times = []
    for entity in INPUTS[stage]:
        table = STAGING[entity]
        stmt = select(func.min(table.c.created_at)).where(table.c.run_id == run_id)
        times.append(conn.execute(stmt).scalar_one())
    known = [t for t in times if t is not None]
    return min(known) if known else None


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


def refusal(newer: Newer, basis: Basis, stage: str, task: str) -> str:
    """What the log says when a stale load refuses."""
    return (
        f"not loading: run {newer.run_id} already loaded OneFile {stage} extracted at "
        f"{newer.extracted_at:%Y-%m-%d %H:%M} UTC, later than this run's "
        f"({basis.extracted_at:%Y-%m-%d %H:%M} UTC); loading these older rows would undo "
        f"newer changes. To redo this run with fresh data, clear it from its extract tasks "
        f"with downstream tasks (`airflow tasks clear onefile_picsweb_sync -t extract_ -d "
        f"-s <day> -e <day>T23:59`); {task} itself changed nothing"
    )
