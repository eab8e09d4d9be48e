"""The DAG's first task, ``preflight``: the cheap half of the preflight before anything else.

PICSWeb's tables and columns against the sync's definitions, the OneFile Settings row, the
text collation and the permissions, and the sync's own tables (catalog reads and one
``SELECT`` of the settings, all read-only: no OneFile call, no paging). A schema change in
PICSWeb then stops the run at its start, naming each problem and what to do, instead of
failing a load halfway or, worse, syncing nothing without a word.

On anything blocking the task fails without retries (``AirflowFailException``: the answer
would not change until someone fixes it); clear it once fixed. Warnings are logged and the
run goes on. In a dry run, write permissions the run will not use are only warnings.
"""

from __future__ import annotations

import logging
from typing import Any

from picsweb_sync.preflight.findings import Check, Level, Report
from picsweb_sync.preflight.own_tables import own_tables_checks
from picsweb_sync.preflight.picsweb import picsweb_checks
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.storage import project_tables

log = logging.getLogger(__name__)


def checks_before_run(ctx: RunContext) -> Report:
    """The schema, settings, collation and permission checks of the run's databases."""
    description = f"connection {ctx.picsweb_conn_id!r}"
    checks, _ = picsweb_checks(ctx.picsweb, description, writes=not ctx.dry_run)
    report = Report(checks)
    separate = ctx.staging_conn_id != ctx.picsweb_conn_id
    report.add(own_tables_checks(ctx.staging, f"connection {ctx.staging_conn_id!r}"))
    if separate and not ctx.dry_run:  # a dry run creates nothing in the PICSWeb database
        report.add(
            own_tables_checks(
                ctx.picsweb,
                description,
                project_tables.PICSWEB_SIDE_TABLES,
                prefix="picsweb.own",
                title="PICSWeb database (the sync's work tables and audit there)",
            )
        )
    return report


def check_before_run(ctx: RunContext) -> dict[str, Any]:
    """Run :func:`checks_before_run`, log every finding, and fail the task (no retry) when
    one is blocking. Returns the counts per level and the warnings, for the XCom."""
    report = checks_before_run(ctx)
    for check in report.checks:
        if check.level is Level.BLOCKING:
            log.error("BLOCKING %s: %s. What to do: %s", check.title, check.finding, check.advice)
        elif check.level is Level.WARNING:
            log.warning("warning %s: %s. What to do: %s", check.title, check.finding, check.advice)
    counts = report.counts()
    log.info(
        "preflight of run %s: %d ok, %d warning, %d blocking (`make preflight` checks OneFile too)",
        ctx.run_id,
        counts["ok"],
        counts["warning"],
        counts["blocking"],
    )
    blocking = report.blocking()
    if blocking:
        _keep_room_for_the_error(ctx, report)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(failure_text(blocking))
    return {
        **counts,
        "warnings": [f"{c.title}: {c.finding}" for c in report.checks if c.level is Level.WARNING],
    }


def failure_text(blocking: list[Check]) -> str:
    """One line per blocking check: what is wrong and what to do."""
    lines = [f"PICSWeb does not fit the sync ({len(blocking)} blocking):"]
    lines += [f"- {c.title}: {c.finding}. What to do: {c.advice}" for c in blocking]
    return "\n".join(lines)


def _keep_room_for_the_error(ctx: RunContext, report: Report) -> None:
    """Create the sync's own tables in staging, as ``start_run`` would have, when they may
    be: the task's error is kept there (``sync_task_error``) and ``record_failure`` writes
    the run's record, even on a first run stopped here."""
    if any(c.id.startswith("staging.") and c.level is Level.BLOCKING for c in report.checks):
        return
    try:
        project_tables.ensure_project_tables(ctx.staging)
    except Exception:  # the check's own failure is what matters
        log.warning("could not create the sync's own tables in staging", exc_info=True)
