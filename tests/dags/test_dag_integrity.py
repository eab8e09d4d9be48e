"""Every DAG in dags/ imports cleanly, is documented and owned, retries, and does no I/O at import."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


class _NetworkAtImport(AssertionError):
    pass


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_dag_folder_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "onefile_picsweb_sync" in dagbag.dag_ids


def test_every_dag_is_documented_tagged_owned_and_retried(dagbag):
    assert dagbag.dags, "no DAG found"
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 200, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            assert t.retries >= 2, f"{dag_id}.{t.task_id} retries {t.retries}"


def test_importing_the_dag_folder_makes_no_network_call(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise _NetworkAtImport(f"network call at import: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert bag.dag_ids


def test_refusing_the_network_would_catch_a_top_level_call(monkeypatch, tmp_path):
    """The guard above can fail: a DAG file that opens a socket at import is reported."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "noisy_dag.py").write_text(
        "import socket\nsocket.create_connection(('127.0.0.1', 9))\nfrom airflow.sdk import dag\n"
    )

    def refuse(*args, **kwargs):
        raise _NetworkAtImport("network call at import")

    monkeypatch.setattr(socket, "create_connection", refuse)
    bag = DagBag(dag_folder=str(tmp_path), safe_mode=False)
    assert any("network call at import" in err for err in bag.import_errors.values())


def test_retry_delay_survives_serialisation_for_mapped_tasks_too(dagbag):
    """The scheduler works from the serialised DAG; mapped tasks there fall back to 300 s
    unless the DAG names its retry delay (the tests set the configured delay to 0)."""
    from datetime import timedelta

    from airflow.sdk import conf
    from airflow.serialization.serialized_objects import DagSerialization

    configured = timedelta(seconds=conf.getint("core", "default_task_retry_delay"))
    for dag in dagbag.dags.values():
        scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
        delays = {t.task_id: t.retry_delay for t in scheduler_dag.tasks}
        assert set(delays.values()) == {configured}, delays


def test_every_task_that_calls_onefile_shares_the_rate_limit_pool(dagbag):
    dag = dagbag.dags["onefile_picsweb_sync"]
    callers = {t.task_id for t in dag.tasks if t.task_id.startswith(("extract_", "push_"))}
    assert len(callers) == 6
    assert {t.task_id: t.pool for t in dag.tasks if t.task_id in callers} == dict.fromkeys(
        callers, "onefile_api"
    )
    others = {t.pool for t in dag.tasks if t.task_id not in callers}
    assert "onefile_api" not in others


def test_every_task_has_a_finite_execution_timeout_also_after_serialisation(dagbag):
    """A hung call or a lock never released ends as a failure, not a run blocking the next
    day's; the scheduler works from the serialised DAG, mapped tasks included."""
    from datetime import timedelta

    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.dags["onefile_picsweb_sync"]
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    for tasks in (dag.tasks, scheduler_dag.tasks):
        timeouts = {t.task_id: t.execution_timeout for t in tasks}
        assert None not in timeouts.values(), timeouts
        assert all(timedelta(0) < t <= timedelta(hours=6) for t in timeouts.values()), timeouts
    # Every task of a run in sequence still ends well before the next day's run.
    longest = {t.task_id: t.execution_timeout for t in dag.tasks}
    path = ("preflight", "start_run", "extract_reviews", "merge_reviews", "load_reviews")
    path += ("plan_review_uploads", "push_reviews", "report_drift", "finish_run")
    path += ("check_thresholds",)
    assert sum((longest[t] for t in path), timedelta(0)) < timedelta(hours=20)


def test_writing_tasks_may_wait_for_the_lock_and_still_do_their_work(dagbag):
    """Loads and pushes may wait lock_wait_minutes for another run's lock first."""
    from datetime import timedelta

    dag = dagbag.dags["onefile_picsweb_sync"]
    wait = timedelta(minutes=dag.params["lock_wait_minutes"])
    writers = {t.task_id: t for t in dag.tasks if t.task_id.startswith(("load_", "push_"))}
    assert len(writers) == 4
    for task_id, task in writers.items():
        assert task.execution_timeout >= wait + timedelta(minutes=30), task_id
    # The pushes' own work: 10,000 OneFile writes at 300 calls a minute, two calls each.
    for task_id in ("push_learning_aims", "push_reviews"):
        calls_minutes = 10_000 * 2 / 300
        assert writers[task_id].execution_timeout >= wait + timedelta(minutes=calls_minutes)


def test_thresholds_are_checked_after_finish_run_with_nullable_params(dagbag):
    dag = dagbag.dags["onefile_picsweb_sync"]
    check = dag.get_task("check_thresholds")
    assert check.upstream_task_ids == {"finish_run"}
    assert check.downstream_task_ids == set()
    assert check.trigger_rule == "none_failed"
    params = dag.params
    assert {
        name: params[name]
        for name in ("max_rejects", "max_reject_share", "max_conflicts", "max_conflict_share")
    } == {
        "max_rejects": 100,
        "max_reject_share": 0.1,
        "max_conflicts": 50,
        "max_conflict_share": 0.1,
    }
    from picsweb_sync.run.thresholds import THRESHOLD_DEFAULTS

    assert {name: params[name] for name in THRESHOLD_DEFAULTS} == THRESHOLD_DEFAULTS
    for name in THRESHOLD_DEFAULTS:  # null turns a threshold off; negatives are refused
        param = params.get_param(name)
        param.resolve(None)
        with pytest.raises(Exception, match="minimum"):
            param.resolve(-1)


def test_the_drift_report_runs_after_the_loads_and_pushes_and_before_the_summary(dagbag):
    """report_drift reads what every load and push left, runs when a branch was skipped
    (a reviews-only run) but not after a failure, calls no OneFile, and finish_run (whose
    summary counts it) and so check_thresholds come after it (issue 22)."""
    dag = dagbag.dags["onefile_picsweb_sync"]
    drift = dag.get_task("report_drift")
    assert drift.upstream_task_ids == {"push_learning_aims", "push_reviews"}
    assert drift.downstream_task_ids == {"finish_run", "record_failure"}
    assert drift.trigger_rule == "none_failed"
    assert drift.pool != "onefile_api"
    assert drift.execution_timeout == dag.get_task("merge_qualifications").execution_timeout
    before = drift.get_flat_relative_ids(upstream=True)
    writers = {"load_qualifications", "push_learning_aims", "load_reviews", "push_reviews"}
    assert writers <= before
    assert dag.get_task("finish_run").upstream_task_ids == {"report_drift"}
    assert {"finish_run", "check_thresholds"} <= drift.get_flat_relative_ids(upstream=False)
    # A failed drift report is a failed run: record_failure hears of it.
    failure = dag.get_task("record_failure")
    assert "report_drift" in failure.upstream_task_ids
    assert failure.trigger_rule == "one_failed"


def test_the_preflight_runs_first_and_everything_else_after_it(dagbag):
    """A PICSWeb that no longer fits stops the run before any other task (issue 13)."""
    dag = dagbag.dags["onefile_picsweb_sync"]
    assert [t.task_id for t in dag.roots] == ["preflight"]
    assert dag.get_task("start_run").upstream_task_ids == {"preflight"}
    downstream = dag.get_task("preflight").get_flat_relative_ids(upstream=False)
    assert downstream == {t.task_id for t in dag.tasks} - {"preflight"}
    assert dag.get_task("preflight").pool != "onefile_api"  # it makes no OneFile call
