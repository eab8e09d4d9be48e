"""The DAG's first task, ``preflight``, in real runs (``dag.test()``) against the simulator
and PostgreSQL: a PICSWeb that no longer fits stops the run at its start, with the reason,
before any OneFile call or PICSWeb write; a dry run goes on past a write permission it does
not use."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from picsweb_sync.preflight import dag_check
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import run_dag
from tests.preflight.conftest import Pair


@pytest.fixture
def dag_pair(pair: Pair, airflow_db, monkeypatch) -> Pair:
    for key, value in pair.env.items():
        monkeypatch.setenv(key, value)
    return pair


def _run(pair: Pair, **conf):
    today = pair.sim.data.reviews[0]["ScheduledFor"][:10]  # the generated reviews' days
    day = datetime.combine(datetime.fromisoformat(today).date(), time(2), tzinfo=UTC)
    return run_dag(logical_date=day, conf=conf)


def _states(run) -> dict[str, set[str]]:
    states: dict[str, set[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(str(ti.state))
    return states


def _picsweb_rows(pair: Pair) -> dict[str, list]:
    """Every row of every PICSWeb table, whatever columns it has now."""
    with pair.picsweb.connect() as conn:
        return {
            table.name: conn.execute(sa.text(f"SELECT * FROM {table.name} ORDER BY 1")).all()
            for table in pw.metadata.sorted_tables
        }


def test_a_missing_column_stops_the_run_at_its_first_task_with_the_reason(dag_pair: Pair):
    pair = dag_pair
    pair.execute("ALTER TABLE trainee_qualification DROP COLUMN certificate_received_date")
    before = _picsweb_rows(pair)
    pair.sim.reset_calls()

    run = _run(pair)

    assert str(run.state) == "failed"
    states = _states(run)
    assert states["preflight"] == {"failed"}
    assert states["start_run"] == {"upstream_failed"}
    ran = {task for task, seen in states.items() if seen & {"success", "failed"}}
    assert ran == {"preflight", "record_failure"}  # nothing else ran
    (preflight,) = [ti for ti in run.get_task_instances() if ti.task_id == "preflight"]
    assert preflight.try_number == 1  # not retried: the answer would not change
    assert pair.sim.calls == []
    assert _picsweb_rows(pair) == before
    with pair.picsweb.connect() as conn:
        failure = conn.execute(
            sa.select(pt.sync_run.c.failure).where(pt.sync_run.c.run_id == run.run_id)
        ).scalar_one()
    assert failure.startswith("preflight (try 1): AirflowFailException: PICSWeb does not fit")
    assert "column trainee_qualification.certificate_received_date: missing" in failure
    assert "What to do: add the column" in failure


def _context(**params) -> RunContext:
    now = datetime.now(UTC)
    return RunContext(
        run_id="manual__preflight",
        run_type="manual",
        interval_start=now,
        interval_end=now,
        params=params,
    )


def test_a_dry_run_passes_a_missing_update_grant_as_a_warning(dag_pair: Pair, monkeypatch):
    """A dry run writes nothing to PICSWeb, so a login without UPDATE may still do one;
    a real run may not."""
    pair = dag_pair
    role = f"sync_dry_{pair.picsweb.url.database}"
    pair.execute(
        f"CREATE ROLE {role} LOGIN",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT CREATE ON SCHEMA public TO {role}",
    )
    pair.connect_as(role)
    for key, value in pair.env.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(AirflowFailException, match="permissions on trainee_qualification"):
        dag_check.check_before_run(_context())
    found = dag_check.check_before_run(_context(dry_run=True))
    assert found["blocking"] == 0
    assert any("permissions on trainee_qualification" in w for w in found["warnings"])

    dry = _run(pair, dry_run=True)
    assert str(dry.state) == "success", _states(dry)
    assert _states(dry)["preflight"] == {"success"}
