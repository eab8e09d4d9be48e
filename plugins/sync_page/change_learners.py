"""Who and what each of a run's changes is about: the learner (name, trainee ID, OneFile
learner ID) and the qualification or review, looked up in PICSWeb for one page of rows
(``sync_page.changes``) by the keys the rows carry, as ``sync_page.queries.resolve_*`` do
for the audit search: at most three bounded look-ups per page, never one per row."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage import picsweb_tables as pw

MAX_ROWS = 500  # sync_page.changes.MAX_CHANGES: the most rows of one page
MAX_INT = 2_147_483_647  # PICSWeb's INT keys


def tq_lookup_statement(tq_ids: list[int], aim_ids: list[int]) -> Select:
    """The qualifications of a page's keys (aims: ``onefile_learning_aim_id`` has no index
    in PICSWeb's schema, so at most one scan per page, never per row)."""
    tq = pw.trainee_qualification
    return (
        select(tq.c.tq_id, tq.c.trainee_id, tq.c.qualification_code, tq.c.onefile_learning_aim_id)
        .where(or_(tq.c.tq_id.in_(tq_ids), tq.c.onefile_learning_aim_id.in_(aim_ids)))
        .limit(2 * MAX_ROWS + 1)
    )


def review_lookup_statement(review_ids: list[int], onefile_ids: list[int]) -> Select:
    review = pw.review
    return (
        select(
            review.c.review_id,
            review.c.trainee_id,
            review.c.scheduled_date,
            review.c.onefile_system_id,
        )
        .where(or_(review.c.review_id.in_(review_ids), review.c.onefile_system_id.in_(onefile_ids)))
        .limit(2 * MAX_ROWS + 1)
    )


def trainee_lookup_statement(trainee_ids: list[int]) -> Select:
    t = pw.trainee
    return (
        select(t.c.trainee_id, t.c.first_name, t.c.surname, t.c.onefile_learner_id)
        .where(t.c.trainee_id.in_(trainee_ids))
        .limit(MAX_ROWS * 3 + 1)
    )


def all_statements() -> dict[str, Select]:
    return {
        "changes_tq_lookup": tq_lookup_statement([1], [2]),
        "changes_review_lookup": review_lookup_statement([1], [2]),
        "changes_trainee_lookup": trainee_lookup_statement([1]),
    }


def _number(text: Any, maximum: int | None = None) -> int | None:
    match = re.fullmatch(r"\d{1,18}", str(text))
    if not match:
        return None
    value = int(text)
    return value if maximum is None or value <= maximum else None


def describe(picsweb: Connection, rows: list[dict[str, Any]]) -> None:
    """Set each row's ``learner``, ``trainee_id``, ``onefile_learner_id`` and ``subject``
    (the qualification or review) from PICSWeb: three bounded look-ups per page."""
    tq_ids, aim_ids, review_ids, onefile_ids = set(), set(), set(), set()
    for row in rows:
        system, entity, key = row["system"], row["entity"], row["entity_key"]
        if entity == "trainee_qualification" and (n := _number(key, MAX_INT)) is not None:
            tq_ids.add(n)
        elif entity == "LearningAim" and (n := _number(key)) is not None:
            aim_ids.add(n)
        elif entity == "review" and (n := _number(key, MAX_INT)) is not None:
            review_ids.add(n)
        elif entity == "Review" and system == "onefile" and (n := _number(key)) is not None:
            onefile_ids.add(n)
        if row.get("_review") is not None and row["_review"] <= MAX_INT:
            review_ids.add(int(row["_review"]))
    quals, aims, reviews, of_reviews = {}, {}, {}, {}
    if tq_ids or aim_ids:
        for r in picsweb.execute(tq_lookup_statement(sorted(tq_ids), sorted(aim_ids))):
            quals[r.tq_id] = r
            if r.onefile_learning_aim_id is not None:
                aims[r.onefile_learning_aim_id] = r
    if review_ids or onefile_ids:
        for r in picsweb.execute(review_lookup_statement(sorted(review_ids), sorted(onefile_ids))):
            reviews[r.review_id] = r
            if r.onefile_system_id is not None:
                of_reviews[r.onefile_system_id] = r
    subjects = []
    for row in rows:
        entity, key = row["entity"], row["entity_key"]
        qual = review = None
        if entity == "trainee_qualification":
            qual = quals.get(_number(key))
        elif entity == "LearningAim":
            qual = aims.get(_number(key))
        elif entity == "review":
            review = reviews.get(_number(key))
        elif entity == "Review":
            review = of_reviews.get(_number(key)) or reviews.get(row.get("_review"))
        trainee = row.get("_trainee")
        if qual is not None:
            trainee = trainee or qual.trainee_id
            subject = f"qualification {qual.qualification_code}"
        elif review is not None:
            trainee = trainee or review.trainee_id
            subject = f"review {review.review_id} ({review.scheduled_date})"
        else:
            subject = "new review" if key.startswith("new (") else ""
        subjects.append((row, trainee, subject))
    trainee_ids = sorted({int(t) for _, t, _ in subjects if t is not None})
    learners = {}
    if trainee_ids:
        learners = {r.trainee_id: r for r in picsweb.execute(trainee_lookup_statement(trainee_ids))}
    for row, trainee, subject in subjects:
        learner = learners.get(int(trainee)) if trainee is not None else None
        row["learner"] = f"{learner.first_name} {learner.surname}".strip() if learner else ""
        row["trainee_id"] = int(trainee) if trainee is not None else None
        row["onefile_learner_id"] = learner.onefile_learner_id if learner else None
        row["subject"] = subject
