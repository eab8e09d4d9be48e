"""One run's drift report as the sync page shows it: "what still differs" between OneFile
and PICSWeb after the run, and why.

:func:`drift_summary` gives the counts by reason (the closed list's order, unexplained
first, each with its label and what to do) and by field, and whether the report ran at
all (a dry run writes nothing and has none; a run before ``report_drift`` has none yet; a
report that found nothing has counts and no rows). :func:`drift_page` gives one keyset
page of the rows (``drift_id`` order, never OFFSET, at most :data:`MAX_DRIFT`), each with
its learner from PICSWeb: one bounded look-up per page, never one per row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from sync_page.drift_labels import (
    REASONS,
    entity_label,
    field_label,
    reason_label,
    what_to_do,
)
from sync_page.drift_statements import (
    CSV_COLUMNS,
    CURSOR_KINDS,
    DEFAULT_DRIFT,
    ENTITIES,
    MAX_DRIFT,
    DriftFilters,
    all_statements,
    drift_counts_statement,
    drift_learners_statement,
    drift_rows_statement,
    report_counts_statement,
)
from sync_page.queries.page import Page, bounded, decode_cursor, encode_cursor

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_DRIFT",
    "ENTITIES",
    "MAX_DRIFT",
    "REASONS",
    "DriftFilters",
    "all_statements",
    "drift_page",
    "drift_summary",
    "no_report_note",
]

MAX_INT = 2_147_483_647  # PICSWeb's INT keys (trainee_id)


def no_report_note(run: dict[str, Any], reported: bool) -> str:
    """Why a run shows no difference: a dry run, no report yet, or nothing differs."""
    if run.get("dry_run"):
        return (
            "A dry run writes nothing, so it has no drift report: its preview is what it "
            "would change."
        )
    if not reported:
        return (
            "No drift report for this run: report_drift has not run for it (yet), or the "
            "run stopped before it."
        )
    return "Nothing differs: OneFile and PICSWeb agree on everything the rules manage."


def drift_summary(conn: Connection, run: dict[str, Any], has_table: bool = True) -> dict[str, Any]:
    """The run's counts by reason and by field (``conn``: staging), labelled for a person.

    ``has_table``: whether staging holds ``sync_drift`` yet (a sync older than the drift
    report has none: no report, not an error)."""
    run_id = run["run_id"]
    groups: list[Any] = []
    reported = False
    if has_table and not run.get("dry_run"):
        groups = list(conn.execute(drift_counts_statement(run_id)))
        reported = bool(groups) or bool(list(conn.execute(report_counts_statement(run_id))))
    per_reason: dict[str, int] = {}
    per_field: dict[tuple[str, str], dict[str, Any]] = {}
    for g in groups:
        n = int(g.n)
        per_reason[g.reason] = per_reason.get(g.reason, 0) + n
        found = per_field.setdefault(
            (g.entity, g.field),
            {
                "entity": g.entity,
                "entity_label": entity_label(g.entity),
                "field": g.field,
                "field_label": field_label(g.field),
                "count": 0,
                "unexplained": 0,
            },
        )
        found["count"] += n
        if g.reason == "unexplained":
            found["unexplained"] += n
    order = {reason: n for n, reason in enumerate(REASONS)}
    reasons = sorted(set(REASONS) | set(per_reason), key=lambda r: (order.get(r, len(order)), r))
    by_reason = [
        {
            "reason": reason,
            "label": reason_label(reason),
            "what_to_do": what_to_do(reason),
            "count": per_reason.get(reason, 0),
            "highlight": reason == "unexplained" and per_reason.get(reason, 0) > 0,
        }
        for reason in reasons
        if reason in per_reason or reason == "unexplained"
    ]
    by_field = sorted(
        per_field.values(),
        key=lambda f: (
            -f["unexplained"],
            ENTITIES.index(f["entity"]) if f["entity"] in ENTITIES else len(ENTITIES),
            -f["count"],
            f["field"],
        ),
    )
    total = sum(per_reason.values())
    return {
        "reported": reported,
        "total": total,
        "unexplained": per_reason.get("unexplained", 0),
        "by_reason": by_reason if reported else [],
        "by_field": by_field,
        "note": None if total else no_report_note(run, reported),
    }


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _describe(picsweb: Connection, rows: list[dict[str, Any]]) -> None:
    """Set each row's ``learner`` (name) and, when the row lacks it, ``trainee_id``, from
    PICSWeb: by trainee ID, else by OneFile learner ID."""
    trainee_ids = sorted({r["trainee_id"] for r in rows if r["trainee_id"] is not None})
    trainee_ids = [t for t in trainee_ids if 0 < t <= MAX_INT]
    learner_ids = sorted(
        {r["learner_id"] for r in rows if r["trainee_id"] is None and r["learner_id"] is not None}
    )
    by_trainee: dict[int, Any] = {}
    by_learner: dict[int, Any] = {}
    if trainee_ids or learner_ids:
        for t in picsweb.execute(drift_learners_statement(trainee_ids, learner_ids)):
            by_trainee[int(t.trainee_id)] = t
            if t.onefile_learner_id is not None:
                by_learner[int(t.onefile_learner_id)] = t
    for row in rows:
        found = None
        if row["trainee_id"] is not None:
            found = by_trainee.get(row["trainee_id"])
        elif row["learner_id"] is not None:
            found = by_learner.get(row["learner_id"])
        row["learner"] = f"{found.first_name or ''} {found.surname or ''}".strip() if found else ""
        if found is not None and row["trainee_id"] is None:
            row["trainee_id"] = int(found.trainee_id)


def drift_page(
    run: dict[str, Any],
    staging: Connection | None,
    picsweb: Connection,
    filters: DriftFilters,
    limit: int | None = None,
    before: str | None = None,
) -> Page:
    """One page of the run's differences (``staging``: None when it holds no
    ``sync_drift`` yet), each with its learner from PICSWeb and its labels."""
    size = bounded(limit, DEFAULT_DRIFT, MAX_DRIFT)
    after = decode_cursor(before, CURSOR_KINDS)[0] if before else None
    extra = {"filters": filters.params()}
    if staging is None or run.get("dry_run"):
        return Page([], None, extra)
    found = list(staging.execute(drift_rows_statement(run["run_id"], filters, size + 1, after)))
    more = len(found) > size
    found = found[:size]
    rows = [
        {
            "reason": r.reason,
            "reason_label": reason_label(r.reason),
            "entity": r.entity,
            "learner": "",
            "trainee_id": _int(r.trainee_id),
            "learner_id": _int(r.learner_id),
            "onefile_id": _int(r.onefile_id),
            "picsweb_key": _int(r.picsweb_key),
            "field": r.field,
            "field_label": field_label(r.field),
            "onefile_value": r.onefile_value,
            "picsweb_value": r.picsweb_value,
            "detail": r.detail,
        }
        for r in found
    ]
    _describe(picsweb, rows)
    cursor = encode_cursor(int(found[-1].drift_id)) if more else None
    return Page(rows, cursor, extra)
