"""The embedded demo: one real run of ``onefile_picsweb_sync`` on generated data.

``make demo`` runs ``python -m picsweb_sync.demo``: it generates a OneFile customer and a
matching PICSWeb, serves the OneFile side from the simulator on 127.0.0.1, creates the
PICSWeb side in a SQLite file, gives Airflow the two connections as environment
variables, runs the DAG with ``dag.test()`` and prints what changed. The same helpers
drive the end-to-end tests, so the demo is what the tests prove.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DAG_ID = "onefile_picsweb_sync"
REPO = Path(__file__).resolve().parents[2]


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
    if parsed.get_backend_name() == "sqlite":
        return {"conn_type": "sqlite", "host": parsed.database}
    kinds = {"postgresql": "postgres", "mssql": "mssql"}
    return {
        "conn_type": kinds[parsed.get_backend_name()],
        "host": parsed.host,
        "port": parsed.port,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
    }


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
    from picsweb_sync import project_tables as pt

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


def main(argv: list[str] | None = None) -> int:
    from onefile_simulator import OneFileSimulator, generate_dataset
    from picsweb_sync.demo_db import create_picsweb_tables, load_picsweb_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--organisations", type=int, default=2)
    parser.add_argument("--learners", type=int, default=25)
    parser.add_argument("--data-dir", default=str(REPO / "demo-data"))
    args = parser.parse_args(argv)
    # Task logs stay in the Airflow home; the terminal shows what changed.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")

    dataset = generate_dataset(
        seed=args.seed, organisations=args.organisations, learners=args.learners
    )
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db_file = data_dir / "picsweb.sqlite"
    db_file.unlink(missing_ok=True)
    picsweb_url = f"sqlite:///{db_file}"
    engine = sa.create_engine(picsweb_url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, dataset.picsweb)

    with OneFileSimulator(dataset.onefile) as sim:
        print(f"OneFile simulator on {sim.base_url}; PICSWeb in {db_file}")
        env = connection_env(sim.base_url, sim.customer_token, picsweb_url)
        # The generated reviews sit around the dataset's "today"; the run's date puts them
        # inside its review window.
        when = datetime.combine(dataset.today, time(2, 0), tzinfo=UTC)
        with environment(env):
            _spoil_some_rows(sim)
            first = run_dag(logical_date=when)
            second = run_dag(logical_date=when + timedelta(hours=1))
        print(f"\nrun 1 {first.run_id}: {first.state}")
        _print_summary(summary(engine, first.run_id))
        print(f"\nrun 2 {second.run_id}: {second.state} (changes only what run 1 set aside)")
        _print_summary(summary(engine, second.run_id))
        print(f"\nOneFile calls received by the simulator: {len(sim.calls)}")
    ok = str(first.state) == "success" and str(second.state) == "success"
    return 0 if ok else 1


def _spoil_some_rows(sim) -> None:
    """A few malformed OneFile rows, as a real API sometimes sends: they are set aside with
    their reason while the rest of the run goes on, and merged once they come back intact."""
    sim.faults.malformed_rows("LearningAim", kinds=("bad_date", "text_number"))
    sim.faults.malformed_rows("Review", kinds=("missing_id",))


def _print_summary(s: dict[str, Any]) -> None:
    if not s["changes"]:
        print("  no field changed")
    for system, entity, field, n in s["changes"]:
        print(f"  {system:8} {entity:24} {field:28} {n:5} changed")
    for stage, reason, n in s["rejects"]:
        print(f"  reject  {stage:24} {reason[:60]:60} {n:5}")


if __name__ == "__main__":
    raise SystemExit(main())
