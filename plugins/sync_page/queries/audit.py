"""The audit search: every field change the sync made to a learner or a review.

A search first resolves what it asks for in PICSWeb (a trainee by ID, OneFile learner ID or
name, or a review by either ID) to the keys the audit rows carry (:class:`Subjects`), then
reads those rows newest first, paged by ``(changed_at, audit_id)`` through
``ix_sync_audit_entity_entity_key_changed_at``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import sync_audit
from sync_page.queries.page import (
    DIRECTIONS,
    BadRequest,
    Page,
    bounded,
    decode_cursor,
    encode_cursor,
)

# Bounds of the search (a page's changes; the learners found; the keys of one kind).
MAX_AUDIT = 500
DEFAULT_AUDIT = 100
MAX_LEARNERS = 50
MAX_KEYS = 1000  # entity keys of one kind in one IN list (SQL Server's limit is far above)
SEARCH_KINDS = ("auto", "trainee", "learner", "name", "review")


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
