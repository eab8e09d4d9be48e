"""End-to-end fixtures: the real DAG run by ``dag.test()`` against the OneFile simulator
over HTTP and a PICSWeb on the tests' own PostgreSQL server."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, time

import pytest
import sqlalchemy as sa

from onefile_simulator import Dataset, OneFileSimulator, generate_dataset
from picsweb_sync.run.runtime import RunContext, run_type_value, settings_snapshot
from picsweb_sync.run.settings import read_settings
from picsweb_sync.stages import extract
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.sqlframes import read_frame
from sync_demo.dag_runs import connection_env, run_dag
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

# Small backoff so a test that makes OneFile fail does not wait for real-world delays.
FAST_HOOK = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "timeout_seconds": 5}


@dataclass
class World:
    dataset: Dataset
    original: Dataset  # untouched copy: what both systems held before any run
    picsweb: sa.Engine
    sim: OneFileSimulator
    when: datetime  # logical date that puts the generated reviews inside the window

    def run(self, **conf):
        return run_dag(logical_date=self.when, conf=conf)

    def table(self, table: sa.Table, order_by: str):
        with self.picsweb.connect() as conn:
            return read_frame(conn, sa.select(table).order_by(table.c[order_by]))

    def audit(self, run_id: str | None = None):
        stmt = sa.select(pt.sync_audit)
        if run_id is not None:
            stmt = stmt.where(pt.sync_audit.c.run_id == run_id)
        with self.picsweb.connect() as conn:
            return read_frame(conn, stmt.order_by(pt.sync_audit.c.audit_id))

    def cleared(self, run, task_label: str = "cleared task", try_number: int = 4) -> RunContext:
        """The context a cleared task of ``run`` gets: its run id, type and interval, and the
        settings PICSWeb holds now (clearing a task makes Airflow run its body again)."""
        with self.picsweb.connect() as conn:
            settings = read_settings(conn)
        return RunContext(
            run_id=run.run_id,
            run_type=run_type_value(run.run_type),
            interval_start=run.data_interval_start,
            interval_end=run.data_interval_end,
            settings_snapshot=settings_snapshot(settings),
            task_label=task_label,
            try_number=try_number,
        )

    def set_settings(self, **values):
        with self.picsweb.begin() as conn:
            conn.execute(sa.update(pw.onefile_settings).values(**values))


def clear_extracts(ctx: RunContext) -> None:
    """``airflow tasks clear -t extract_`` without downstream: every extract task of the
    run, for every organisation, run again with the run's context."""
    for organisation_id in ctx.settings.organisation_ids:
        for task in (
            extract.extract_learners,
            extract.extract_assessors,
            extract.extract_learning_aims,
            extract.extract_reviews,
        ):
            task(ctx, organisation_id)


@pytest.fixture
def world(pg_url, airflow_db, monkeypatch) -> World:
    dataset = generate_dataset(seed=11, organisations=2, learners=12)
    original = copy.deepcopy(dataset)
    engine = sa.create_engine(pg_url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, dataset.picsweb)
    sim = OneFileSimulator(dataset.onefile)
    sim.start()
    for key, value in connection_env(sim.base_url, sim.customer_token, pg_url, FAST_HOOK).items():
        monkeypatch.setenv(key, value)
    yield World(
        dataset=dataset,
        original=original,
        picsweb=engine,
        sim=sim,
        when=datetime.combine(dataset.today, time(2, 0), tzinfo=UTC),
    )
    sim.stop()
    engine.dispose()
