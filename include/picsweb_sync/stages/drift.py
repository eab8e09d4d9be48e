"""The drift report's stage: after the loads and pushes, what still differs between
OneFile and PICSWeb, and why, stored for the summary, the note and the sync page.

Read-only towards both systems: no OneFile call (the run's own staging is OneFile's side,
with what its pushes sent applied), PICSWeb read as it is now. The reasons are the rules'
(:mod:`picsweb_sync.rules.drift`); the evidence is what the run recorded: its rejects,
change sets, audit and outbox. The task replaces the run's rows in one transaction, so a
rerun reports again from the state of then.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsweb_sync.rules import drift
from picsweb_sync.run.runtime import RunContext, skip_task
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables
from picsweb_sync.storage.project_tables.outbox import (
    AIM_UPDATE,
    FINAL_STATES,
    REVIEW_CREATE,
    outbox_rows,
    sync_outbox,
)
from picsweb_sync.storage.project_tables.run_record import sync_load_refusal
from picsweb_sync.storage.sqlframes import read_frame

log = logging.getLogger(__name__)
STAGE = "report_drift"
BACKFILL_NO_UPLOAD = "a reviews-only (backfill) run does not upload: the next daily run does"


def report_drift(ctx: RunContext) -> dict[str, int]:
    """The run's drift report, stored; its counts by reason (``drift_<reason>``)."""
    if ctx.dry_run:
        skip_task("a dry run writes nothing: its would-change list is the preview")
    settings = ctx.settings
    with ctx.staging.connect() as conn:
        onefile = {
            entity: project_tables.read_staging(conn, ctx.run_id, entity, with_raw=False)
            for entity in ("learners", "learning_aims", "reviews", "assessors")
        }
        evidence = run_evidence(
            conn,
            ctx.run_id,
            download=settings.download_review_data,
            upload=settings.upload_review_data and ctx.plan.does_uploads,
            qualifications=ctx.plan.does_qualifications,
            window=(_naive_utc(ctx.plan.review_from), _naive_utc(ctx.plan.review_to)),
            upload_off=None if ctx.plan.does_uploads else BACKFILL_NO_UPLOAD,
        )
    with ctx.picsweb.connect() as conn:
        picsweb = picsweb_frames(conn)
    report = drift.drift_report(**onefile, **picsweb, evidence=evidence)
    counts = {f"drift_{reason}": n for reason, n in drift.counts_by_reason(report).items()}
    with ctx.staging.begin() as conn:
        project_tables.record_drift(conn, ctx.run_id, report)
        project_tables.record_counts(conn, ctx.run_id, STAGE, counts)
    unexplained = counts[f"drift_{drift.UNEXPLAINED}"]
    if unexplained:
        log.warning(
            "%d difference(s) between OneFile and PICSWeb that no reason explains: a defect "
            "of the sync; see the run's drift on the sync page",
            unexplained,
        )
    log.info("%s: %d difference(s) in all: %s", STAGE, len(report), counts)
    return counts


def picsweb_frames(conn: Connection) -> dict[str, pd.DataFrame]:
    """The PICSWeb tables the report compares, as they are now."""
    return {
        "trainees": read_frame(conn, sa.select(pw.trainee)),
        "qualifications": read_frame(conn, sa.select(pw.trainee_qualification)),
        "units": read_frame(conn, sa.select(pw.trainee_qualification_unit)),
        "officers": read_frame(conn, sa.select(pw.officer)),
        "picsweb_reviews": read_frame(conn, sa.select(pw.review)),
    }


def run_evidence(
    conn: Connection,
    run_id: str | None,
    *,
    download: bool,
    upload: bool,
    qualifications: bool,
    window: tuple[datetime, datetime] | None,
    upload_off: str | None = None,
) -> drift.RunEvidence:
    """What run ``run_id`` recorded (``None``: no run, only the outbox of every run), for
    :func:`picsweb_sync.rules.drift.drift_report`."""
    outbox = read_frame(
        conn,
        sa.select(
            sync_outbox.c.run_id,
            sync_outbox.c.kind,
            sync_outbox.c.target_id,
            sync_outbox.c.state,
            sync_outbox.c.visit_id,
            sync_outbox.c.result_id,
        ).where(
            sync_outbox.c.state.not_in(FINAL_STATES) | (sync_outbox.c.run_id == (run_id or ""))
        ),
    )
    open_rows = ~outbox["state"].isin(FINAL_STATES)
    creates = outbox["kind"].eq(REVIEW_CREATE)
    created = outbox[creates & outbox["result_id"].notna() & outbox["run_id"].eq(run_id or "")]
    awaiting = outbox[creates & open_rows & outbox["visit_id"].notna() & outbox["result_id"].isna()]
    extra = {} if upload_off is None else {"upload_off": upload_off}
    planned_onefile = _read(conn, run_id, "onefile_updates", ["entity_id", "field"])
    refused = {} if run_id is None else _refused(conn, run_id)
    return drift.RunEvidence(
        rejects=_rejects(conn, run_id),
        planned=_planned(conn, run_id),
        planned_onefile=planned_onefile,
        recheck_dropped=_recheck_dropped(conn, run_id, planned_onefile),
        planned_uploads=_read(conn, run_id, "review_uploads", ["review_id"])["review_id"],
        audited=_audited(conn, run_id),
        refused=refused,
        pending_aims=outbox.loc[open_rows & outbox["kind"].eq(AIM_UPDATE), "target_id"],
        pending_reviews=outbox.loc[open_rows & creates, "target_id"],
        created_reviews=pd.DataFrame(
            {"review_id": created["target_id"], "onefile_id": created["result_id"]}
        ),
        awaiting_link=awaiting["visit_id"],
        download=download,
        upload=upload,
        qualifications=qualifications,
        window=window,
        **extra,
    )


