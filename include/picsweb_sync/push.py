"""Push: the OneFile change sets sent through the outbox, each row exactly once.

The outbox (``sync_outbox``) holds one row per OneFile write with its state. A push sends
only rows not yet ``sent``, and marks each one as OneFile answers, so a retried or
cleared task resends only what did not go.

Creating a review is two calls (Visit, then Review). The VisitID is recorded in the
outbox *before* the Review call; a row that has a VisitID but no ReviewID is a create that
may have reached OneFile before a crash, so it is first looked for (``Review/Search`` by
learner and scheduled time, told apart by that VisitID) and recorded if found, never
created a second time. The new Review ID is written to PICSWeb's
``review.onefile_system_id`` as soon as OneFile returns it. A VisitID left by an earlier,
failed run is carried into the next run's outbox row, so recovery works across runs too.
What cannot be recovered: a Visit call that fails after OneFile created the visit leaves
an empty visit in OneFile (no review is ever duplicated).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from onefile.hook import OneFileApiError
from picsweb_sync import db, onefile_fields, picsweb_tables, project_tables
from picsweb_sync.db import read_frame
from picsweb_sync.merge import reviews
from picsweb_sync.runtime import RunContext

log = logging.getLogger(__name__)

AIM_UPDATE = project_tables.AIM_UPDATE
REVIEW_CREATE = project_tables.REVIEW_CREATE


class PushIncomplete(RuntimeError):
    """Some outbox rows failed for a reason worth retrying; the task fails so Airflow retries."""


# ----- learning aims (rules 2-4: PICSWeb fills OneFile's blanks) ---------------------------
def push_learning_aims(ctx: RunContext) -> dict[str, int]:
    ctx.require_qualifications()
    with ctx.staging.begin() as conn:
        changes = project_tables.read_change_set(conn, ctx.run_id, "onefile_updates")
        project_tables.enqueue_outbox(conn, ctx.run_id, AIM_UPDATE, aim_update_items(changes))
        pending = project_tables.pending_outbox(conn, ctx.run_id, AIM_UPDATE)
    hook = ctx.onefile()
    counts = {"sent": 0, "rejected": 0, "failed": 0}
    for row in pending.itertuples(index=False):  # one API call per row: no set form exists
        try:
            hook.update_learning_aim(int(row.target_id), row.payload)
        except OneFileApiError as exc:
            counts[_record_failure(ctx, row, exc)] += 1
            continue
        with ctx.staging.begin() as conn:
            project_tables.mark_outbox(conn, int(row.outbox_id), "sent")
            project_tables.audit(conn, ctx.run_id, _aim_audit_rows(changes, int(row.target_id)))
        counts["sent"] += 1
    return _finish(ctx, "push_learning_aims", AIM_UPDATE, counts)


def aim_update_items(changes: pd.DataFrame) -> pd.DataFrame:
    """One outbox item per learning aim: a partial body of every field to fill."""
    if changes.empty:
        return pd.DataFrame({"target_id": pd.Series(dtype="Int64"), "payload": []})
    payloads = changes.groupby("entity_id").apply(
        lambda g: dict(zip(g["field"], g["new"], strict=True)), include_groups=False
    )
    return pd.DataFrame({"target_id": payloads.index, "payload": payloads.to_numpy()})


def _aim_audit_rows(changes: pd.DataFrame, aim_id: int) -> pd.DataFrame:
    sent = changes[changes["entity_id"] == aim_id]
    return pd.DataFrame(
        {
            "system": "onefile",
            "entity": "LearningAim",
            "entity_key": sent["entity_id"],
            "field": sent["field"],
            "old": sent["old"],
            "new": sent["new"],
        }
    )


# ----- reviews (rule 5: new PICSWeb reviews created in OneFile) ----------------------------
def push_reviews(ctx: RunContext) -> dict[str, int]:
    ctx.require_upload()
    with ctx.staging.begin() as conn:
        uploads = project_tables.read_change_set(conn, ctx.run_id, "review_uploads")
        project_tables.enqueue_outbox(conn, ctx.run_id, REVIEW_CREATE, review_create_items(uploads))
        project_tables.carry_over_visits(conn, ctx.run_id)
        pending = project_tables.pending_outbox(conn, ctx.run_id, REVIEW_CREATE)
    with ctx.picsweb.connect() as conn:
        linked = db.reviews_already_linked(conn, [int(t) for t in pending["target_id"]])
    hook = ctx.onefile()
    counts = {"sent": 0, "recovered": 0, "rejected": 0, "failed": 0, "already_linked": 0}
    for row in pending.itertuples(index=False):  # two API calls per review: no set form exists
        try:
            outcome = _create_review(ctx, hook, row, int(row.target_id) in linked)
        except OneFileApiError as exc:
            counts[_record_failure(ctx, row, exc)] += 1
            continue
        counts[outcome] += 1
    counts["fields_reflected"] = reflect_uploaded_reviews(ctx)
    return _finish(ctx, "push_reviews", REVIEW_CREATE, counts)


def review_create_items(uploads: pd.DataFrame) -> pd.DataFrame:
    """The Visit and Review bodies of each upload, exactly as the contract names them."""
    items = []
    for u in uploads.itertuples(index=False):  # builds small dicts, no data-dependent logic
        items.append(
            {
                "target_id": int(u.review_id),
                "payload": {
                    "visit": {
                        "LearnerID": int(u.learner_id),
                        "OrganisationID": int(u.organisation_id),
                        "DateFrom": u.visit_from,
                        "DateTo": u.visit_to,
                        "VisitTypeID": int(u.visit_type_id),
                        "SMSReminder": False,
                        "AssessorID": int(u.assessor_id),
                    },
                    "review": {
                        "LearnerID": int(u.learner_id),
                        "Status": 1,
                        "ScheduledFor": u.scheduled_for,
                        "AssessorID": int(u.assessor_id),
                    },
                    "organisation_id": int(u.organisation_id),
                },
            }
        )
    return pd.DataFrame(items, columns=["target_id", "payload"])


def _create_review(ctx: RunContext, hook: Any, row: Any, already_linked: bool) -> str:
    review_id = int(row.target_id)
    if already_linked:
        with ctx.staging.begin() as conn:
            project_tables.mark_outbox(conn, int(row.outbox_id), "sent")
        return "already_linked"
    visit_id = None if pd.isna(row.visit_id) else int(row.visit_id)
    found = None
    if visit_id is None:
        visit_id = hook.create_visit(row.payload["visit"])
        with ctx.staging.begin() as conn:  # recorded before the Review call, see module doc
            project_tables.mark_outbox(conn, int(row.outbox_id), "pending", visit_id=visit_id)
    else:
        found = find_created_review(hook, row.payload, visit_id)
    onefile_id = found or hook.create_review({**row.payload["review"], "VisitID": visit_id})
    record_review_id(ctx, int(row.outbox_id), review_id, onefile_id)
    return "recovered" if found else "sent"


def reflect_uploaded_reviews(ctx: RunContext) -> int:
    """Apply rule 6 at once to the reviews this run created in OneFile.

    A created review is, in OneFile, scheduled and not started, with the chosen assessor;
    the next download would write exactly that back (attended ``U``, the assessor's
    officer, a 09:00 start time where PICSWeb had none). Writing it now, from what was
    sent, keeps PICSWeb equal to OneFile and lets the next run change nothing. The rule
    itself is the download's own (``merge_reviews``), not a copy; the write is the same
    guarded, audited ``apply_updates``, so a retry reflects nothing twice.
    """
    if not ctx.settings.download_review_data:  # rule 6 is off: PICSWeb keeps its own values
        return 0
    with ctx.staging.connect() as conn:
        sent = project_tables.outbox_rows(conn, ctx.run_id, REVIEW_CREATE, ("sent",))
        assessors = project_tables.read_staging(conn, ctx.run_id, "assessors")
    sent = sent[sent["result_id"].notna()]
    if sent.empty:
        return 0
    created = [
        {**p["review"], "ID": int(rid), "VisitID": int(vid), "StartedOn": None}
        for p, rid, vid in zip(sent["payload"], sent["result_id"], sent["visit_id"], strict=True)
    ]
    staged = onefile_fields.parse_reviews(created, organisation_id=0).frame
    review = picsweb_tables.review
    with ctx.picsweb.begin() as conn:
        trainees = read_frame(conn, sa.select(picsweb_tables.trainee))
        officers = read_frame(conn, sa.select(picsweb_tables.officer))
        linked = read_frame(
            conn,
            sa.select(review).where(review.c.onefile_system_id.in_(staged["review_id"].tolist())),
        )
        merged = reviews.merge_reviews(staged, trainees, officers, assessors, linked)
        applied = db.apply_updates(
            conn, ctx.run_id, merged.picsweb_updates, work_key="review_uploads"
        )
    return len(applied.applied)


def find_created_review(hook: Any, payload: dict[str, Any], visit_id: int) -> int | None:
    """The review an earlier attempt created with this VisitID, if OneFile has it."""
    review = payload["review"]
    scheduled = datetime.fromisoformat(review["ScheduledFor"].replace("Z", "+00:00"))
    for row in hook.search_reviews(
        payload["organisation_id"],
        learner_id=review["LearnerID"],
        date_from=scheduled - timedelta(days=1),
        date_to=scheduled + timedelta(days=1),
    ):
        if row.get("VisitID") == visit_id:
            return int(row["ID"])
    return None


def record_review_id(ctx: RunContext, outbox_id: int, review_id: int, onefile_id: int) -> None:
    """Write the new Review ID to PICSWeb (with its audit), then close the outbox row."""
    with ctx.picsweb.begin() as conn:
        db.link_review(conn, ctx.run_id, review_id, onefile_id)
    with ctx.staging.begin() as conn:
        project_tables.mark_outbox(conn, outbox_id, "sent", result_id=onefile_id)
        change = {"system": "onefile", "entity": "Review", "entity_key": onefile_id}
        row = {**change, "field": "created_from_picsweb_review", "old": None, "new": review_id}
        project_tables.audit(conn, ctx.run_id, pd.DataFrame([row]))


# ----- shared -----------------------------------------------------------------------------
def _record_failure(ctx: RunContext, row: Any, exc: OneFileApiError) -> str:
    """A 4xx means OneFile refused the data: a reject, not retried. Anything else (5xx
    after the hook's own retries, timeouts) is ``failed`` and retried by the task."""
    refused = exc.status is not None and 400 <= exc.status < 500
    state = "rejected" if refused else "failed"
    with ctx.staging.begin() as conn:
        project_tables.mark_outbox(conn, int(row.outbox_id), state, error=str(exc))
    log.warning("outbox %s (%s %s): %s", row.outbox_id, row.kind, row.target_id, exc)
    return state


def _finish(ctx: RunContext, stage: str, kind: str, counts: dict[str, int]) -> dict[str, int]:
    with ctx.staging.begin() as conn:
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
        refused = _refused_rows(conn, ctx.run_id, kind)
        project_tables.record_rejects(conn, ctx.run_id, f"{stage}_refused", refused)
    log.info("%s: %s", stage, counts)
    if counts["failed"]:
        raise PushIncomplete(
            f"{counts['failed']} OneFile write(s) failed and will be retried; see sync_outbox"
        )
    return counts


def _refused_rows(conn: sa.Connection, run_id: str, kind: str) -> pd.DataFrame:
    rows = project_tables.outbox_rows(conn, run_id, kind, ("rejected",))
    return pd.DataFrame(
        {
            "entity": rows["kind"],
            "source_id": rows["target_id"].map(str),
            "reason": "OneFile refused: " + rows["last_error"].astype(str),
            "raw": rows["payload"].map(lambda p: json.dumps(p, sort_keys=True)),
        }
    )
