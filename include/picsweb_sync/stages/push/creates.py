"""One review create: its Visit call, then its Review call, each tried again within the
task when it fails for a reason worth retrying, and never made twice.

**Exactly once.** Creating a review is two calls (Visit, then Review). The VisitID is
recorded in the outbox *before* the Review call, alone, in a transaction of its own (with
the fence's check): the only write a create waits for. A row with a VisitID and no Review
ID is a create whose outcome is unknown, settled before any create by every review push
(:mod:`~picsweb_sync.stages.push.recovery`); a create is never repeated while its outcome is
unknown.

**A failed create is settled in the same try.** A Visit or Review call that fails for a
reason worth retrying (a server fault, no answer, a 429 the hook gave up on) is tried again
within the task, :data:`CREATE_ATTEMPTS` times in all with the hook's backoff: after a
Review call that may have reached OneFile, the review is first looked for
(:func:`~picsweb_sync.stages.push.recovery.find_created_review`) and linked if found, else
the Review call is sent again on the same visit. So a transient 5xx costs seconds, not
Airflow's retry delay. After :data:`FAILING_CREATES_TO_STOP_RETRYING` creates in a row
failed every attempt (OneFile is down), the rest are tried once each. Each create recovered
or re-sent is logged with its PICSWeb review, OneFile visit and review IDs
(:mod:`picsweb_sync.stages.push.log`). A visit made for a review that will not come is
recorded (:mod:`~picsweb_sync.stages.push.empty_visits`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from onefile.hook import OneFileApiError
from onefile.retries import full_jitter_backoff
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push import answers
from picsweb_sync.stages.push import log as push_log
from picsweb_sync.stages.push.answers import fence_check, fence_now, skip
from picsweb_sync.stages.push.empty_visits import left_empty
from picsweb_sync.stages.push.outcomes import answered, may_have_happened, refused, worth_retrying
from picsweb_sync.stages.push.recovery import find_created_review
from picsweb_sync.storage import project_tables

CREATE_ATTEMPTS = 4
"""Calls a review create's Visit or Review call may take within one try: the first and
three more, each after the hook's backoff (1, 2, 4 s at most by default)."""
FAILING_CREATES_TO_STOP_RETRYING = 3
"""Creates in a row that failed every attempt, after which the rest are tried once each
(OneFile is down: retrying each would only stretch the try)."""


_sleep: Callable[[float], None] = time.sleep


def create_review(
    ctx: RunContext,
    hook: Any,
    row: Any,
    fresh: dict[str, Any] | str | None,
    fence: Any = None,
    attempts: int = CREATE_ATTEMPTS,
) -> str:
    """Send one pending create, re-checked: ``'sent'`` or ``'skipped'``.

    A Visit or Review call that fails for a reason worth retrying is tried again here, up to
    ``attempts`` calls each with the hook's backoff; after a Review call that may have
    reached OneFile, the review is looked for first
    (:func:`~picsweb_sync.stages.push.recovery.find_created_review`) and linked if found.
    Raises the last :class:`OneFileApiError` when the attempts run out or OneFile refuses
    the data (a visit made for a refused review is recorded as left empty)."""
    outbox_id = int(row.outbox_id)
    visit_id = None if pd.isna(row.visit_id) else int(row.visit_id)
    earlier_visit, retried_after = visit_id, None  # for the log of a re-send (push_log)
    if not isinstance(fresh, dict):
        why = f"the PICSWeb review {fresh or 'changed'}"
        if visit_id is not None:  # made by an earlier try whose review never came (settled)
            left_empty(ctx, row, row.payload, visit_id, f"not sent: {why}", fence)
        skip(ctx, outbox_id, f"not sent: {why}")
        return "skipped"
    if visit_id is not None and fresh != row.payload:
        # This row's earlier try made a visit whose review never reached OneFile (settled
        # above), and the review has changed since: that visit is left empty, a new one made.
        left_empty(
            ctx,
            row,
            row.payload,
            visit_id,
            "the PICSWeb review changed after its visit was made and before its review was",
            fence,
            restart=fresh,
        )
        visit_id = None
    payload = fresh if visit_id is None else row.payload
    for attempt in range(attempts):
        last = attempt == attempts - 1
        if attempt:
            _sleep(_backoff(hook, attempt - 1))
        if visit_id is None:
            fence_now(fence)
            try:
                visit_id = hook.create_visit(payload["visit"])
            except OneFileApiError as exc:
                if may_have_happened(exc):
                    left_empty(
                        ctx, row, payload, None, f"POST /Visit failed ({answered(exc)})", fence
                    )
                if last or not worth_retrying(exc):
                    raise
                push_log.trying_again(row, None, exc)
                retried_after = exc
                continue
            # Recorded before the Review call (see module doc), with what is being sent, in
            # one transaction (with the fence's check): the only write a create waits for.
            with ctx.staging.begin() as conn:
                fence_check(fence, conn)
                if payload != row.payload:
                    project_tables.set_payload(conn, outbox_id, payload)
                project_tables.mark_outbox(conn, outbox_id, "pending", visit_id=visit_id)
        else:
            fence_now(fence)
        try:
            onefile_id = hook.create_review({**payload["review"], "VisitID": visit_id})
        except OneFileApiError as exc:
            if not worth_retrying(exc):
                if refused(exc):  # OneFile refused the review: its visit holds none
                    left_empty(
                        ctx, row, payload, visit_id, f"POST /Review refused ({exc.message})", fence
                    )
                raise
            if may_have_happened(exc):
                found = find_created_review(hook, payload, visit_id)
                if found is not None:
                    answers.record_review_id(
                        ctx, outbox_id, int(row.target_id), found[0], basis_at=found[1]
                    )
                    how = f"its Review call failed ({exc}) but had reached OneFile"
                    push_log.recovered(row, found[0], visit_id, how)
                    return "sent"
            if last:
                raise
            push_log.trying_again(row, visit_id, exc)
            retried_after = exc
            continue
        answers.record_review_id(ctx, outbox_id, int(row.target_id), onefile_id)
        push_log.sent(row, onefile_id, visit_id, earlier_visit, attempt, retried_after)
        return "sent"
    raise AssertionError("unreachable: the last attempt returns or raises")


def _backoff(hook: Any, attempt: int) -> float:
    settings = getattr(hook, "settings", None)
    base = float(getattr(settings, "backoff_base_seconds", 1.0))
    cap = float(getattr(settings, "backoff_max_seconds", 60.0))
    return full_jitter_backoff(attempt + 1, base, cap)
