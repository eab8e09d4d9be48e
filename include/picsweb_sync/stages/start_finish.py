"""Start and end of a run: settings, project tables, the run record, retention, summary.

``start_run`` is the gate: with the integration off in PICSWeb's OneFile Settings the run
says so and ends green without touching OneFile. ``finish_run`` runs only when nothing
failed: it closes the run record, sets ``onefile_settings.last_synchronised`` (rule 7; not
after a reviews-only backfill run, which is not a full sync, nor after a dry run, which
synced nothing) and purges staging older than the retention period. ``record_failure``
closes the record of a run that did fail, so ``sync_run`` always tells how each run ended.
``check_thresholds`` runs after ``finish_run``: when the run's rejects, conflicts or
unexplained differences (the drift report, ``stages.drift``) cross a threshold Param it
marks the run failed, naming each threshold and the numbers.

Each of them stores the run's summary (``picsweb_sync.run.summary``) in ``sync_run_summary``,
logs it, returns it in the XCom and sets it as the run's note in the Airflow UI, with a
link to the run's sync page.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from picsweb_sync.onefile import ukdates
from picsweb_sync.run import freshness, summary
from picsweb_sync.run import note as run_note
from picsweb_sync.run.note_text import run_page_url, summary_text
from picsweb_sync.run.runtime import RunContext, settings_snapshot
from picsweb_sync.run.settings import mark_synchronised, read_settings
from picsweb_sync.run.thresholds import crossed_thresholds, threshold_settings, thresholds_failure
from picsweb_sync.storage import project_tables

log = logging.getLogger(__name__)


def start_run(ctx: RunContext) -> dict[str, Any] | bool:
    """Read the settings and open the run record; ``False`` stops the run (integration off)."""
    project_tables.ensure_project_tables(ctx.staging)
    # A dry run writes nothing in the PICSWeb database, not even the sync's own tables there
    # (its loads only read PICSWeb).
    if ctx.picsweb_conn_id != ctx.staging_conn_id and not ctx.dry_run:
        project_tables.ensure_project_tables(ctx.picsweb, project_tables.PICSWEB_SIDE_TABLES)
    with ctx.picsweb.connect() as conn:
        settings = read_settings(conn)
    with ctx.staging.begin() as conn:
        project_tables.start_run(conn, ctx.run_id)
        _open_summary(conn, ctx)
        if not settings.integration_enabled:
            ended = datetime.now(UTC)
            project_tables.finish_run(conn, ctx.run_id, "integration_off", ended)
            counts = _store_summary(conn, ctx, ended)
    if not settings.integration_enabled:
        log.warning(
            "OneFile integration is switched off in PICSWeb's OneFile Settings: nothing to sync."
        )
        _publish(ctx, counts, "integration_off")
        return False
    plan = ctx.plan
    log.info(
        "syncing organisations %s in %s mode; reviews scheduled %s to %s; upload %s, download %s",
        list(settings.organisation_ids),
        plan.mode.value,
        plan.review_from.isoformat(),
        plan.review_to.isoformat(),
        "on" if settings.upload_review_data else "off",
        "on" if settings.download_review_data else "off",
    )
    return {
        "organisation_ids": list(settings.organisation_ids),
        "settings": settings_snapshot(settings),
        "plan": plan.as_xcom(),
    }


def finish_run(ctx: RunContext, now: datetime | None = None) -> dict[str, Any]:
    """Close a successful run: record, ``last_synchronised``, retention purge, summary."""
    ended = now or datetime.now(UTC)
    retention_days = int(ctx.param("retention_days", 30))
    if ctx.dry_run:
        log.info("dry run: last_synchronised left as it is (nothing was synced)")
    elif ctx.plan.does_qualifications:  # a reviews-only backfill run is not a full sync
        why_not = _not_the_newest_sync(ctx)
        if why_not is None:
            with ctx.picsweb.begin() as conn:
                mark_synchronised(conn, ukdates.uk_wall_clock(ended))
        else:
            log.info("last_synchronised left as it is: %s", why_not)
    with ctx.staging.begin() as conn:
        project_tables.finish_run(conn, ctx.run_id, "success", ended)
        purged = project_tables.purge(conn, retention_days, ended)
        counts = project_tables.run_counts(conn, ctx.run_id)
        rejects = project_tables.read_rejects(conn, ctx.run_id)
        _open_summary(conn, ctx)  # a run started before the summary existed has no row
        run_summary = _store_summary(conn, ctx, ended)
    # The PICSWeb side keeps work tables too; a dry run leaves that database alone.
    if ctx.picsweb_conn_id != ctx.staging_conn_id and not ctx.dry_run:
        with ctx.picsweb.begin() as conn:
            side = project_tables.PICSWEB_SIDE_TABLES
            for table, n in project_tables.purge(conn, retention_days, ended, side).items():
                purged[table] = purged.get(table, 0) + n
    for stage, values in counts.items():
        log.info("%s: %s", stage, ", ".join(f"{k}={v}" for k, v in values.items()))
    if not rejects.empty:
        kind = rejects["reason"].str.split(" (", regex=False).str[0]  # details in brackets
        by_reason = rejects.assign(reason=kind).groupby(["stage", "reason"]).size()
        for (stage, reason), n in by_reason.items():
            log.warning("%d row(s) set aside at %s: %s", n, stage, reason)
    page = _publish(ctx, run_summary, "success")
    return {
        "rejects": len(rejects),
        "purged_rows": int(sum(purged.values())),
        "summary": summary.compact(run_summary),
        "page": page,
    }


def check_thresholds(ctx: RunContext) -> dict[str, Any]:
    """After ``finish_run``: fail the run loudly when its rejects, conflicts or unexplained
    differences crossed a threshold Param (``max_rejects``, ``max_reject_share``,
    ``max_conflicts``, ``max_conflict_share``, ``max_unexplained``; ``None`` turns one off). Everything safe is done by then: the
    run's data is synced, only its outcome changes. Raises ``AirflowFailException`` (no
    retry: the numbers would not change) naming each threshold and the numbers."""
    with ctx.staging.connect() as conn:
        stored = summary.read_run_summary(conn, ctx.run_id)
        counts = (stored or {}).get("summary") or summary.run_summary(conn, ctx.run_id, ctx.dry_run)
    crossed = crossed_thresholds(counts, ctx.params)
    limits = threshold_settings(ctx.params)
    if not crossed:  # the run's last task: its log and XCom say what the run did too
        log.info("no threshold crossed (%s)", ", ".join(f"{k}={v}" for k, v in limits.items()))
        page = run_page_url(ctx.run_id)
        log.info("run note:\n%s", summary_text(counts, "success", page))
        return {"thresholds_crossed": [], "summary": summary.compact(counts), "page": page}
    failure = thresholds_failure(crossed)
    with ctx.staging.begin() as conn:
        project_tables.finish_run(conn, ctx.run_id, "failed", failure=failure)
        _open_summary(conn, ctx)
        summary.store_run_summary(
            conn, ctx.run_id, counts, ended_at=datetime.now(UTC), thresholds_crossed=crossed
        )
    page = _publish(ctx, counts, "failed", thresholds=crossed)
    log.error("run %s: %s", ctx.run_id, failure)
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(f"{failure}; see {page}")


def _open_summary(conn, ctx: RunContext) -> None:
    summary.open_run_summary(
        conn,
        ctx.run_id,
        dag_id=ctx.dag_id,
        run_type=ctx.run_type,
        dry_run=ctx.dry_run,
        interval_start=ctx.interval_start,
        interval_end=ctx.interval_end,
    )


def _store_summary(conn, ctx: RunContext, ended: datetime) -> dict[str, Any]:
    """Compute and store the run's summary (the run ended at ``ended``); log it."""
    counts = summary.run_summary(conn, ctx.run_id, ctx.dry_run)
    summary.store_run_summary(conn, ctx.run_id, counts, ended_at=ended)
    log.info("run summary: %s", json.dumps(counts, sort_keys=True))
    return counts


