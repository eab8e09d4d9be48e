"""Runs of ``onefile_picsweb_sync`` in this process, as the demo and the end-to-end tests make
them: Airflow's two connections as ``AIRFLOW_CONN_*`` variables, the logical date of the run
for a UK day, one ``dag.test()`` run, and what a run changed from the sync's own audit.

Kept apart from the command line (:mod:`sync_demo.cli`) and free of the simulator, so a test
that brings its own OneFile and PICSWeb runs the DAG exactly as ``make demo`` does.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from picsweb_sync.run.window import SyncPlan, plan_run

DAG_ID = "onefile_picsweb_sync"
REPO = Path(__file__).resolve().parents[2]
UK = ZoneInfo("Europe/London")
# The database connection type Airflow gets for each SQLAlchemy backend.
CONN_TYPES = {"sqlite": "sqlite", "postgresql": "postgres", "mssql": "mssql"}


def connection_env(
    onefile_base_url: str,
    customer_token: str,
    picsweb_url: str,
    onefile_extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the simulator and a PICSWeb database URL."""
    onefile = {"conn_type": "http", "host": onefile_base_url, "password": customer_token}
    if onefile_extra:
        onefile["extra"] = dict(onefile_extra)
    return {
        "AIRFLOW_CONN_ONEFILE_API": json.dumps(onefile),
        "AIRFLOW_CONN_PICSWEB_DB": json.dumps(_db_connection(picsweb_url)),
    }


def _db_connection(url: str) -> dict[str, Any]:
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend not in CONN_TYPES:
        raise ValueError(f"no Airflow connection type for {backend!r}; expected {list(CONN_TYPES)}")
    if backend == "sqlite":
        return {"conn_type": "sqlite", "host": parsed.database}
    values = {
        "conn_type": CONN_TYPES[backend],
        "host": parsed.host,
        "port": parsed.port,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
    }
    return {key: value for key, value in values.items() if value is not None}


def uk_today() -> date:
    """Today's date in the UK: the demo's default day."""
    return datetime.now(UK).date()


def logical_date_for(day: date) -> datetime:
    """The logical date of the run for ``day``: 02:00 UK time, when the DAG is scheduled."""
    return datetime.combine(day, time(2), tzinfo=UK)


def trigger_logical_date(day: date, now: datetime | None = None) -> datetime:
    """The logical date to trigger the run for ``day`` with: 02:00 UK time of ``day``, or
    now when that is still to come (between midnight and 02:00 UK on that day).

    Airflow runs no task of a run whose logical date is in the future, so a run for 02:00
    triggered at 00:30 would wait until 02:00. A triggered run's data interval, and so its
    review window, comes from when it is triggered, so now gives the same run."""
    now = (now or datetime.now(UK)).replace(microsecond=0)
    return min(logical_date_for(day), now.astimezone(UK))


def manual_run_window(day: date, days_before: int = 30, days_after: int = 30) -> SyncPlan:
    """The review window of a run triggered (UI, REST API, ``dag.test()``) with the logical
    date of ``day``: Airflow gives it the UK day before as its data interval."""
    end = logical_date_for(day).astimezone(UTC)
    start = logical_date_for(day - timedelta(days=1)).astimezone(UTC)
    return plan_run(
        run_type="manual",
        interval_start=start,
        interval_end=end,
        days_before=days_before,
        days_after=days_after,
    )


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.get_dag(DAG_ID)


def run_dag(logical_date: datetime | None = None, conf: Mapping[str, Any] | None = None):
    """One ``dag.test()`` run; returns the DagRun (its state tells success or failure)."""
    dag = load_dag()
    return dag.test(logical_date=logical_date or datetime.now(UTC), run_conf=dict(conf or {}))


def summary(picsweb: sa.Engine, run_id: str | None = None) -> dict[str, Any]:
    """What a run changed, from the sync's own audit, reject and outbox tables."""
    from picsweb_sync.storage import project_tables as pt

    where_audit = [] if run_id is None else [pt.sync_audit.c.run_id == run_id]
    where_reject = [] if run_id is None else [pt.sync_reject.c.run_id == run_id]
    with picsweb.connect() as conn:
        changes = conn.execute(
            sa.select(
                pt.sync_audit.c.system,
                pt.sync_audit.c.entity,
                pt.sync_audit.c.field,
                sa.func.count().label("n"),
            )
            .where(*where_audit)
            .group_by(pt.sync_audit.c.system, pt.sync_audit.c.entity, pt.sync_audit.c.field)
            .order_by(pt.sync_audit.c.system, pt.sync_audit.c.entity, pt.sync_audit.c.field)
        ).all()
        rejects = conn.execute(
            sa.select(pt.sync_reject.c.stage, pt.sync_reject.c.reason).where(*where_reject)
        ).all()
    # A reason names the row's own details in brackets; the summary counts the kinds.
    kinds = Counter((stage, reason.split(" (")[0]) for stage, reason in rejects)
    return {
        "changes": [tuple(r) for r in changes],
        "rejects": [(stage, reason, n) for (stage, reason), n in sorted(kinds.items())],
    }