# The load task of each PICSWeb table the drift compares (its refusal is kept by task).
_LOAD_OF = {"load_qualifications": "trainee_qualification", "load_reviews": "review"}


def _refused(conn: Connection, run_id: str) -> dict[str, str]:
    """PICSWeb table -> the reason its load was refused in this run (the latest refusal)."""
    refusal = sync_load_refusal
    rows = conn.execute(
        sa.select(refusal.c.stage, refusal.c.reason)
        .where(refusal.c.run_id == run_id)
        .order_by(refusal.c.refused_at)
    )
    return {_LOAD_OF[stage]: reason for stage, reason in rows if stage in _LOAD_OF}


def _recheck_dropped(conn: Connection, run_id: str | None, planned: pd.DataFrame) -> pd.DataFrame:
    """The run's planned aim fields its push did not send because the re-check just before
    found them changed: the field left the outbox row's payload, or the row was skipped."""
    columns = {"entity_id": pd.Series([], dtype="Int64"), "field": [], "reason": []}
    if run_id is None or planned.empty:
        return pd.DataFrame(columns)
    rows = outbox_rows(conn, run_id, AIM_UPDATE)
    if rows.empty:
        return pd.DataFrame(columns)
    sent = {
        (int(target), name)
        for target, state, payload in zip(
            rows["target_id"], rows["state"], rows["payload"], strict=True
        )
        if state != "skipped"
        for name in payload
    }
    why = {
        int(t): e
        for t, s, e in zip(rows["target_id"], rows["state"], rows["last_error"], strict=True)
        if s == "skipped"
    }
    enqueued = set(rows["target_id"].astype(int))
    dropped = [
        (int(aim), name, why.get(int(aim)) or "no longer to fill")
        for aim, name in zip(planned["entity_id"], planned["field"], strict=True)
        if int(aim) in enqueued and (int(aim), name) not in sent
    ]
    return pd.DataFrame(dropped or None, columns=list(columns)).astype({"entity_id": "Int64"})


def _rejects(conn: Connection, run_id: str | None) -> pd.DataFrame:
    if run_id is None:
        return pd.DataFrame({name: [] for name in ("entity", "source_id", "reason")})
    return project_tables.read_rejects(conn, run_id)[["entity", "source_id", "reason"]]


def _read(conn: Connection, run_id: str | None, kind: str, columns: list[str]) -> pd.DataFrame:
    if run_id is None:
        return pd.DataFrame({name: pd.Series([], dtype="Int64") for name in columns})
    return project_tables.read_change_set(conn, run_id, kind)[columns]


def _planned(conn: Connection, run_id: str | None) -> pd.DataFrame:
    """The run's PICSWeb field changes (both merges) and review inserts (key: the OneFile
    review ID, field ``onefile_system_id``)."""
    parts = [pd.DataFrame({"table": [], "key": [], "field": []})]
    if run_id is not None:
        for merge in ("qualifications", "reviews"):
            changes = project_tables.read_change_set(conn, run_id, "picsweb_updates", merge)
            parts.append(changes[["table", "key", "field"]])
        inserts = project_tables.read_change_set(conn, run_id, "picsweb_review_inserts")
        parts.append(
            pd.DataFrame(
                {
                    "table": "review",
                    "key": inserts["onefile_system_id"],
                    "field": "onefile_system_id",
                }
            )
        )
    planned = pd.concat(parts, ignore_index=True)
    # Int64 keys, whatever the (maybe empty) parts were: "1.0" would match no report row.
    return planned.astype({"key": "Int64", "table": "string", "field": "string"})


def _audited(conn: Connection, run_id: str | None) -> pd.DataFrame:
    audit = project_tables.sync_audit
    columns = [audit.c.system, audit.c.entity, audit.c.entity_key, audit.c.field, audit.c.new_value]
    if run_id is None:
        return pd.DataFrame({column.name: [] for column in columns})
    stmt = sa.select(*columns).where(audit.c.run_id == run_id).order_by(audit.c.audit_id)
    return read_frame(conn, stmt)


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
