"""Visits left empty: a OneFile visit the sync made that no review will use, recorded and
reported, never reused for another review.

OneFile has no visit search in the contract, so a visit the sync made and could not use
stays in OneFile: a review refused after its visit was made, a review changed or no longer
eligible after a crash between its two calls, a create of unknown outcome not found by a
later run, and a Visit call that failed with a server fault or no answer (the visit may
exist; its ID is unknown). Each is recorded (``sync_empty_visit``,
:func:`picsweb_sync.storage.project_tables.outbox.empty_visits`) and reported as a reject of
the run (``OneFile visit left empty``), naming the visit, the learner and what to do in
OneFile. No review is ever duplicated.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push.answers import fence_check
from picsweb_sync.stages.push.log import log
from picsweb_sync.storage import project_tables
from picsweb_sync.storage.project_tables import outbox as outbox_table


def left_empty(
    ctx: RunContext,
    row: Any,
    payload: dict[str, Any],
    visit_id: int | None,
    reason: str,
    fence: Any,
    restart: dict[str, Any] | None = None,
) -> None:
    """Record a visit made for ``row`` (sent with ``payload``) that no review will use:
    ``visit_id`` (``None``: a Visit call of unknown outcome). With ``restart``, the row
    starts afresh with that payload (its visit let go) in the same transaction."""
    visit = payload["visit"]
    frame = pd.DataFrame(
        [
            {
                "outbox_id": int(row.outbox_id),
                "review_id": int(row.target_id),
                "visit_id": visit_id,
                "learner_id": int(visit["LearnerID"]),
                "organisation_id": int(visit["OrganisationID"]),
                "visit_from": visit.get("DateFrom"),
                "reason": reason,
            }
        ]
    ).astype({"visit_id": "Int64"})
    with ctx.staging.begin() as conn:
        fence_check(fence, conn)
        outbox_table.record_empty_visits(conn, ctx.run_id, frame)
        if restart is not None:
            note = f"visit {visit_id} left empty"
            project_tables.restart_create(conn, int(row.outbox_id), restart, note)
    log.warning(
        "outbox %s: OneFile visit %s of learner %s (for PICSWeb review %s) left empty: %s",
        row.outbox_id,
        "(ID unknown)" if visit_id is None else visit_id,
        visit["LearnerID"],
        row.target_id,
        reason,
    )
