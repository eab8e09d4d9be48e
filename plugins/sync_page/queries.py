"""The sync page's reads: bounded, indexed queries over the ``sync_*`` tables and PICSWeb.

Every statement has a LIMIT (``MAX_*`` below) and pages by key (keyset paging, never
OFFSET): the run history by ``(started_at, run_id)`` through ``ix_sync_run_started_at``;
the audit search by ``(changed_at, audit_id)`` after resolving a learner or a review to
the keys the audit rows carry, through ``ix_sync_audit_entity_entity_key_changed_at``.
Every statement compiles for SQL Server too (tests/sync_page/test_queries.py).

What a real run writes to ``sync_audit`` (``picsweb_sync.storage.picsweb_writes``, ``picsweb_sync.stages.push``):

==========  ========================  ============================================
system      entity                    entity_key
==========  ========================  ============================================
picsweb     trainee_qualification     PICSWeb ``tq_id``
picsweb     review                    PICSWeb ``review_id``
onefile     LearningAim               OneFile learning aim ID (``tq.onefile_learning_aim_id``)
onefile     Review                    OneFile review ID (``review.onefile_system_id``)
==========  ========================  ============================================
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.engine import Connection

from picsweb_sync.run.summary import SUMMARY_KEYS
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import (
    sync_audit,
    sync_reject,
    sync_run,
    sync_run_count,
    sync_run_summary,
)
from sync_page import run_story

# Bounds of every query (a page's rows; a learner search's matches; a run's detail lists).
MAX_RUNS = 200
DEFAULT_RUNS = 50
MAX_CHART_RUNS = 1000
MAX_AUDIT = 500
DEFAULT_AUDIT = 100
MAX_LEARNERS = 50
MAX_KEYS = 1000  # entity keys of one kind in one IN list (SQL Server's limit is far above)
MAX_COUNTS = 1000
MAX_FIELD_GROUPS = 500
MAX_REJECT_ROWS = 500
MAX_REJECT_COUNT = 100_000
MAX_REJECT_GROUPS = 200
MAX_CONFLICTS = 200
MAX_OUTBOX = 200

# The integer counts of the run summary (the contract).
SUMMARY_COUNTS = SUMMARY_KEYS
RUN_TYPES = ("scheduled", "manual", "backfill", "asset_triggered", "operator_triggered")
# Which way a change went, by the system written.
DIRECTIONS = {"picsweb": "OneFile → PICSWeb", "onefile": "PICSWeb → OneFile"}
SEARCH_KINDS = ("auto", "trainee", "learner", "name", "review")


class BadRequest(ValueError):
    """A parameter the page cannot use (a malformed cursor, an unknown filter)."""


# ----- cursors: opaque keyset positions ------------------------------------------------------
def encode_cursor(*parts: Any) -> str:
    text = json.dumps([p.isoformat() if isinstance(p, dt.datetime) else p for p in parts])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The parts of a cursor made by :func:`encode_cursor`, checked against ``kinds``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("wrong shape")
        values = []
        for part, kind in zip(parts, kinds, strict=True):
            if kind is dt.datetime:
                values.append(dt.datetime.fromisoformat(part))
            elif isinstance(part, kind) and not isinstance(part, bool):
                values.append(part)
            else:
                raise ValueError(f"{part!r} is not a {kind.__name__}")
        return values
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"bad cursor: {exc}") from None


def bounded(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    return min(limit, maximum)


# ----- run history ---------------------------------------------------------------------------
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


def _history_select() -> Select:
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


def _run_row(row: Any) -> dict[str, Any]:
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
    stmt = _history_select()
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


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    extra: dict[str, Any] = field(default_factory=dict)


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
    rows = [_run_row(r) for r in conn.execute(stmt)]
    more = len(rows) > size
    rows = run_story.with_marks(conn, rows[:size])  # the UK day and the marks of each run
    cursor = encode_cursor(rows[-1]["started_at"], rows[-1]["run_id"]) if more else None
    return Page(rows, cursor)


def chart_statement(since: dt.datetime, limit: int = MAX_CHART_RUNS) -> Select:
    return (
        _history_select()
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
        run = _run_row(row)
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


# ----- one run -------------------------------------------------------------------------------
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
    return _history_select().where(sync_run.c.run_id == run_id).limit(1)


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
    run = _run_row(row)
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


# ----- audit search --------------------------------------------------------------------------
@dataclass
class Subjects:
    """What a search resolved to: the learners (or reviews) found, and per audited
    (system, entity) the keys whose changes to list, each with what it belongs to."""

    learners: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    truncated: bool = False

    def add(self, system: str, entity: str, key: Any, label: str) -> None:
        if key is None:
            return
        bucket = self.keys.setdefault((system, entity), {})
        if len(bucket) >= MAX_KEYS:
            self.truncated = True
            return
        bucket[str(int(key))] = label


def _digits(q: str) -> int | None:
    text = q.strip()
    if re.fullmatch(r"\d{1,18}", text):
        return int(text)
    return None


def learner_statement(q: str, by: str) -> Select:
    """PICSWeb trainees matching ``q`` (at most MAX_LEARNERS + 1, to tell there are more)."""
    t = pw.trainee
    number = _digits(q)
    columns = (t.c.trainee_id, t.c.first_name, t.c.surname, t.c.onefile_learner_id)
    stmt = select(*columns)
    if by in ("auto", "trainee", "learner") and number is not None:
        conditions = []
        if by in ("auto", "trainee") and number <= 2_147_483_647:
            conditions.append(t.c.trainee_id == number)
        if by in ("auto", "learner"):
            conditions.append(t.c.onefile_learner_id == number)
        stmt = stmt.where(or_(*conditions) if conditions else false())
    elif by in ("auto", "name"):
        terms = [w for w in re.split(r"\s+", q.strip().lower()) if w][:4]
        if not terms:
            raise BadRequest("give a trainee ID, a OneFile learner ID or a name")
        for term in terms:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", term) + "%"
            stmt = stmt.where(
                or_(
                    func.lower(t.c.first_name).like(pattern, escape="\\"),
                    func.lower(t.c.surname).like(pattern, escape="\\"),
                )
            )
    else:
        raise BadRequest(f"{by} search needs a number")
    return stmt.order_by(t.c.surname, t.c.first_name, t.c.trainee_id).limit(MAX_LEARNERS + 1)


def qualifications_statement(trainee_ids: list[int]) -> Select:
    tq = pw.trainee_qualification
    return (
        select(tq.c.tq_id, tq.c.trainee_id, tq.c.qualification_code, tq.c.onefile_learning_aim_id)
        .where(tq.c.trainee_id.in_(trainee_ids))
        .order_by(tq.c.tq_id)
        .limit(MAX_KEYS + 1)
    )


def reviews_statement(trainee_ids: list[int]) -> Select:
    review = pw.review
    return (
        select(review.c.review_id, review.c.trainee_id, review.c.onefile_system_id)
        .where(review.c.trainee_id.in_(trainee_ids))
        .order_by(review.c.review_id.desc())
        .limit(MAX_KEYS + 1)
    )


def review_statement(number: int) -> Select:
    """A review by its PICSWeb or its OneFile review ID, with its trainee."""
    review, t = pw.review, pw.trainee
    conditions = [review.c.onefile_system_id == number]
    if number <= 2_147_483_647:
        conditions.append(review.c.review_id == number)
    return (
        select(
            review.c.review_id,
            review.c.onefile_system_id,
            review.c.scheduled_date,
            t.c.trainee_id,
            t.c.first_name,
            t.c.surname,
        )
        .select_from(review.join(t, t.c.trainee_id == review.c.trainee_id))
        .where(or_(*conditions))
        .order_by(review.c.review_id)
        .limit(MAX_LEARNERS)
    )


def _chunks(values: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), MAX_KEYS):
        yield values[start : start + MAX_KEYS]


def resolve_learners(conn: Connection, q: str, by: str = "auto") -> Subjects:
    """Learners matching ``q`` and the keys of their qualifications and reviews."""
    subjects = Subjects()
    found = conn.execute(learner_statement(q, by)).all()
    if len(found) > MAX_LEARNERS:
        subjects.truncated = True
        found = found[:MAX_LEARNERS]
    names = {}
    for r in found:
        name = f"{r.first_name} {r.surname}".strip()
        names[r.trainee_id] = name
        subjects.learners.append(
            {
                "trainee_id": r.trainee_id,
                "name": name,
                "onefile_learner_id": r.onefile_learner_id,
            }
        )
    trainee_ids = list(names)
    if not trainee_ids:
        return subjects
    for chunk in _chunks(trainee_ids):
        quals = conn.execute(qualifications_statement(chunk))
        for r in quals:
            label = f"{names[r.trainee_id]}: qualification {r.qualification_code}"
            subjects.add("picsweb", "trainee_qualification", r.tq_id, label)
            subjects.add("onefile", "LearningAim", r.onefile_learning_aim_id, label)
        reviews = conn.execute(reviews_statement(chunk))
        for r in reviews:
            label = f"{names[r.trainee_id]}: review {r.review_id}"
            subjects.add("picsweb", "review", r.review_id, label)
            subjects.add("onefile", "Review", r.onefile_system_id, label)
    return subjects


def resolve_review(conn: Connection, q: str) -> Subjects:
    """A review by its PICSWeb review ID or its OneFile review ID."""
    number = _digits(q)
    if number is None:
        raise BadRequest("a review search needs a PICSWeb or OneFile review ID")
    subjects = Subjects()
    rows = conn.execute(review_statement(number)).all()
    for r in rows:
        label = f"{r.first_name} {r.surname}: review {r.review_id}"
        subjects.reviews.append(
            {
                "review_id": r.review_id,
                "onefile_review_id": r.onefile_system_id,
                "scheduled_date": r.scheduled_date,
                "trainee_id": r.trainee_id,
                "name": f"{r.first_name} {r.surname}",
            }
        )
        subjects.add("picsweb", "review", r.review_id, label)
        subjects.add("onefile", "Review", r.onefile_system_id, label)
    # A OneFile review the sync created whose PICSWeb link was never written still has
    # its own audit rows: search those keys too.
    subjects.add("onefile", "Review", number, f"OneFile review {number}")
    if number <= 2_147_483_647:
        subjects.add("picsweb", "review", number, f"PICSWeb review {number}")
    return subjects


def audit_statement(
    keys: dict[tuple[str, str], dict[str, str]],
    limit: int,
    before: tuple[dt.datetime, int] | None = None,
) -> Select:
    """The audit rows of ``keys``, newest first: each (system, entity) group is an
    ``entity = :e AND entity_key IN (...)`` range of the (entity, entity_key, changed_at)
    index."""
    a = sync_audit
    groups = [
        and_(a.c.system == system, a.c.entity == entity, a.c.entity_key.in_(sorted(values)))
        for (system, entity), values in sorted(keys.items())
        if values
    ]
    stmt = select(
        a.c.audit_id,
        a.c.run_id,
        a.c.system,
        a.c.entity,
        a.c.entity_key,
        a.c.field,
        a.c.old_value,
        a.c.new_value,
        a.c.changed_at,
    ).where(or_(*groups) if groups else false())
    if before is not None:
        changed, audit_id = before
        stmt = stmt.where(
            or_(a.c.changed_at < changed, and_(a.c.changed_at == changed, a.c.audit_id < audit_id))
        )
    return stmt.order_by(a.c.changed_at.desc(), a.c.audit_id.desc()).limit(limit)


def audit_search(
    picsweb: Connection,
    audit_conns: Sequence[Connection],
    q: str,
    by: str = "auto",
    limit: int | None = None,
    before: str | None = None,
) -> Page:
    """Every field change the sync made to what ``q`` finds, newest first, one page.

    ``by``: ``auto`` (a number is a trainee ID or a OneFile learner ID, text a name),
    ``trainee``, ``learner``, ``name`` or ``review`` (a PICSWeb or OneFile review ID).
    ``audit_conns``: the databases holding ``sync_audit`` (PICSWeb's, and staging's when
    that is another database); their rows are merged newest first.
    """
    if by not in SEARCH_KINDS:
        raise BadRequest(f"unknown search kind {by!r}; expected one of {SEARCH_KINDS}")
    q = (q or "").strip()
    if not q:
        raise BadRequest("give a trainee ID, a OneFile learner ID, a name or a review ID")
    if len(q) > 100:
        raise BadRequest("search text longer than 100 characters")
    size = bounded(limit, DEFAULT_AUDIT, MAX_AUDIT)
    position = tuple(decode_cursor(before, (dt.datetime, int))) if before else None
    subjects = resolve_review(picsweb, q) if by == "review" else resolve_learners(picsweb, q, by)
    rows: list[dict[str, Any]] = []
    if subjects.keys:
        stmt = audit_statement(subjects.keys, size + 1, position)
        for conn in audit_conns:
            rows.extend(dict(r._mapping) for r in conn.execute(stmt))
    rows.sort(key=lambda r: (r["changed_at"], r["audit_id"]), reverse=True)
    more = len(rows) > size
    rows = rows[:size]
    for row in rows:
        row["direction"] = DIRECTIONS.get(row["system"], "")
        row["subject"] = subjects.keys.get((row["system"], row["entity"]), {}).get(
            row["entity_key"], ""
        )
    cursor = encode_cursor(rows[-1]["changed_at"], rows[-1]["audit_id"]) if more else None
    extra = {
        "learners": subjects.learners,
        "reviews": subjects.reviews,
        "truncated": subjects.truncated,
        "keys": sum(len(v) for v in subjects.keys.values()),
    }
    return Page(rows, cursor, extra)


# Every statement above, for the test that checks each has a LIMIT and compiles for SQL
# Server (and the benchmark).
def all_statements() -> dict[str, Select]:
    keys = {("picsweb", "trainee_qualification"): {"1": ""}, ("onefile", "LearningAim"): {"2": ""}}
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).replace(tzinfo=None)
    return {
        "history": history_statement(DEFAULT_RUNS, (when, "r"), "manual", "success"),
        "history_dry_run": history_statement(DEFAULT_RUNS, None, "dry_run"),
        "chart": chart_statement(when),
        "run": run_statement("r"),
        "counts": counts_statement("r"),
        "field_changes": field_changes_statement("r"),
        "reject_rows": reject_rows_statement("r"),
        "conflicts": conflicts_statement("r"),
        "learner_by_id": learner_statement("42", "auto"),
        "learner_by_name": learner_statement("ann o_k", "name"),
        "audit": audit_statement(keys, DEFAULT_AUDIT, (when, 5)),
        "reject_total": reject_total_statement("r"),
        "qualifications": qualifications_statement([1, 2]),
        "reviews": reviews_statement([1, 2]),
        "review": review_statement(7),
        **run_story.all_statements(),
    }
