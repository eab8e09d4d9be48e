"""What one task of a run needs to know, built once from the Airflow context.

Stage functions take a ``RunContext`` instead of the Airflow context so they can be called
from tests and scripts with plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from picsweb_sync.settings import SyncSettings
from picsweb_sync.window import SyncPlan, plan_run

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from onefile.hook import OneFileHook


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
        return cls(
            settings_snapshot=(started or {}).get("settings"),
            run_id=dag_run.run_id,
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

    def param(self, name: str, default: Any) -> Any:
        value = self.params.get(name)
        return default if value is None else value

    @cached_property
    def picsweb(self) -> Engine:
        from picsweb_sync.db import engine_for_connection

        return engine_for_connection(self.picsweb_conn_id)

    @cached_property
    def staging(self) -> Engine:
        from picsweb_sync.db import engine_for_connection

        return engine_for_connection(self.staging_conn_id)

    def onefile(self) -> OneFileHook:
        from onefile.hook import OneFileHook

        return OneFileHook(onefile_conn_id=self.onefile_conn_id)


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