def _publish(
    ctx: RunContext,
    counts: dict[str, Any],
    outcome: str,
    failure: str | None = None,
    thresholds: list[str] | None = None,
) -> str:
    """Log the run's note and set it in the Airflow UI; returns the run's sync page URL."""
    page = run_page_url(ctx.run_id)
    note = summary_text(counts, outcome, page, failure=failure, thresholds=thresholds)
    log.info("run note:\n%s", note)
    try:
        run_note.publish(ctx.dag_id, ctx.run_id, note)
    except Exception:  # publish never raises; a note is still not worth a failed task
        log.warning("could not set the run's note", exc_info=True)
    return page


def _not_the_newest_sync(ctx: RunContext) -> str | None:
    """Why this run must not set ``last_synchronised`` (``None``: it may). A cleared
    ``finish_run`` of an old run must not claim a newer sync than the newest: not when
    another run already loaded qualifications from OneFile data extracted after this run's
    change set's, nor when this run's change set and its basis were purged (nothing then
    shows what it synced)."""
    with ctx.staging.connect() as conn:
        basis = freshness.change_basis(conn, ctx.run_id, freshness.QUALIFICATIONS)
        if basis is None:
            return "this run's qualification change set has no basis (purged, or never merged)"
        newer = freshness.newer_load(conn, ctx.run_id, freshness.QUALIFICATIONS, basis)
    return None if newer is None else f"run {newer.run_id} synced newer OneFile data"


def record_failure(ctx: RunContext, failed_tasks: list[str] | None = None) -> str:
    """Close the record of a run that failed, saying why: each failed task (as Airflow
    reports them) with the last error it recorded (no secrets). Returns that text."""
    with ctx.staging.connect() as conn:
        errors = project_tables.task_errors(conn, ctx.run_id)
    failure = failure_summary(failed_tasks or [], errors)
    ended = datetime.now(UTC)
    with ctx.staging.begin() as conn:
        try:
            project_tables.finish_run(conn, ctx.run_id, "failed", ended, failure=failure)
        except LookupError:  # start_run itself failed before it opened the record
            project_tables.start_run(conn, ctx.run_id)
            project_tables.finish_run(conn, ctx.run_id, "failed", ended, failure=failure)
        _open_summary(conn, ctx)
        counts = _store_summary(conn, ctx, ended)
    log.error("run %s failed: %s", ctx.run_id, failure)
    _publish(ctx, counts, "failed", failure=failure)
    return failure


def failure_summary(failed_tasks: list[str], errors: pd.DataFrame) -> str:
    """One line per failed task: its name, and the last error it recorded (newest first).

    ``failed_tasks`` come from Airflow (``extract_reviews_1`` for a mapped task); a task
    killed before it could record its error is still named, with "no error recorded".
    """
    last = errors.drop_duplicates("task")  # newest first: the last try of each task
    lines = []
    for row in last.itertuples(index=False):
        lines.append(f"{row.task} (try {row.try_number}): {row.error}")
    recorded = {str(label).split(" (")[0] for label in last["task"]}
    for task in failed_tasks:
        base, _, index = task.rpartition("_")
        named = f"{base}[{index}]" if index.isdigit() else task
        if named not in recorded:
            lines.append(f"{named}: failed with no error recorded (see the task's log)")
    return "\n".join(lines) or "a task failed (no error recorded; see the task logs)"
