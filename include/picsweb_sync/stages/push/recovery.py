"""Creates of unknown outcome: found in OneFile by what was sent and linked, never sent again.

A row of the outbox with a VisitID and no Review ID is a create whose outcome is unknown:
its Review call may have reached OneFile before a crash (the VisitID is recorded before
that call, :mod:`~picsweb_sync.stages.push.creates`). Every review push, of any run, first
settles all such rows (:func:`settle_unknown_creates`): it looks for the review by what was
*sent* (:func:`find_created_review`: the learner, in the organisation the learner is in
*now*, looked up by ``GET /User/{id}``, and the recorded ``ScheduledFor``, told apart by the
VisitID; failing that, among all the learner's reviews), and links the one it finds to its
PICSWeb review whatever happened to that row since. An earlier run's create not found is
given up: its visit is left empty (:mod:`~picsweb_sync.stages.push.empty_visits`) and the
review is planned again by the next run that uploads. A create is never repeated while
its outcome is unknown, and the retention purge never deletes such a row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from onefile.hook import OneFileApiError
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push import answers
from picsweb_sync.stages.push import log as push_log
from picsweb_sync.stages.push.answers import skip
from picsweb_sync.stages.push.empty_visits import left_empty


def settle_unknown_creates(
    ctx: RunContext, hook: Any, unknown: pd.DataFrame, fence: Any = None
) -> int:
    """Find out what became of every review create whose outcome is unknown (any run) and
    link each review found to its PICSWeb review. Returns how many were found."""
    found_count = 0
    learners: dict[int, int | None] = {}
    for row in unknown.itertuples(index=False):
        visit_id = int(row.visit_id)
        found = find_created_review(hook, row.payload, visit_id, learners)
        if found is not None:
            answers.record_review_id(
                ctx, int(row.outbox_id), int(row.target_id), found[0], basis_at=found[1]
            )
            how = f"the outcome of run {row.run_id}'s create was unknown"
            push_log.recovered(row, found[0], visit_id, how)
            found_count += 1
        elif row.run_id != ctx.run_id:
            reason = (
                f"the Review call never reached OneFile (no review has visit {visit_id}); "
                "the review is planned again by the next run that uploads"
            )
            left_empty(ctx, row, row.payload, visit_id, reason, fence)
            skip(ctx, int(row.outbox_id), f"{reason}; visit {visit_id} is left empty")
        # A row of this run that was not found is sent below, re-checked, with its visit.
    return found_count


def find_created_review(
    hook: Any,
    payload: dict[str, Any],
    visit_id: int,
    learners: dict[int, int | None] | None = None,
) -> tuple[int, datetime | None] | None:
    """The review an earlier attempt created with this VisitID, if OneFile has it, with
    when OneFile created it (naive UTC, ``None`` when not given): first around the
    ``ScheduledFor`` that was sent, then among all the learner's reviews (it may have been
    rescheduled in OneFile since).

    A Review search needs an organisation (contract: ``OrganisationID``, optionally
    ``LearnerID``), and OneFile finds a learner's reviews in the organisation the learner is
    in *now*: the learner is looked up first (``GET /User/{id}``; ``learners`` caches it
    across calls), so a learner moved since the create is still found. A learner OneFile no
    longer has is searched for in the organisation the create was sent to, and so is one
    that moved, if not found where it is now (should OneFile keep a review where it was
    made)."""
    review = payload["review"]
    learner_id = int(review["LearnerID"])
    sent_to = int(payload["organisation_id"])
    now_in = _current_organisation(hook, learner_id, learners)
    scheduled = datetime.fromisoformat(review["ScheduledFor"].replace("Z", "+00:00"))
    windows = [(scheduled - timedelta(days=1), scheduled + timedelta(days=1)), (None, None)]
    for organisation_id in dict.fromkeys(o for o in (now_in, sent_to) if o is not None):
        for date_from, date_to in windows:
            for row in hook.search_reviews(
                organisation_id, learner_id=learner_id, date_from=date_from, date_to=date_to
            ):
                if row.get("VisitID") == visit_id:
                    return int(row["ID"]), _created_on(row.get("CreatedOn"))
    return None


def _current_organisation(
    hook: Any, learner_id: int, learners: dict[int, int | None] | None
) -> int | None:
    if learners is not None and learner_id in learners:
        return learners[learner_id]
    try:
        organisation_id = hook.get_user(learner_id).get("OrganisationID")
    except OneFileApiError as exc:
        if exc.status != 404:
            raise
        organisation_id = None
    organisation_id = int(organisation_id) if isinstance(organisation_id, int) else None
    if learners is not None:
        learners[learner_id] = organisation_id
    return organisation_id


def _created_on(value: Any) -> datetime | None:
    """A OneFile instant as naive UTC; ``None`` when absent or not an instant."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return instant.astimezone(UTC).replace(tzinfo=None)
