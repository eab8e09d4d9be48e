"""What the sync page says about a run beyond its counts: the UK day it covers, the marks of
the history (a task retried, a load refused, a create recovered), and on the run's page
the refusals, the tries of each rerun task (in all against the latest try), the visits the
sync made and could not use, and what to do about each outbox row still pending.

Read by ``sync_page.queries``: its history calls :func:`with_marks` for each page of the
history, its one run's detail :func:`run_story`. Every statement is bounded
(a LIMIT, or an ``IN`` list of one history page's run ids) and compiles for SQL Server
(:func:`all_statements`, checked with the rest in tests/sync_page/test_queries.py).

The tables read here came with later versions of the sync (``sync_run_try_count``,
``sync_load_refusal``, ``sync_empty_visit``): a database whose sync has not run this
version yet has none of them, and then the page shows no marks instead of failing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, inspect, or_, select
from sqlalchemy.engine import Connection

from picsweb_sync.onefile.ukdates import covered_day
from picsweb_sync.run.summary import SUMMARY_KEYS
from picsweb_sync.storage.project_tables import sync_outbox, sync_task_error
from picsweb_sync.storage.project_tables.outbox import (
    AIM_UPDATE,
    REVIEW_CREATE,
    sync_empty_visit,
)
from picsweb_sync.storage.project_tables.run_record import (
    sync_load_refusal,
    sync_run_count,
    sync_run_try_count,
)

MAX_MARK_ROWS = 2000  # grouped rows for one history page (at most 200 runs)
MAX_REFUSALS = 50
MAX_TASK_ERRORS = 50
MAX_TRY_ROWS = 2000
MAX_EMPTY_VISITS = 200
MAX_PENDING = 200
ERROR_CHARS = 500

# What to do about an outbox row still to send, by (kind, state); README "When a run fails".
OUTBOX_ADVICE = {
    (AIM_UPDATE, "pending"): (
        "not sent yet: the push's retry sends it, or clear this run's push_learning_aims; "
        "it is re-checked against both systems before it goes"
    ),
    (AIM_UPDATE, "failed"): (
        "OneFile did not take it after the hook's retries (see the last error): fix the "
        "cause, then clear this run's push_learning_aims; a retry resends only such rows"
    ),
    (REVIEW_CREATE, "pending"): (
        "not sent yet: the push's retry sends it, or clear this run's push_reviews; it is "
        "re-planned from PICSWeb just before it goes"
    ),
    (REVIEW_CREATE, "failed"): (
        "OneFile did not take it after the hook's retries (see the last error): fix the "
        "cause, then clear this run's push_reviews; a retry resends only such rows"
    ),
}
UNKNOWN_CREATE_ADVICE = (
    "the visit was made and the review may have reached OneFile: the next push_reviews of "
    "any run looks for it by its VisitID and links it, never creating it twice; nothing "
    "to do by hand"
)
EMPTY_VISIT_ADVICE = (
    "OneFile holds a visit the sync made and could not use; delete it or reuse it in "
    "OneFile as each row says (the sync never uses it again; nothing to change in PICSWeb)"
)

_PRESENT: set[str] = set()


def present(conn: Connection, name: str) -> bool:
    """Whether table ``name`` exists (a later version's table; remembered once true)."""
    key = f"{conn.engine.url.render_as_string(hide_password=True)} {name}"
    if key in _PRESENT:
        return True
    if inspect(conn).has_table(name):
        _PRESENT.add(key)
        return True
    return False


# ----- the UK day ------------------------------------------------------------------------------
def uk_day(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, Any] | None:
    """The UK day a run covers (:func:`picsweb_sync.onefile.ukdates.covered_day`), named by the UK
    date it starts on, with its span for a tooltip."""
    day = covered_day(start, end)
    if day is None:
        return None
    begins, ends, _ = day
    return {
        "day": begins.date(),
        "label": begins.strftime("%a %d %b %Y"),
        "span": f"{begins:%d %b %H:%M} – {ends:%d %b %H:%M} UK",
    }


# ----- the history's marks ---------------------------------------------------------------------
def errors_statement(run_ids: Sequence[str]) -> Select:
    e = sync_task_error.c
    return (
        select(
            e.run_id,
            e.task,
            func.count().label("failed"),
            func.max(e.try_number).label("last_try"),
        )
        .where(e.run_id.in_(run_ids))
        .group_by(e.run_id, e.task)
        .order_by(e.run_id, e.task)
        .limit(MAX_MARK_ROWS)
    )


def tries_statement(run_ids: Sequence[str]) -> Select:
    t = sync_run_try_count.c
    return (
        select(t.run_id, t.stage, func.max(t.attempt).label("tries"))
        .where(t.run_id.in_(run_ids))
        .group_by(t.run_id, t.stage)
        .having(func.max(t.attempt) > 1)
        .order_by(t.run_id, t.stage)
        .limit(MAX_MARK_ROWS)
    )


def refusals_count_statement(run_ids: Sequence[str]) -> Select:
    r = sync_load_refusal.c
    return (
        select(r.run_id, r.stage, func.count().label("refusals"))
        .where(r.run_id.in_(run_ids))
        .group_by(r.run_id, r.stage)
        .order_by(r.run_id, r.stage)
        .limit(MAX_MARK_ROWS)
    )


def recovered_statement(table: Any, run_ids: Sequence[str]) -> Select:
    """Creates ``push_reviews`` recovered, per run (``table``: every try, or the latest)."""
    c = table.c
    return (
        select(c.run_id, func.sum(c.value).label("recovered"))
        .where(c.run_id.in_(run_ids), c.stage == "push_reviews", c.name == "recovered")
        .group_by(c.run_id)
        .order_by(c.run_id)
        .limit(MAX_MARK_ROWS)
    )


def marks_of(
    conn: Connection, run_ids: Sequence[str], finished: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per run: ``retried`` (task -> tries known), ``refused`` (load -> refusals),
    ``recovered`` (creates recovered); only runs with a mark. A task is retried when it
    had two tries or more: two failed tries, a failed try numbered 2 or more (Airflow's
    try number), a failed try in a run that then succeeded (``finished``), or counts
    recorded twice (a rerun)."""
    marks: dict[str, dict[str, Any]] = {}
    if not run_ids:
        return marks

    def mark(run_id: str) -> dict[str, Any]:
        return marks.setdefault(run_id, {"retried": {}, "refused": {}, "recovered": 0})

    for run_id, task, failed, last_try in conn.execute(errors_statement(run_ids)):
        tries = max(int(failed), int(last_try or 0)) + (1 if run_id in finished else 0)
        if tries > 1:
            retried = mark(run_id)["retried"]
            retried[task] = max(retried.get(task, 0), tries)
    if present(conn, sync_run_try_count.name):
        for run_id, stage, tries in conn.execute(tries_statement(run_ids)):
            task = stage.split("[", 1)[0]
            retried = mark(run_id)["retried"]
            retried[task] = max(retried.get(task, 0), int(tries))
        recovered = conn.execute(recovered_statement(sync_run_try_count, run_ids)).all()
    else:
        recovered = []
    recovered += conn.execute(recovered_statement(sync_run_count, run_ids)).all()
    for run_id, count in recovered:
        if count:
            mark(run_id)["recovered"] = max(mark(run_id)["recovered"], int(count))
    if present(conn, sync_load_refusal.name):
        for run_id, stage, refusals in conn.execute(refusals_count_statement(run_ids)):
            mark(run_id)["refused"][stage] = int(refusals)
    return marks


def with_marks(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history's rows with each run's UK day and marks (``marks``: a list of
    ``{"mark", "title"}``, empty for a run without any)."""
    finished = [row["run_id"] for row in rows if row.get("outcome") == "success"]
    found = marks_of(conn, [row["run_id"] for row in rows], finished)
    for row in rows:
        row["uk_day"] = uk_day(row.get("interval_start"), row.get("interval_end"))
        row["marks"] = _mark_list(found.get(row["run_id"]))
    return rows


def _mark_list(found: dict[str, Any] | None) -> list[dict[str, str]]:
    if not found:
        return []
    marks = []
    if found["retried"]:
        tasks = ", ".join(f"{task} ({n} tries)" for task, n in sorted(found["retried"].items()))
        marks.append({"mark": "retried", "title": f"retried: {tasks}"})
    if found["refused"]:
        loads = ", ".join(sorted(found["refused"]))
        marks.append({"mark": "refused", "title": f"refused stale data: {loads}"})
    if found["recovered"]:
        n = found["recovered"]
        marks.append({"mark": "recovered", "title": f"recovered {n} create(s) of unknown outcome"})
    return marks


# ----- one run ---------------------------------------------------------------------------------
def refusals_statement(run_id: str) -> Select:
    r = sync_load_refusal.c
    return (
        select(
            r.stage,
            r.try_number,
            r.kind,
            r.newer_run_id,
            r.newer_extracted_at,
            r.extracted_at,
            r.reason,
            r.refused_at,
        )
        .where(r.run_id == run_id)
        .order_by(r.refused_at.desc())
        .limit(MAX_REFUSALS)
    )


def later_tries_statement(run_id: str) -> Select:
    """When each stage of the run last recorded its counts (a load that refused and was
    later loaded)."""
    t = sync_run_try_count.c
    return (
        select(t.stage, func.max(t.recorded_at).label("recorded_at"))
        .where(t.run_id == run_id)
        .group_by(t.stage)
        .order_by(t.stage)
        .limit(MAX_TRY_ROWS)
    )


def task_errors_statement(run_id: str) -> Select:
    e = sync_task_error.c
    return (
        select(e.task, e.try_number, e.error, e.failed_at)
        .where(e.run_id == run_id)
        .order_by(e.failed_at.desc())
        .limit(MAX_TASK_ERRORS)
    )


def try_counts_statement(run_id: str) -> Select:
    t = sync_run_try_count.c
    return (
        select(t.stage, t.attempt, t.name, t.value, t.recorded_at)
        .where(t.run_id == run_id)
        .order_by(t.stage, t.attempt, t.name)
        .limit(MAX_TRY_ROWS)
    )


def empty_visits_statement(run_id: str) -> Select:
    e = sync_empty_visit.c
    shown = ("visit_id", "learner_id", "organisation_id", "review_id", "visit_from", "reason")
    return (
        select(*(e[name] for name in shown), e.what_to_do, e.recorded_at)
        .where(e.run_id == run_id)
        .order_by(e.empty_visit_id.desc())
        .limit(MAX_EMPTY_VISITS)
    )


def pending_statement(run_id: str) -> Select:
    o = sync_outbox.c
    shown = ("outbox_id", "kind", "target_id", "state", "attempts", "last_error", "updated_at")
    return (
        select(*(o[name] for name in shown), o.visit_id, o.result_id)
        .where(o.run_id == run_id, or_(o.state == "pending", o.state == "failed"))
        .order_by(o.outbox_id)
        .limit(MAX_PENDING)
    )


def outbox_advice(kind: str, state: str, visit_id: Any, result_id: Any) -> str:
    """What to do about one outbox row still to send (one sentence per kind of row)."""
    if kind == REVIEW_CREATE and visit_id is not None and result_id is None:
        return UNKNOWN_CREATE_ADVICE
    return OUTBOX_ADVICE.get((kind, state), "the next try of this run's push sends it")


def _tries(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """The stages with more than one try, each try's counts in order."""
    stages: dict[str, dict[int, dict[str, Any]]] = {}
    for stage, attempt, name, value, recorded in conn.execute(try_counts_statement(run_id)):
        one = stages.setdefault(stage, {}).setdefault(
            attempt, {"attempt": attempt, "recorded_at": recorded, "counts": {}}
        )
        one["counts"][name] = int(value)
    return [
        {"stage": stage, "tries": [by[a] for a in sorted(by)]}
        for stage, by in sorted(stages.items())
        if len(by) > 1
    ]


def _refusals(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(refusals_statement(run_id))]
    last = {}
    if rows and present(conn, sync_run_try_count.name):
        last = dict(conn.execute(later_tries_statement(run_id)).all())
    for row in rows:
        loaded = last.get(row["stage"])
        row["loaded_later_at"] = loaded if loaded and loaded > row["refused_at"] else None
    return rows


def in_all_and_latest(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's counts beside its rerun's (``latest_try``), one row per count that a
    rerun can tell apart; empty when no task of the run was rerun."""
    latest = summary.get("latest_try") or {}
    if not latest:
        return []
    return [
        {"key": key, "in_all": summary.get(key, 0), "latest": latest.get(key)}
        for key in SUMMARY_KEYS
        if key in latest
    ]


def run_story(conn: Connection, run_id: str, summary: dict[str, Any] | None) -> dict[str, Any]:
    """What the run's page adds to the counts: refusals, tries, task errors, empty visits,
    outbox rows still pending with what to do."""
    story: dict[str, Any] = {
        "refusals": [],
        "tries": [],
        "reruns": dict((summary or {}).get("reruns") or {}),
        "in_all_and_latest": in_all_and_latest(summary or {}),
        "empty_visits": [],
        "empty_visit_advice": EMPTY_VISIT_ADVICE,
    }
    if present(conn, sync_load_refusal.name):
        story["refusals"] = _refusals(conn, run_id)
    if present(conn, sync_run_try_count.name):
        story["tries"] = _tries(conn, run_id)
    story["task_errors"] = [
        {**dict(r._mapping), "error": (r.error or "")[:ERROR_CHARS]}
        for r in conn.execute(task_errors_statement(run_id))
    ]
    if present(conn, sync_empty_visit.name):
        story["empty_visits"] = [
            dict(r._mapping) for r in conn.execute(empty_visits_statement(run_id))
        ]
    pending = []
    for r in conn.execute(pending_statement(run_id)):
        row = dict(r._mapping)
        row["what_to_do"] = outbox_advice(r.kind, r.state, r.visit_id, r.result_id)
        pending.append(row)
    story["outbox_pending"] = pending
    return story


def all_statements() -> dict[str, Select]:
    ids = ["r", "s"]
    return {
        "marks_errors": errors_statement(ids),
        "marks_tries": tries_statement(ids),
        "marks_refusals": refusals_count_statement(ids),
        "marks_recovered": recovered_statement(sync_run_try_count, ids),
        "marks_recovered_latest": recovered_statement(sync_run_count, ids),
        "refusals": refusals_statement("r"),
        "later_tries": later_tries_statement("r"),
        "task_errors": task_errors_statement("r"),
        "try_counts": try_counts_statement("r"),
        "empty_visits": empty_visits_statement("r"),
        "pending": pending_statement("r"),
    }
