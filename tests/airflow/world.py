"""What the tests of this folder share: the running Airflow and what its DAG talks to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import pendulum
import sqlalchemy as sa

from onefile_simulator import Dataset, OneFileSimulator
from onefile_simulator.server import RecordedCall
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import DAG_ID
from tests.support.airflow_server import AirflowServer
from tests.support.smtp import SmtpServer

# The day of the full run the tests share: the day README's "rerun one task" example names,
# the day before the generated dataset's "today" (its reviews sit around that day).
DAILY_RUN_DAY = date(2026, 3, 20)
# The shared full run is triggered as the data team triggers one with other Params: this
# overrides a Param's default (30), and the run's plan must show it.
DAILY_RUN_CONF = {"review_days_before": 45}


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
    # The local SMTP server the DAG's alerts go to (the sync_alerts_smtp connection).
    smtp: SmtpServer | None = None
    alert_to: str = "data-team@example.org"
    dag_id: str = DAG_ID
    # A run as it was when it finished: its task instances and what start_run returned
    # (later tests may clear it: the documented March backfill takes over the shared run).
    finished_tis: dict[str, list[dict]] = field(default_factory=dict)
    finished_start: dict[str, dict] = field(default_factory=dict)

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

    # ----- what the two systems hold ---------------------------------------------------
    def picsweb_rows(self) -> dict[str, list[dict[str, Any]]]:
        """PICSWeb's reviews and trainee qualifications, every column, in key order: what
        a sync writes, compared whole before and after a step."""
        with self.picsweb.connect() as conn:
            return {
                "review": _rows(conn, pw.review, pw.review.c.review_id),
                "trainee_qualification": _rows(
                    conn, pw.trainee_qualification, pw.trainee_qualification.c.tq_id
                ),
            }

    def audit_rows(self) -> int:
        """How many field changes the sync has audited (either system), all runs."""
        with self.picsweb.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(pt.sync_audit)).scalar()

    def sync_run(self, run_id: str) -> dict[str, Any] | None:
        """The sync's own record of an Airflow run (``sync_run``), if it wrote one."""
        with self.picsweb.connect() as conn:
            row = conn.execute(sa.select(pt.sync_run).where(pt.sync_run.c.run_id == run_id))
            found = row.mappings().one_or_none()
        return None if found is None else dict(found)

    def call_mark(self) -> int:
        """A bookmark in the simulator's call log: ``onefile_writes(since=...)``."""
        return len(self.sim.calls)

    def onefile_writes(self, since: int = 0) -> list[RecordedCall]:
        """The writes OneFile received (creates and updates; no search, no sign-in)."""
        return [
            c
            for c in list(self.sim.calls)[since:]
            if c.method in {"POST", "PUT", "PATCH", "DELETE"}
            and "/Search" not in c.path
            and c.path != "/Authentication"
        ]

    def duplicate_reviews(self) -> dict[str, list]:
        """Reviews held twice: in PICSWeb, one trainee's reviews at the same date and time;
        in OneFile, one learner's reviews scheduled for the same instant. The generated
        dataset has none, so any is one the sync made."""
        with self.picsweb.connect() as conn:
            keys = conn.execute(
                sa.select(
                    pw.review.c.trainee_id, pw.review.c.scheduled_date, pw.review.c.start_time
                )
            ).all()
        onefile = Counter(
            (r.get("LearnerID"), r.get("ScheduledFor")) for r in self.sim.data.reviews
        )
        return {
            "picsweb": sorted((k for k, n in Counter(map(tuple, keys)).items() if n > 1), key=str),
            "onefile": sorted((k for k, n in onefile.items() if n > 1), key=str),
        }

    def broken_review_links(self) -> list[tuple[int, int]]:
        """PICSWeb reviews linked to a OneFile review that does not exist or is another
        learner's: (review_id, onefile_system_id)."""
        learner_of_review = {r["ID"]: r.get("LearnerID") for r in self.sim.data.reviews}
        with self.picsweb.connect() as conn:
            rows = conn.execute(
                sa.select(
                    pw.review.c.review_id,
                    pw.review.c.onefile_system_id,
                    pw.trainee.c.onefile_learner_id,
                )
                .join(pw.trainee, pw.trainee.c.trainee_id == pw.review.c.trainee_id)
                .where(pw.review.c.onefile_system_id.is_not(None))
            ).all()
        return [
            (review_id, system_id)
            for review_id, system_id, learner in rows
            if learner_of_review.get(system_id, object()) != learner
        ]

    def add_review_to_upload(self, template: dict[str, Any], day: date, at: time) -> int:
        """A new PICSWeb review like ``template`` (its trainee, type and officer) on ``day``
        at ``at``, with nothing recorded yet, so rule 5 uploads it: its ``review_id``."""
        new_review = {
            **{k: v for k, v in template.items() if k != "review_id"},
            "scheduled_date": day,
            "start_time": at,
            "end_time": None,
            "attended": None,
            "actual_date": None,
            "trainee_signed_date": None,
            "onefile_system_id": None,
        }
        with self.picsweb.begin() as conn:
            return conn.execute(
                sa.insert(pw.review).values(**new_review).returning(pw.review.c.review_id)
            ).scalar_one()

    def assert_consistent(self) -> None:
        """No review held twice in either system, every PICSWeb link to a real review."""
        assert self.duplicate_reviews() == {"picsweb": [], "onefile": []}
        assert self.broken_review_links() == []


def _rows(conn, table: sa.Table, key: sa.Column) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(sa.select(table).order_by(key)).mappings()]
