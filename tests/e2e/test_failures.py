"""How runs fail, end to end: a refused customer token fails at once without retries, one
branch failing never stops the other, and the run record says why."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from picsweb_sync.stages import load
from picsweb_sync.stages import merge as merge_stage
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import connection_env
from tests.e2e.conftest import FAST_HOOK


def _states(run) -> dict[str, set[str]]:
    states: dict[str, set[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(str(ti.state))
    return states


def _record(world, run_id: str):
    with world.picsweb.connect() as conn:
        return conn.execute(sa.select(pt.sync_run).where(pt.sync_run.c.run_id == run_id)).one()


def _audited_tables(world, run_id: str) -> set[str]:
    return set(world.audit(run_id)["entity"])


def test_a_refused_customer_token_fails_the_run_at_once_naming_the_connection(world, monkeypatch):
    url = world.picsweb.url.render_as_string(hide_password=False)
    wrong = connection_env(world.sim.base_url, "not-the-customer-token", url, FAST_HOOK)
    monkeypatch.setenv("AIRFLOW_CONN_ONEFILE_API", wrong["AIRFLOW_CONN_ONEFILE_API"])
    run = world.run()
    assert str(run.state) == "failed"
    extracts = [ti for ti in run.get_task_instances() if ti.task_id.startswith("extract_")]
    assert extracts and {str(ti.state) for ti in extracts} == {"failed"}
    assert {ti.try_number for ti in extracts} == {1}, "an authentication failure was retried"
    logins = world.sim.calls_to("/Authentication")
    assert len(logins) == len(extracts)  # one refused login per task, none repeated
    failure = _record(world, run.run_id).failure
    assert "connection 'onefile_api'" in failure and "HTTP 401" in failure
    assert "not-the-customer-token" not in failure
    assert world.audit(run.run_id).empty  # nothing written anywhere


@pytest.mark.parametrize(
    ("broken", "target", "name", "still_done", "stopped", "audited"),
    [
        (
            "load_qualifications",
            load,
            "load_qualifications",
            {"merge_reviews", "load_reviews", "plan_review_uploads", "push_reviews"},
            {"push_learning_aims"},
            "review",
        ),
        (
            "merge_reviews",
            merge_stage,
            "merge_reviews",
            {"merge_qualifications", "load_qualifications", "push_learning_aims"},
            {"load_reviews", "plan_review_uploads", "push_reviews"},
            "trainee_qualification",
        ),
    ],
    ids=["qualifications-fail", "reviews-fail"],
)
def test_one_branch_failing_never_stops_the_other(
    world, monkeypatch, broken, target, name, still_done, stopped, audited
):
    def crash(ctx):
        raise RuntimeError(f"injected failure of {broken}")

    monkeypatch.setattr(target, name, crash)
    run = world.run()
    assert str(run.state) == "failed"
    states = _states(run)
    assert states[broken] == {"failed"}
    for task in still_done:
        assert states[task] == {"success"}, task
    for task in stopped:
        assert states[task] == {"upstream_failed"}, task
    assert states["finish_run"] == {"upstream_failed"}
    assert states["record_failure"] == {"success"}
    assert audited in _audited_tables(world, run.run_id)  # the other branch really wrote
    record = _record(world, run.run_id)
    assert record.outcome == "failed"
    assert f"{broken} (try 3): RuntimeError: injected failure of {broken}" in record.failure
