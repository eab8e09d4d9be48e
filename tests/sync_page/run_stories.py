"""Runs of the generated history with a story beyond their counts, written as the sync
writes them: a load rerun after it created a review (every try's counts, the summary's
``latest_try``), a load that refused stale data and deferred to a newer run, a task that
failed once and succeeded on retry, a failed run that was not retried, a push that
recovered creates (recorded by a version that kept only the latest counts), and a run
with visits it could not use and outbox rows still pending.

``Stories`` names each run, so the tests find them without searching.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from picsweb_sync.storage.project_tables import (
    AIM_UPDATE,
    REVIEW_CREATE,
    sync_outbox,
    sync_run_count,
    sync_run_summary,
    sync_task_error,
)
from picsweb_sync.storage.project_tables.outbox import sync_empty_visit, what_to_do
from picsweb_sync.storage.project_tables.run_record import sync_load_refusal, sync_run_try_count

# Days of the generated history (sync_page.history.write_history): each a real, successful
# run with a summary, except FAILED (a failed run).
RERUN, REFUSED, NEWER, RECOVERED, LEFT_OVER, FAILED, RETRIED = 100, 101, 102, 104, 106, 107, 108
REFUSAL = (
    "not loading: run {newer} already loaded OneFile reviews extracted at 2025-04-13 02:00 "
    "UTC, later than this run's (2025-04-12 02:00 UTC, when the rows its change set was "
    "merged from were extracted); loading them would undo newer changes"
)


@dataclass
class Stories:
    rerun: str
    refused: str
    newer: str
    recovered: str
    left_over: str
    failed: str
    retried: str
    refusal: str


def _summary(history, run_id: str) -> dict[str, Any]:
    return json.loads(history.summaries[run_id]["summary"])


def write_stories(engine: sa.Engine, history) -> Stories:
    """Add the stories to runs already written (their summaries, counts and outbox rows are
    kept in ``history`` as well, so the tests that compare with it still hold)."""
    run = {day: history.runs[day] for day in (RERUN, REFUSED, NEWER, RECOVERED, LEFT_OVER)}
    run |= {day: history.runs[day] for day in (FAILED, RETRIED)}
    ids = {day: r["run_id"] for day, r in run.items()}
    assert run[FAILED]["outcome"] == "failed" and run[RETRIED]["outcome"] == "success"
    counts, tries, summaries = [], [], {}

    # A rerun load_reviews: try 1 created a review and changed 2 fields, try 2 nothing.
    rid, started = ids[RERUN], run[RERUN]["started_at"]
    first = {"fields_changed": 2, "reviews_inserted": 1, "conflicts": 0}
    second = {"fields_changed": 0, "reviews_inserted": 0, "conflicts": 0}
    for attempt, values, at in ((1, first, 40), (2, second, 7200)):
        for name, value in values.items():
            tries.append(_try(rid, "load_reviews", attempt, name, value, started, at))
    counts += [_count(rid, "load_reviews", name, value) for name, value in second.items()]
    summary = _summary(history, rid)
    summary["picsweb_fields_changed"] += 2
    summary["picsweb_reviews_created"] = 1
    summary["reruns"] = {"load_reviews": 2}
    summary["latest_try"] = {
        **{k: summary[k] for k in summary if k.endswith("_extracted")},
        "picsweb_fields_changed": summary["picsweb_fields_changed"] - 2,
        "picsweb_reviews_created": 0,
        "onefile_fields_changed": None,
        "onefile_reviews_created": 0,
        "rejects": summary["rejects"],
        "conflicts": summary["conflicts"],
        "outbox_pending": summary["outbox_pending"],
    }
    summaries[rid] = summary

    # A refused load_reviews (try 1), deferring to the next day's run; loaded by try 2.
    rid, started = ids[REFUSED], run[REFUSED]["started_at"]
    refusal = {
        "run_id": rid,
        "stage": "load_reviews",
        "try_number": 1,
        "kind": "stale",
        "newer_run_id": ids[NEWER],
        "newer_extracted_at": run[NEWER]["started_at"],
        "extracted_at": started,
        "reason": REFUSAL.format(newer=ids[NEWER]),
        "refused_at": started + dt.timedelta(seconds=50),
    }
    tries.append(_try(rid, "load_reviews", 1, "fields_changed", 0, started, 3 * 86400))

    # push_reviews recovered 2 creates (recorded by a version without the try table).
    counts.append(_count(ids[RECOVERED], "push_reviews", "recovered", 2))

    # A failed run whose task failed once (not retried); a run whose task was retried.
    errors = [
        _error(ids[FAILED], "extract_learners[0] (organisation 1)", 1, run[FAILED]),
        _error(ids[RETRIED], "push_learning_aims", 1, run[RETRIED]),
    ]

    # Left over: a visit made and not used, one whose Visit call failed, and outbox rows
    # still to send: an update OneFile failed, a create of unknown outcome, a pending one.
    rid, ended = ids[LEFT_OVER], run[LEFT_OVER]["ended_at"]
    visits = [
        _visit(rid, 812_345, 700_003, 31, "2025-04-16T09:00:00Z", "review refused", ended),
        _visit(rid, None, 700_004, 41, "2025-04-16T10:00:00Z", "Visit call: HTTP 503", ended),
    ]
    outbox = [
        _outbox(rid, AIM_UPDATE, 500_001, "failed", ended, last_error="HTTP 503"),
        _outbox(rid, REVIEW_CREATE, 700_005, "pending", ended, visit_id=812_346),
        _outbox(rid, REVIEW_CREATE, 700_006, "pending", ended),
    ]
    summary = _summary(history, rid)
    summary["outbox_pending"] += 3
    summaries[rid] = summary

    with engine.begin() as conn:
        conn.execute(sa.insert(sync_run_count), counts)
        conn.execute(sa.insert(sync_run_try_count), tries)
        conn.execute(sa.insert(sync_load_refusal), [refusal])
        conn.execute(sa.insert(sync_task_error), errors)
        conn.execute(sa.insert(sync_empty_visit), visits)
        conn.execute(sa.insert(sync_outbox), outbox)
        for rid, summary in summaries.items():
            text = json.dumps(summary)
            history.summaries[rid]["summary"] = text
            table = sync_run_summary
            conn.execute(sa.update(table).where(table.c.run_id == rid).values(summary=text))
    history.counts.extend(counts)
    history.outbox.extend(outbox)
    return Stories(
        rerun=ids[RERUN],
        refused=ids[REFUSED],
        newer=ids[NEWER],
        recovered=ids[RECOVERED],
        left_over=ids[LEFT_OVER],
        failed=ids[FAILED],
        retried=ids[RETRIED],
        refusal=refusal["reason"],
    )


def _count(run_id: str, stage: str, name: str, value: int) -> dict[str, Any]:
    return {"run_id": run_id, "stage": stage, "name": name, "value": value}


def _try(run_id, stage, attempt, name, value, started, seconds) -> dict[str, Any]:
    return {
        **_count(run_id, stage, name, value),
        "attempt": attempt,
        "recorded_at": started + dt.timedelta(seconds=seconds),
    }


def _error(run_id: str, task: str, try_number: int, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "task": task,
        "try_number": try_number,
        "error": "OneFileApiError: HTTP 503 at POST /LearningAim/Search",
        "failed_at": run["started_at"] + dt.timedelta(seconds=20),
    }


def _visit(run_id, visit_id, learner_id, review_id, visit_from, reason, at) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "outbox_id": None,
        "review_id": review_id,
        "visit_id": visit_id,
        "learner_id": learner_id,
        "organisation_id": 1,
        "visit_from": visit_from,
        "reason": reason,
        "what_to_do": what_to_do(visit_id, learner_id, visit_from),
        "recorded_at": at,
    }


def _outbox(run_id, kind, target, state, at, visit_id=None, last_error=None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "kind": kind,
        "target_id": target,
        "payload": "{}",
        "state": state,
        "attempts": 1,
        "last_error": last_error,
        "updated_at": at,
        "visit_id": visit_id,
    }
