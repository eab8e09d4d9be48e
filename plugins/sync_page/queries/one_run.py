"""One run's detail: its stages' counts, its field changes (or what a dry run would
change), its rejects grouped by kind, its conflicts, and its story (``sync_page.run_story``).

Each list is bounded (``MAX_*`` below).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables import sync_audit, sync_reject, sync_run, sync_run_count
from sync_page import run_story
from sync_page.queries.history import history_select, run_row
from sync_page.queries.page import DIRECTIONS

# Bounds of one run's lists.
MAX_COUNTS = 1000
MAX_FIELD_GROUPS = 500
MAX_REJECT_ROWS = 500
MAX_REJECT_COUNT = 100_000
MAX_REJECT_GROUPS = 200
MAX_CONFLICTS = 200
MAX_OUTBOX = 200


def reject_kind(reason: str | None) -> str:
    """A reject's kind: its reason up to the first " (" or ":" (the summary's contract)."""
    text = reason or ""
    cut = len(text)
    for mark in (" (", ":"):
        at = text.find(mark)
        if at != -1:
            cut = min(cut, at)
    return text[:cut].strip() or "(no reason)"


def run_statement(run_id: str) -> Select:
    return history_select().where(sync_run.c.run_id == run_id).limit(1)


def counts_statement(run_id: str) -> Select:
    return (
        select(sync_run_count.c.stage, sync_run_count.c.name, sync_run_count.c.value)
        .where(sync_run_count.c.run_id == run_id)
        .order_by(sync_run_count.c.stage, sync_run_count.c.name)
        .limit(MAX_COUNTS)
    )


def field_changes_statement(run_id: str) -> Select:
    changes = func.count().label("changes")
    return (
        select(sync_audit.c.system, sync_audit.c.entity, sync_audit.c.field, changes)
        .where(sync_audit.c.run_id == run_id)
        .group_by(sync_audit.c.system, sync_audit.c.entity, sync_audit.c.field)
        .order_by(sync_audit.c.system, sync_audit.c.entity, sync_audit.c.field)
        .limit(MAX_FIELD_GROUPS)
    )


def reject_rows_statement(run_id: str, limit: int = MAX_REJECT_ROWS) -> Select:
    return (
        select(
            sync_reject.c.stage,
            sync_reject.c.organisation_id,
            sync_reject.c.entity,
            sync_reject.c.source_id,
            sync_reject.c.reason,
            sync_reject.c.raw,
        )
        .where(sync_reject.c.run_id == run_id)
        .order_by(sync_reject.c.stage, sync_reject.c.reason, sync_reject.c.source_id)
        .limit(limit)
    )


def reject_total_statement(run_id: str) -> Select:
    """How many rejects the run has, counted up to MAX_REJECT_COUNT + 1 (then "more than")."""
    rows = (
        select(sync_reject.c.run_id)
        .where(sync_reject.c.run_id == run_id)
        .limit(MAX_REJECT_COUNT + 1)
        .subquery()
    )
    return select(func.count()).select_from(rows)


def conflicts_statement(run_id: str) -> Select:
    return (
        select(
            sync_reject.c.stage,
            sync_reject.c.entity,
            sync_reject.c.source_id,
            sync_reject.c.reason,
        )
        .where(sync_reject.c.run_id == run_id, sync_reject.c.reason.like("conflict%"))
        .order_by(sync_reject.c.stage, sync_reject.c.source_id)
        .limit(MAX_CONFLICTS)
    )


def _dry_run_changes(conn: Connection, run_id: str) -> tuple[list[dict], str | None]:
    """Changes per field a dry run WOULD make (``picsweb_sync.run.dry_run.would_change``),
    or none and why, when that is not available."""
    try:
        from picsweb_sync.run.dry_run import would_change  # lazy: written by another part
    except ImportError:
        return [], "what a dry run would change is not recorded by this version of the sync"
    try:
        found = would_change(conn, run_id)
    except Exception as exc:  # noqa: BLE001 - the page shows the rest of the run anyway
        conn.rollback()
        return [], f"what this dry run would change could not be read ({type(exc).__name__})"
    records = found.to_dict("records") if hasattr(found, "to_dict") else list(found or [])
    grouped: dict[tuple[str, str, str], int] = {}
    for rec in records:
        if not isinstance(rec, dict) or "field" not in rec:
            continue
        system = str(rec.get("system") or ("picsweb" if "table" in rec else "onefile"))
        entity = str(rec.get("entity") or rec.get("table") or "")
        key = (system, entity, str(rec["field"]))
        grouped[key] = grouped.get(key, 0) + int(rec.get("changes", 1) or 1)
    rows = [
        {"system": s, "entity": e, "field": f, "changes": n, "direction": DIRECTIONS.get(s, "")}
        for (s, e, f), n in sorted(grouped.items())
    ][:MAX_FIELD_GROUPS]
    return rows, None


def run_detail(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """Everything the run page shows, each list bounded; None for an unknown run."""
    row = conn.execute(run_statement(run_id)).first()
    if row is None:
        return None
    run = run_row(row)
    stages: dict[str, dict[str, int]] = {}
    for stage, name, value in conn.execute(counts_statement(run_id)):
        stages.setdefault(stage, {})[name] = int(value)
    note = None
    fields: list[dict[str, Any]] = []
    if not run["dry_run"]:
        fields = [
            {
                "system": r.system,
                "entity": r.entity,
                "field": r.field,
                "changes": int(r.changes),
                "direction": DIRECTIONS.get(r.system, ""),
            }
            for r in conn.execute(field_changes_statement(run_id))
        ]
    reject_total = int(conn.execute(reject_total_statement(run_id)).scalar_one())
    groups: dict[str, dict[str, Any]] = {}
    for r in conn.execute(reject_rows_statement(run_id)):
        kind = reject_kind(r.reason)
        group = groups.setdefault(kind, {"kind": kind, "count": 0, "rows": []})
        group["count"] += 1
        group["rows"].append(
            {
                "stage": r.stage,
                "organisation_id": r.organisation_id,
                "entity": r.entity,
                "source_id": r.source_id,
                "reason": r.reason,
                "raw": r.raw,
            }
        )
    reject_groups = sorted(groups.values(), key=lambda g: (-g["count"], g["kind"]))
    conflicts = [dict(r._mapping) for r in conn.execute(conflicts_statement(run_id))]
    run["uk_day"] = run_story.uk_day(run["interval_start"], run["interval_end"])
    summary = {**run["counts"], "latest_try": run["latest_try"], "reruns": run["reruns"]}
    story = run_story.run_story(conn, run_id, summary)  # outbox rows with what to do, ...
    if run["dry_run"]:  # last: a failed read must not spoil the queries above
        fields, note = _dry_run_changes(conn, run_id)
    return {
        "run": run,
        "stages": [{"stage": s, "counts": c} for s, c in stages.items()],
        "field_changes": fields,
        "field_changes_note": note,
        "rejects": {
            "total": reject_total,
            "shown": sum(g["count"] for g in reject_groups),
            "groups": reject_groups[:MAX_REJECT_GROUPS],
        },
        "conflicts": conflicts,
        **story,
    }
