"""What one task of a run needs to know, built once from the Airflow context.

Stage functions take a ``RunContext`` instead of the Airflow context so they can be called
from tests and scripts with plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from picsweb_sync.run.settings import SyncSettings
from picsweb_sync.run.window import SyncPlan, plan_run

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from onefile.hook import OneFileHook
    from picsweb_sync.run.locks import Fence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    run_id: str
    run_type: str
    interval_start: datetime
    interval_end: datetime
    onefile_conn_id: str = "onefile_api"
    picsweb_conn_id: str = "picsweb_db"
    staging_conn_id: str = "picsweb_db"
    params: Mapping[str, Any] = field(default_factory=dict)
    # The settings row as ``start_run`` read it: every task of a run works to one snapshot,
    # even when someone edits the settings screen while the run is going.
    settings_snapshot: Mapping[str, Any] | None = None
    # Who is working: ``task[map index] try n``, for locks and error records.
    task_label: str = "task"
    try_number: int | None = None
    dag_id: str = "onefile_picsweb_sync"

    @classmethod
    def from_airflow(cls, context: Mapping[str, Any]) -> RunContext:
        params = dict(context.get("params") or {})
        dag_run = context["dag_run"]
        now = datetime.now(UTC)
        start = context.get("data_interval_start") or context.get("logical_date") or now
        end = context.get("data_interval_end") or start
        started = None
        ti = context.get("ti")
        if ti is not None and ti.task_id != "start_run":
            started = ti.xcom_pull(task_ids="start_run")
        label, try_number = "task", None
        if ti is not None:
            map_index = getattr(ti, "map_index", -1)
            label = (
                ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}[{map_index}]"
            )
            try_number = getattr(ti, "try_number", None)
        return cls(
            task_label=label,
            try_number=try_number,
            settings_snapshot=(started or {}).get("settings"),
            run_id=dag_run.run_id,
            dag_id=getattr(dag_run, "dag_id", None) or "onefile_picsweb_sync",
            run_type=run_type_value(getattr(dag_run, "run_type", None)),
            interval_start=start,
            interval_end=end,
            onefile_conn_id=params.get("onefile_conn_id", "onefile_api"),
            picsweb_conn_id=params.get("picsweb_conn_id", "picsweb_db"),
            staging_conn_id=params.get("staging_conn_id")
            or params.get("picsweb_conn_id", "picsweb_db"),
            params=params,
        )

    @cached_property
    def plan(self) -> SyncPlan:
        return plan_run(
            run_type=self.run_type,
            interval_start=self.interval_start,
            interval_end=self.interval_end,
            days_before=int(self.param("review_days_before", 30)),
            days_after=int(self.param("review_days_after", 30)),
            mode=str(self.param("mode", "auto")),
        )

    @property
    def settings(self) -> SyncSettings:
        if self.settings_snapshot is None:
            raise RuntimeError("no settings snapshot: start_run has not run for this DAG run")
        return settings_from_snapshot(self.settings_snapshot)

    def require_qualifications(self) -> None:
        """Skip the current task unless this run syncs learners and qualifications."""
        if not self.plan.does_qualifications:
            skip_task("qualifications are not synced in a reviews-only (backfill) run")

    def require_download(self) -> None:
        """Skip the current task unless *Download Review Data* is on (rule 6)."""
        if not self.settings.download_review_data:
            skip_task("Download Review Data is off in the PICSWeb OneFile settings")

    def require_upload(self) -> None:
        """Skip the current task unless this run uploads reviews (rule 5)."""
        if not self.plan.does_uploads:
            skip_task("reviews are not uploaded in a reviews-only (backfill) run")
        if not self.settings.upload_review_data:
            skip_task("Upload Review Data is off in the PICSWeb OneFile settings")

    def lock(self, name: str) -> AbstractContextManager[Fence]:
        """Hold the staging database's lock ``name`` (``picsweb_sync.run.locks``) for a write,
        waiting up to the ``lock_wait_minutes`` Param for a run that holds it; yields the
        holder's :class:`~picsweb_sync.run.locks.Fence`, to check before each write
        (``fence.check(conn)`` in a staging transaction, ``fence.check_now()`` before a
        OneFile write): it raises ``LockLost`` once another holder has taken the lock."""
        from picsweb_sync.run import locks

        holder = f"run {self.run_id}, {self.task_label} try {self.try_number}"
        wait = timedelta(minutes=float(self.param("lock_wait_minutes", 60)))
        return locks.held(self.staging, name, holder, wait)

    @property
    def dry_run(self) -> bool:
        """A dry run (the ``dry_run`` Param) extracts and merges and records what it would
        change, and writes nothing to PICSWeb or OneFile."""
        return bool(self.param("dry_run", False))

    def param(self, name: str, default: Any) -> Any:
        value = self.params.get(name)
        return default if value is None else value

    @cached_property
    def picsweb(self) -> Engine:
        from picsweb_sync.storage.engines import engine_for_connection

        return engine_for_connection(self.picsweb_conn_id)

    @cached_property
    def staging(self) -> Engine:
        from picsweb_sync.storage.engines import engine_for_connection

        return engine_for_connection(self.staging_conn_id)

    def onefile(self) -> OneFileHook:
        """A hook whose calls count against the customer's one budget, which every task
        of every run shares through the staging database (``picsweb_sync.run.call_budget``):
        a task never spends the minute its predecessor in the pool already spent."""
        from onefile.hook import OneFileHook
        from picsweb_sync.run.budget_limiter import limiter_factory

        return OneFileHook(
            onefile_conn_id=self.onefile_conn_id, limiter_factory=limiter_factory(self.staging)
        )


def run_type_value(run_type: Any) -> str:
    """``backfill``, ``scheduled``, ``manual``, ... from Airflow's run type.

    Inside a task the run type is the ``DagRunType`` enum, whose ``str()`` is
    ``DagRunType.BACKFILL``: compare its ``.value``, never its text.
    """
    if run_type is None:
        return "manual"
    return str(getattr(run_type, "value", run_type))


def settings_snapshot(settings: SyncSettings) -> dict[str, Any]:
    """The settings as plain JSON values, for the XCom of ``start_run``."""
    values = asdict(settings)
    values["organisation_ids"] = list(settings.organisation_ids)
    last = settings.last_synchronised
    values["last_synchronised"] = None if last is None else last.isoformat()
    return values


def settings_from_snapshot(values: Mapping[str, Any]) -> SyncSettings:
    last = values.get("last_synchronised")
    return SyncSettings(
        **{
            **values,
            "organisation_ids": tuple(values["organisation_ids"]),
            "last_synchronised": None if last is None else datetime.fromisoformat(last),
        }
    )


def skip_task(reason: str) -> NoReturn:
    """End the current task as *skipped* (grey in the UI) with ``reason`` in its log."""
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(reason)


_MAX_ERROR_CHARS = 4000


def run_stage(stage: str, context: Mapping[str, Any], **arguments: Any) -> Any:
    """Run the stage function ``stage`` (``module.function`` under ``picsweb_sync``) for
    the current task: its :class:`RunContext` first, then ``arguments``.

    Its first log line names the task and its arguments (a mapped extract's organisation),
    so a failure or a retry reads right from the top. An error is kept in the run's
    ``sync_task_error`` (free of secrets) before it is raised again, so ``record_failure``
    can say why the run failed.
    """
    import importlib

    from airflow.sdk.exceptions import AirflowSkipException

    module, _, name = stage.rpartition(".")
    function = getattr(importlib.import_module(f"picsweb_sync.{module}"), name)
    ctx = RunContext.from_airflow(context)
    described = ", ".join(f"{key}={value}" for key, value in arguments.items())
    label = f"{ctx.task_label} ({described})" if described else ctx.task_label
    log.info("%s of run %s, try %s", label, ctx.run_id, ctx.try_number)
    try:
        return function(ctx, **arguments)
    except AirflowSkipException:
        raise
    except BaseException as exc:
        _keep_error(ctx, label, exc)
        raise


def failed_tasks(context: Mapping[str, Any]) -> list[str]:
    """The run's failed task instances as Airflow knows them (``task`` or ``task_<map
    index>``), including one whose process was killed before it could say anything."""
    ti, dag_run = context.get("ti"), context["dag_run"]
    try:
        states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id])
    except Exception:  # the failure record must still be written
        log.warning("could not read the run's task states from Airflow", exc_info=True)
        return []
    return sorted(
        task for task, state in states.get(dag_run.run_id, {}).items() if state == "failed"
    )


def error_text(exc: BaseException) -> str:
    """``Type: message`` with every secret Airflow knows of masked, shortened for the record."""
    text = f"{type(exc).__name__}: {exc}"
    try:
        from airflow.sdk.log import redact

        text = str(redact(text))
    except ImportError:  # without Airflow (plain scripts) there are no registered secrets
        pass
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text


def _keep_error(ctx: RunContext, label: str, exc: BaseException) -> None:
    from picsweb_sync.storage import project_tables

    try:
        with ctx.staging.begin() as conn:
            project_tables.record_task_error(
                conn, ctx.run_id, label, ctx.try_number, error_text(exc)
            )
    except Exception:  # the staging database may be what failed: the task's own error wins
        log.warning("could not record the error of %s in sync_task_error", label, exc_info=True)
