"""``push_reviews``: the review creates (rule 5: new PICSWeb reviews created in OneFile) sent
through the outbox a chunk at a time, each chunk planned again first; and its dry run.

A review create is planned again from the PICSWeb review as it is now (rule 5,
:func:`plan_again`) per chunk of :func:`~picsweb_sync.stages.push.recheck.chunk_calls` calls
(two a create), so a chunk is sent within the limit: one that is no longer eligible
(attendance entered, linked meanwhile, deleted) is not sent; one that was rescheduled is
sent with its new time. Before anything is sent, every create of unknown outcome, of any
run, is settled (:mod:`~picsweb_sync.stages.push.recovery`); one create's two calls and
their retries are :mod:`~picsweb_sync.stages.push.creates`; what was created is copied back
to PICSWeb at once by rule 6 (:mod:`~picsweb_sync.stages.push.reflect`).

A dry run plans again, read-only: nothing is sent, enqueued, settled or copied back; what
it would create, and what rule 6 would then write, is kept for the sync page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from onefile.hook import OneFileApiError
from picsweb_sync.onefile.payloads import review_create_items, review_create_payload
from picsweb_sync.rules import reviews
from picsweb_sync.run import dry_run, locks
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import merge as merge_stage
from picsweb_sync.stages.push import recheck
from picsweb_sync.stages.push.answers import bookkeeping, fence_check, fence_now
from picsweb_sync.stages.push.creates import (
    CREATE_ATTEMPTS,
    FAILING_CREATES_TO_STOP_RETRYING,
    create_review,
)
from picsweb_sync.stages.push.log import log
from picsweb_sync.stages.push.outcomes import finish, record_failure
from picsweb_sync.stages.push.recheck import CHECK_MAX_AGE_SECONDS, rows_where_in
from picsweb_sync.stages.push.recovery import settle_unknown_creates
from picsweb_sync.stages.push.reflect import reflect_uploaded_reviews, would_reflect
from picsweb_sync.storage import picsweb_tables, project_tables
from picsweb_sync.storage.project_tables import outbox as outbox_table

REVIEW_CREATE = project_tables.REVIEW_CREATE


def push_reviews(ctx: RunContext) -> dict[str, int]:
    if ctx.dry_run:
        return _dry_run_reviews(ctx)
    counts = {"recovered": 0, "sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.lock(locks.REVIEWS) as fence:
        project_tables.ensure_project_tables(ctx.staging, _PUSH_TABLES)
        with ctx.staging.connect() as conn:
            unknown = project_tables.unknown_creates(conn)
        hook = ctx.onefile() if not unknown.empty else None
        with bookkeeping(ctx, fence):
            counts["recovered"] = settle_unknown_creates(ctx, hook, unknown, fence)
        if not (ctx.plan.does_uploads and ctx.settings.upload_review_data):
            if counts["recovered"]:
                finish(ctx, "push_reviews", REVIEW_CREATE, counts)
            ctx.require_upload()  # after settling: a create of unknown outcome never waits
        with ctx.staging.begin() as conn:
            fence_check(fence, conn)
            uploads = project_tables.read_change_set(conn, ctx.run_id, "review_uploads")
            items = review_create_items(uploads)
            project_tables.enqueue_outbox(conn, ctx.run_id, REVIEW_CREATE, items)
            pending = project_tables.pending_outbox(conn, ctx.run_id, REVIEW_CREATE)
        if not pending.empty:
            hook = hook or ctx.onefile()
            with bookkeeping(ctx, fence):
                for outcome in send_review_creates(ctx, hook, pending, fence):
                    counts[outcome] += 1
        fence_now(fence)
        counts["fields_reflected"] = reflect_uploaded_reviews(ctx)
    return finish(ctx, "push_reviews", REVIEW_CREATE, counts)


_PUSH_TABLES = (outbox_table.sync_create_basis, outbox_table.sync_empty_visit)
"""Tables a review push writes that an older deployment's ``start_run`` did not create."""


