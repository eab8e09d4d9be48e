"""What one task of a run needs to know, built once from the Airflow context.

Stage functions take a ``RunContext`` instead of the Airflow context so they can be called
from tests and scripts with plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

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

    @classmethod
    def from_airflow(cls, context: Mapping[str, Any]) -> RunContext:
        params = dict(context.get("params") or {})
        dag_run = context["dag_run"]
        now = datetime.now(UTC)
        start = context.get("data_interval_start") or context.get("logical_date") or now
        end = context.get("data_interval_end") or start
        return cls(
            run_id=dag_run.run_id,
            run_type=str(getattr(dag_run, "run_type", "manual")),
            interval_start=start,
            interval_end=end,
            onefile_conn_id=params.get("onefile_conn_id", "onefile_api"),
            picsweb_conn_id=params.get("picsweb_conn_id", "picsweb_db"),
            staging_conn_id=params.get("staging_conn_id")
            or params.get("picsweb_conn_id", "picsweb_db"),
            params=params,
        )

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
