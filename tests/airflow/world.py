"""What the tests of this folder share: the running Airflow and what its DAG talks to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pendulum
import sqlalchemy as sa

from onefile_simulator import Dataset, OneFileSimulator
from picsweb_sync.demo import DAG_ID
from tests.support.airflow_server import AirflowServer

# The day of the full run the tests share: the day README's "rerun one task" example names,
# the day before the generated dataset's "today" (its reviews sit around that day).
DAILY_RUN_DAY = date(2026, 3, 20)


def at_0200_london(day: date) -> datetime:
    """The logical date of the DAG's run for ``day`` (02:00 UK time), as aware UTC."""
    local = pendulum.datetime(day.year, day.month, day.day, 2, tz="Europe/London")
    return datetime.fromtimestamp(local.timestamp(), tz=UTC)


@dataclass
class AirflowWorld:
    """The running Airflow, the OneFile simulator and PICSWeb its DAG's connections name."""

    airflow: AirflowServer
    dataset: Dataset
    sim: OneFileSimulator
    picsweb: sa.Engine
    startup_seconds: float
    dag_id: str = DAG_ID

    @property
    def today(self) -> date:
        return self.dataset.today

    # Shortcuts with the DAG id filled in.
    def trigger(self, logical_date: datetime, **conf) -> str:
        return self.airflow.trigger(self.dag_id, logical_date, conf)["dag_run_id"]

    def wait(self, run_id: str, timeout: float = 150) -> str:
        return self.airflow.wait_for_run(self.dag_id, run_id, timeout)["state"]

    def tis(self, run_id: str) -> list[dict]:
        return self.airflow.task_instances(self.dag_id, run_id)

    def states(self, run_id: str) -> dict[tuple[str, int], str | None]:
        return self.airflow.task_states(self.dag_id, run_id)

    def runs(self, **filters) -> list[dict]:
        return self.airflow.dag_runs(self.dag_id, **filters)
