"""The merge tasks' stage: staging + PICSWeb in, change sets out.

The rules themselves are pure functions in :mod:`picsweb_sync.rules` (``qualifications``,
``reviews``: pandas only, no database, no Airflow); this module does the merge tasks' I/O
around them, beside ``extract``, ``load`` and ``push``: it reads their inputs and stores what
they decided, replacing the run's change set so a rerun of a merge task decides again from
the same staged data. Each change set is stored with its basis (``freshness.merge_basis``:
when the staged OneFile rows it was computed from were extracted), in the same transaction,
so the load judges the change set by the data it really came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.rules import qualifications, reviews
from picsweb_sync.run import freshness
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables
from picsweb_sync.storage.sqlframes import read_frame

log = logging.getLogger(__name__)


def merge_qualifications(ctx: RunContext) -> dict[str, int]:
    """Rules 1-4 and the learning-aim links."""
    ctx.require_qualifications()
    with ctx.staging.connect() as conn:
        basis = freshness.merge_basis(conn, ctx.run_id, freshness.QUALIFICATIONS)
        learners = project_tables.read_staging(conn, ctx.run_id, "learners", with_raw=False)
        aims = project_tables.read_staging(conn, ctx.run_id, "learning_aims", with_raw=False)
    with ctx.picsweb.connect() as conn:
        trainees = read_frame(conn, sa.select(pw.trainee))
        quals = read_frame(conn, sa.select(pw.trainee_qualification))
        units = read_frame(conn, sa.select(pw.trainee_qualification_unit))
    merged = qualifications.merge_qualifications(learners, aims, trainees, quals, units)
    with ctx.staging.begin() as conn:
        project_tables.replace_change_set(
            conn, ctx.run_id, "picsweb_updates", merged.picsweb_updates, "qualifications"
        )
        project_tables.replace_change_set(
            conn, ctx.run_id, "onefile_updates", merged.onefile_updates
        )
        freshness.record_change_basis(conn, ctx.run_id, freshness.QUALIFICATIONS, basis)
    return _counts(ctx, "merge_qualifications", merged.counts)


def merge_reviews(ctx: RunContext) -> dict[str, int]:
    """Rule 6: OneFile reviews update or create PICSWeb reviews."""
    ctx.require_download()
    window = (ctx.plan.review_from, ctx.plan.review_to)
    with ctx.staging.connect() as conn:
        basis = freshness.merge_basis(conn, ctx.run_id, freshness.REVIEWS, window)
        staged = project_tables.read_staging(conn, ctx.run_id, "reviews", with_raw=False)
        assessors = project_tables.read_staging(conn, ctx.run_id, "assessors", with_raw=False)
        # A review this sync created in OneFile whose ID never reached PICSWeb (the upload
        # failed after the Review call) is that PICSWeb review, not a new one: the next push
        # finds it by its VisitID and links it. Downloading it would create a duplicate.
        ours = staged["visit_id"].isin(project_tables.unlinked_upload_visits(conn))
    review = pw.review
    with ctx.picsweb.connect() as conn:
        trainees = read_frame(conn, sa.select(pw.trainee))
        officers = read_frame(conn, sa.select(pw.officer))
        linked = read_frame(conn, sa.select(review).where(review.c.onefile_system_id.is_not(None)))
    merged = reviews.merge_reviews(staged[~ours], trainees, officers, assessors, linked)
    merged.counts["reviews_awaiting_upload_link"] = int(ours.sum())
    with ctx.staging.begin() as conn:
        project_tables.replace_change_set(
            conn, ctx.run_id, "picsweb_updates", merged.picsweb_updates, "reviews"
        )
        project_tables.replace_change_set(
            conn, ctx.run_id, "picsweb_review_inserts", merged.picsweb_review_inserts
        )
        freshness.record_change_basis(conn, ctx.run_id, freshness.REVIEWS, basis)
    return _counts(ctx, "merge_reviews", merged.counts)


def plan_review_uploads(ctx: RunContext) -> dict[str, int]:
    """Rule 5: which new PICSWeb reviews go to OneFile, and why the others cannot.

    The plan is a change set (``review_uploads``), never the outbox: only a real
    ``push_reviews`` enqueues it, so a dry run's plan is recorded for the sync page and can
    never be sent by any later run."""
    ctx.require_upload()
    review = pw.review
    unlinked = sa.select(review).where(review.c.onefile_system_id.is_(None))
    plan, _, _ = upload_plan(ctx, lambda conn: read_frame(conn, unlinked))
    rejects = pd.DataFrame(
        {
            "entity": "review",
            "source_id": plan.rejects["review_id"].map(str),
            "reason": plan.rejects["reason"],
            "raw": None,
        }
    )
    with ctx.staging.begin() as conn:
        project_tables.replace_change_set(conn, ctx.run_id, "review_uploads", plan.uploads)
        project_tables.record_rejects(conn, ctx.run_id, "plan_review_uploads", rejects)
    for reason, n in plan.rejects.groupby("reason").size().items():
        log.warning("%d PICSWeb review(s) cannot be uploaded: %s", n, reason)
    return _counts(
        ctx, "plan_review_uploads", {"uploads": len(plan.uploads), "rejects": len(rejects)}
    )


def upload_plan(
    ctx: RunContext, read_reviews: Callable[[sa.Connection], pd.DataFrame]
) -> tuple[reviews.ReviewUploadPlan, pd.DataFrame, pd.DataFrame]:
    """Rule 5 over the PICSWeb reviews ``read_reviews`` returns, as PICSWeb holds them now,
    with the run's staged learners' organisations: (the plan, those reviews, the trainees).
    The planning task and the push's re-check just before sending both use it."""
    with ctx.picsweb.connect() as conn:
        candidates = read_reviews(conn)
        trainees = read_frame(conn, sa.select(pw.trainee))
        officers = read_frame(conn, sa.select(pw.officer))
    with ctx.staging.connect() as conn:
        learners = project_tables.read_staging(conn, ctx.run_id, "learners", with_raw=False)
    plan = reviews.plan_review_uploads(
        candidates,
        trainees,
        officers,
        ctx.settings.visit_type_id,
        learners[["learner_id", "organisation_id"]],
    )
    return plan, candidates, trainees


def _counts(ctx: RunContext, stage: str, counts: dict[str, int]) -> dict[str, int]:
    counts = {k: int(v) for k, v in counts.items()}
    with ctx.staging.begin() as conn:
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
    log.info("%s: %s", stage, counts)
    return counts
