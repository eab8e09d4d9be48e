"""Issue 4 end to end: the DAG run by ``dag.test()`` against the simulator and PostgreSQL.

Expected values come from ``qualification_oracle`` (plain loops over the generator's
rows), never from the code under test.
"""

from __future__ import annotations

import pytest

from picsweb_sync.storage import picsweb_tables as pw
from tests.e2e.qualification_oracle import ELEMENTS, FILL_FIELDS, expected_after_sync

ONEFILE_FIELDS = [field for _, field in ELEMENTS] + [field for _, field, _ in FILL_FIELDS]


def _picsweb_quals(world) -> dict[int, dict]:
    frame = world.table(pw.trainee_qualification, "tq_id")
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {row["tq_id"]: row for row in rows}


def _onefile_aims(world) -> dict[int, dict]:
    return {a["ID"]: {f: a[f] for f in ONEFILE_FIELDS} for a in world.sim.data.learning_aims}


def _expected(world):
    quals, aims = expected_after_sync(world.original.picsweb, world.original.onefile.learning_aims)
    return quals, {i: {f: a[f] for f in ONEFILE_FIELDS} for i, a in aims.items()}


def _changed_fields(before: dict[int, dict], after: dict[int, dict]) -> set[tuple]:
    return {
        (key, field)
        for key, row in after.items()
        for field, value in row.items()
        if before[key][field] != value
    }


def _assert_clean_end_state(world, run_ids, onefile_audit=None):
    """``onefile_audit``: the audit frame holding OneFile writes when it is not PICSWeb's
    (staging in its own database)."""
    want_quals, want_aims = _expected(world)
    assert _picsweb_quals(world) == want_quals
    assert _onefile_aims(world) == want_aims
    # The audit lists each change once, across all runs and retries.
    audit = world.audit()
    audit = audit[audit["run_id"].isin(run_ids)]
    quals = audit[audit["entity"] == "trainee_qualification"]
    before_quals = {q["tq_id"]: q for q in world.original.picsweb["trainee_qualification"]}
    want_picsweb = {(str(k), f) for k, f in _changed_fields(before_quals, want_quals)}
    assert sorted(zip(quals["entity_key"], quals["field"], strict=True)) == sorted(want_picsweb)
    if onefile_audit is not None:
        audit = onefile_audit[onefile_audit["run_id"].isin(run_ids)]
    aims = audit[audit["entity"] == "LearningAim"]
    before_aims = {
        a["ID"]: {f: a[f] for f in ONEFILE_FIELDS} for a in world.original.onefile.learning_aims
    }
    want_onefile = {(str(k), f) for k, f in _changed_fields(before_aims, want_aims)}
    assert sorted(zip(aims["entity_key"], aims["field"], strict=True)) == sorted(want_onefile)


def test_first_run_leaves_exactly_the_expected_values_and_a_second_changes_nothing(world):
    first = world.run()
    assert str(first.state) == "success"
    _assert_clean_end_state(world, [first.run_id])
    # The generated mix makes every rule do something: a test that checks nothing can't pass.
    audit = world.audit(first.run_id)
    fields = set(audit.loc[audit["entity"] == "trainee_qualification", "field"])
    assert fields >= {
        "onefile_learning_aim_id",
        "total_elements",
        "elements_done",
        "registration_number",
        "registration_date",
        "certificate_applied_date",
        "certificate_received_date",
    }
    assert set(audit.loc[audit["system"] == "onefile", "entity"]) >= {"LearningAim"}

    world.sim.reset_calls()
    second = world.run()
    assert str(second.state) == "success"
    assert world.audit(second.run_id).empty
    assert [
        c.path
        for c in world.sim.calls
        if c.method == "POST"
        and c.path.startswith(("/LearningAim/", "/Visit", "/Review"))
        and "/Search" not in c.path
    ] == []
    _assert_clean_end_state(world, [first.run_id, second.run_id])


def test_units_keep_picsweb_elements(world):
    unit_tqs = {u["tq_id"] for u in world.original.picsweb["trainee_qualification_unit"]}
    assert unit_tqs
    assert str(world.run().state) == "success"
    now = _picsweb_quals(world)
    before = {q["tq_id"]: q for q in world.original.picsweb["trainee_qualification"]}
    for tq_id in unit_tqs:
        assert (now[tq_id]["total_elements"], now[tq_id]["elements_done"]) == (
            before[tq_id]["total_elements"],
            before[tq_id]["elements_done"],
        )


