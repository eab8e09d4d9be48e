"""The run history: newest runs first, paged by ``(started_at, run_id)`` through
``ix_sync_run_started_at``, and one point per run for the charts.

A run's row (:func:`run_row`) is read the same way here and by the run's own page
(``sync_page.queries.one_run``): its ``sync_run`` record joined to its summary, when it has
one yet.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.engine import Connection

from picsweb_sync.run.summary import SUMMARY_KEYS
from picsweb_sync.storage.project_tables import sync_run, sync_run_summary
from sync_page import run_story
from sync_page.queries.page import BadRequest, Page, bounded, decode_cursor, encode_cursor

# Bounds of the history's queries (a page's runs; the runs a chart draws).
MAX_RUNS = 200
DEFAULT_RUNS = 50
MAX_CHART_RUNS = 1000

# The integer counts of the run summary (the contract).
SUMMARY_COUNTS = SUMMARY_KEYS
RUN_TYPES = ("scheduled", "manual", "backfill", "asset_triggered", "operator_triggered")


def _run_type_of(run_id: str) -> str:
    """The run type an Airflow run id starts with (``manual__...``), for runs that have no
    summary row yet."""
    prefix = run_id.split("__", 1)[0]
    return prefix if prefix in RUN_TYPES else "unknown"


def _summary(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def history_select() -> Select:
    return select(
        sync_run.c.run_id,
        sync_run.c.started_at,
        sync_run.c.ended_at,
        sync_run.c.outcome,
        sync_run.c.failure,
        sync_run_summary.c.dag_id,
        sync_run_summary.c.run_type,
        sync_run_summary.c.dry_run,
        sync_run_summary.c.interval_start,
        sync_run_summary.c.interval_end,
        sync_run_summary.c.first_ended_at,
        sync_run_summary.c.summary,
        sync_run_summary.c.thresholds_crossed,
    ).select_from(
        sync_run.outerjoin(sync_run_summary, sync_run_summary.c.run_id == sync_run.c.run_id)
    )


def run_row(row: Any) -> dict[str, Any]:
    summary = _summary(row.summary)
    dry_run = bool(row.dry_run) if row.dry_run is not None else bool((summary or {}).get("dry_run"))
    run_type = row.run_type or _run_type_of(row.run_id)
    ended = row.first_ended_at or row.ended_at
    counts = {key: int((summary or {}).get(key) or 0) for key in SUMMARY_COUNTS}
    return {
        "run_id": row.run_id,
        "dag_id": row.dag_id,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "outcome": row.outcome,
        "failure": row.failure,
        "run_type": run_type,
        "dry_run": dry_run,
        "type": "dry run" if dry_run else run_type,
        "interval_start": row.interval_start,
        "interval_end": row.interval_end,
        "duration_s": _seconds(row.started_at, ended),
        "has_summary": summary is not None,
        "counts": counts,
        "rejects_by_kind": dict((summary or {}).get("rejects_by_kind") or {}),
        "thresholds_crossed": row.thresholds_crossed,
        # A rerun's own counts and the tasks rerun (``picsweb_sync.run.summary``): run_story.
        "latest_try": (summary or {}).get("latest_try") or None,
        "reruns": dict((summary or {}).get("reruns") or {}),
    }


def _type_filter(run_type: str | None) -> Any:
    if run_type is None or run_type == "":
        return None
    if run_type == "dry_run":
        return sync_run_summary.c.dry_run.is_(True)
    if run_type not in RUN_TYPES:
        raise BadRequest(f"unknown run type {run_type!r}; expected dry_run or one of {RUN_TYPES}")
    # A dry run is listed as a dry run, whatever started it.
    return and_(sync_run_summary.c.run_type == run_type, sync_run_summary.c.dry_run.is_(False))


def history_statement(
    limit: int,
    before: tuple[dt.datetime, str] | None = None,
    run_type: str | None = None,
    outcome: str | None = None,
) -> Select:
    """Newest runs first, ``limit`` of them, strictly older than the cursor ``before``."""
    stmt = history_select()
    if before is not None:
        started, run_id = before
        stmt = stmt.where(
            or_(
                sync_run.c.started_at < started,
                and_(sync_run.c.started_at == started, sync_run.c.run_id < run_id),
            )
        )
    where_type = _type_filter(run_type)
    if where_type is not None:
        stmt = stmt.where(where_type)
    if outcome:
        stmt = stmt.where(sync_run.c.outcome == outcome)
    return stmt.order_by(sync_run.c.started_at.desc(), sync_run.c.run_id.desc()).limit(limit)


def run_history(
    conn: Connection,
    limit: int | None = None,
    before: str | None = None,
    run_type: str | None = None,
    outcome: str | None = None,
) -> Page:
    """One page of the run history, newest first, and the cursor of the next page."""
    size = bounded(limit, DEFAULT_RUNS, MAX_RUNS)
    position = tuple(decode_cursor(before, (dt.datetime, str))) if before else None
    stmt = history_statement(size + 1, position, run_type, outcome)
    rows = [run_row(r) for r in conn.execute(stmt)]
    more = len(rows) > size
    rows = run_story.with_marks(conn, rows[:size])  # the UK day and the marks of each run
    cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["run_id"]) if more else None
    return Page(rows, cursor)


def chart_statement(since: dt.datetime, limit: int = MAX_CHART_RUNS) -> Select:
    return (
        history_select()
        .where(sync_run.c.started_at >= since)
        .order_by(sync_run.c.started_at.desc(), sync_run.c.run_id.desc())
        .limit(limit)
    )


def chart_points(conn: Connection, days: int, now: dt.datetime | None = None) -> list[dict]:
    """One point per run of the last ``days`` days (at most MAX_CHART_RUNS), oldest first:
    what the charts of changes and rejects over time draw."""
    if days < 1:
        raise BadRequest("days must be at least 1")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    since = now - dt.timedelta(days=min(days, 3660))
    points = []
    for row in conn.execute(chart_statement(since)):
        run = run_row(row)
        counts = run["counts"]
        points.append(
            {
                "run_id": run["run_id"],
                "started_at": run["started_at"],
                "type": run["type"],
                "outcome": run["outcome"],
                "picsweb_changes": counts["picsweb_fields_changed"]
                + counts["picsweb_reviews_created"],
                "onefile_changes": counts["onefile_fields_changed"]
                + counts["onefile_reviews_created"],
                "rejects": counts["rejects"],
                "conflicts": counts["conflicts"],
            }
        )
    points.reverse()
    return points