def send_review_creates(
    ctx: RunContext, hook: Any, pending: pd.DataFrame, fence: Any = None
) -> Iterator[str]:
    """Send the ``pending`` creates a chunk at a time, each chunk planned again from
    PICSWeb as it is now (:func:`plan_again`) and sent within
    :data:`~picsweb_sync.stages.push.recheck.CHECK_MAX_AGE_SECONDS` of that: a chunk is
    :func:`~picsweb_sync.stages.push.recheck.chunk_calls` calls (two a create), and a create
    that would go later than that is put back for the next chunk. Yields each create's outcome."""
    per_chunk = max(1, recheck.chunk_calls(hook) // 2)
    queue = list(pending.itertuples(index=False))
    failing = 0  # creates in a row that failed every attempt
    while queue:
        chunk, queue = queue[:per_chunk], queue[per_chunk:]
        planned_at = recheck.monotonic()
        fresh = plan_again(ctx, [int(row.target_id) for row in chunk])
        for position, row in enumerate(chunk):
            if position and recheck.monotonic() - planned_at > CHECK_MAX_AGE_SECONDS:
                queue = chunk[position:] + queue  # planned too long ago: planned again
                break
            attempts = CREATE_ATTEMPTS if failing < FAILING_CREATES_TO_STOP_RETRYING else 1
            try:
                outcome = create_review(
                    ctx, hook, row, fresh.get(int(row.target_id)), fence, attempts
                )
            except OneFileApiError as exc:
                state = record_failure(ctx, row, exc, fence=fence)
                failing = failing + 1 if state == "failed" else 0
                yield state
                continue
            failing = 0
            yield outcome


def _dry_run_reviews(ctx: RunContext) -> dict[str, int]:
    """What :func:`push_reviews` would create now: each planned upload planned again from
    the PICSWeb review as it is now, and the fields rule 6 would then copy back onto those
    reviews (:func:`~picsweb_sync.stages.push.reflect.would_reflect`); nothing sent,
    enqueued, settled or written."""
    ctx.require_upload()
    counts = {"recovered": 0, "sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.staging.connect() as conn:
        uploads = project_tables.read_change_set(conn, ctx.run_id, "review_uploads")
    would_send = uploads.iloc[0:0]
    if not uploads.empty:
        review_ids = [int(r) for r in uploads["review_id"]]
        answer, fresh = _plan_again(ctx, review_ids)
        would_send = fresh[fresh["review_id"].isin(review_ids)]
        counts["sent"] = len(would_send)
        counts["skipped"] = len(review_ids) - len(would_send)
        for review_id, why in answer.items():
            if not isinstance(why, dict):
                log.info("dry run: PICSWeb review %s would not be sent: %s", review_id, why)
    reflected = None
    if ctx.settings.download_review_data and not would_send.empty:
        reflected = would_reflect(ctx, would_send).applied
    counts["fields_reflected"] = 0 if reflected is None else len(reflected)
    with ctx.staging.begin() as conn:
        dry_run.record_review_creates(conn, ctx.run_id, would_send, reflected)
    return finish(ctx, "push_reviews", REVIEW_CREATE, counts)


def plan_again(ctx: RunContext, review_ids: list[int]) -> dict[int, dict[str, Any] | str]:
    """Rule 5 applied again, now, to these PICSWeb reviews: review ID -> the payload to send,
    or the reason it can no longer be sent."""
    return _plan_again(ctx, review_ids)[0]


def _plan_again(
    ctx: RunContext, review_ids: list[int]
) -> tuple[dict[int, dict[str, Any] | str], pd.DataFrame]:
    """:func:`plan_again`, and the ``review_uploads`` rows of the reviews still to send."""
    plan, current, trainees = merge_stage.upload_plan(
        ctx, lambda conn: rows_where_in(conn, picsweb_tables.review, "review_id", review_ids)
    )
    answer: dict[int, dict[str, Any] | str] = {
        int(review_id): "the PICSWeb review was deleted" for review_id in review_ids
    }
    joined = current.merge(
        trainees[["trainee_id", "onefile_learner_id", "main_officer_id"]],
        on="trainee_id",
        how="left",
    )
    for review_id, why in zip(
        joined["review_id"], reviews.review_upload_eligibility(joined), strict=True
    ):
        if not pd.isna(why):
            answer[int(review_id)] = f"no longer eligible for upload ({why.replace('_', ' ')})"
    for review_id, why in zip(plan.rejects["review_id"], plan.rejects["reason"], strict=True):
        answer[int(review_id)] = f"cannot be uploaded now: {why}"
    for upload in plan.uploads.itertuples(index=False):
        answer[int(upload.review_id)] = review_create_payload(upload)
    return answer, plan.uploads