def test_integration_off_ends_green_and_touches_nothing(world):
    world.set_settings(integration_enabled=False)
    run = world.run()
    assert str(run.state) == "success"
    assert world.sim.calls == []
    assert _picsweb_quals(world) == {
        q["tq_id"]: q for q in world.original.picsweb["trainee_qualification"]
    }
    assert world.audit(run.run_id).empty


def _fail_once(monkeypatch, target, name, after_calls=0):
    """Make ``target.name`` raise once, on call number ``after_calls + 1``."""
    real = getattr(target, name)
    calls = {"n": 0, "raised": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == after_calls + 1 and not calls["raised"]:
            calls["raised"] += 1
            raise ConnectionError(f"injected crash in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, flaky)
    return calls


@pytest.mark.parametrize(
    ("module", "name", "after_calls"),
    [
        # extract: the crash comes after the staging rows are written, inside the transaction
        ("picsweb_sync.stages.extract.project_tables", "record_counts", 0),
        # merge: after its change sets are committed
        ("picsweb_sync.stages.merge", "_counts", 0),
        # load: after PICSWeb was changed and committed, before the report
        ("picsweb_sync.stages.load", "_report", 0),
        # push: after two learning aims were sent, on the third
        ("onefile.hook.OneFileHook", "update_learning_aim", 2),
        # finish: after last_synchronised was set, before the run record closes
        ("picsweb_sync.stages.start_finish.project_tables", "finish_run", 0),
    ],
    ids=["extract", "merge", "load", "push", "finish"],
)
def test_a_task_that_fails_once_is_retried_to_a_clean_runs_end_state(
    world, monkeypatch, module, name, after_calls
):
    import importlib

    path, _, attr = module.rpartition(".")
    try:
        target = getattr(importlib.import_module(path), attr)
    except (ImportError, AttributeError):
        target = importlib.import_module(module)
    calls = _fail_once(monkeypatch, target, name, after_calls)
    run = world.run()
    assert calls["raised"] == 1, "the injected crash never happened"
    assert str(run.state) == "success"
    _assert_clean_end_state(world, [run.run_id])
    aim_posts = [
        c
        for c in world.sim.calls
        if c.method == "POST" and c.path.startswith("/LearningAim/") and "/Search" not in c.path
    ]
    assert len(aim_posts) == len({c.path for c in aim_posts}), "a learning aim was sent twice"


def test_staging_on_its_own_connection(world, monkeypatch, tmp_path):
    """Param staging_conn_id puts the sync's own tables in another database (here SQLite,
    beside a PostgreSQL PICSWeb); PICSWeb then holds only what must commit with its
    changes (work tables and the audit of PICSWeb writes)."""
    import sqlalchemy as sa

    from picsweb_sync.storage import project_tables as pt
    from picsweb_sync.storage.sqlframes import read_frame

    staging_file = tmp_path / "staging.sqlite"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SYNC_STAGING", f'{{"conn_type": "sqlite", "host": "{staging_file}"}}'
    )
    run = world.run(staging_conn_id="sync_staging")
    assert str(run.state) == "success"
    staging = sa.create_engine(f"sqlite:///{staging_file}")
    with staging.connect() as conn:
        onefile_audit = read_frame(conn, sa.select(pt.sync_audit))
    _assert_clean_end_state(world, [run.run_id], onefile_audit)
    with staging.connect() as conn:
        staged = conn.execute(
            sa.select(sa.func.count())
            .select_from(pt.STAGING["learning_aims"])
            .where(pt.STAGING["learning_aims"].c.run_id == run.run_id)
        ).scalar_one()
        outcome = conn.execute(
            sa.select(pt.sync_run.c.outcome).where(pt.sync_run.c.run_id == run.run_id)
        ).scalar_one()
    assert staged == len(world.original.onefile.learning_aims)
    assert outcome == "success"
    assert not sa.inspect(world.picsweb).has_table(pt.STAGING["learning_aims"].name)
    staging.dispose()
