"""The drift report in every run, through the real DAG (``dag.test()`` against the simulator
and PostgreSQL): ``report_drift`` runs after the loads and pushes and before ``finish_run``,
whose summary and note carry its counts by reason; after a clean run every difference left
between OneFile and PICSWeb is explained, so the default ``max_unexplained`` (0) passes
(issue 22)."""

from __future__ import annotations

import sqlalchemy as sa

from picsweb_sync.rules.drift import REASONS
from picsweb_sync.run import note as run_note
from picsweb_sync.run.summary import read_run_summary
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.sqlframes import read_frame


def _ends(run) -> dict[str, object]:
    return {
        ti.task_id: (ti.state, ti.end_date) for ti in run.get_task_instances() if ti.map_index < 0
    }


def test_a_clean_run_reports_its_drift_and_explains_every_difference(world, monkeypatch):
    notes: list[tuple[str, str, str]] = []
    monkeypatch.setattr(run_note, "publish", lambda *args: notes.append(args) or True)

    run = world.run()

    assert str(run.state) == "success"
    ends = _ends(run)
    assert str(ends["report_drift"][0]) == "success"
    for before in ("load_qualifications", "push_learning_aims", "load_reviews", "push_reviews"):
        assert ends[before][1] <= ends["report_drift"][1], before
    assert ends["report_drift"][1] <= ends["finish_run"][1] <= ends["check_thresholds"][1]

    with world.picsweb.connect() as conn:
        stored = read_run_summary(conn, run.run_id)
        rows = read_frame(
            conn, sa.select(pt.sync_drift).where(pt.sync_drift.c.run_id == run.run_id)
        )
        recorded = pt.run_counts(conn, run.run_id)["report_drift"]
    drift = stored["summary"]["drift"]
    by_reason = rows["reason"].value_counts().to_dict()
    assert drift == {reason: by_reason.get(reason, 0) for reason in REASONS}
    assert recorded == {f"drift_{reason}": n for reason, n in drift.items()}
    assert set(rows["reason"]) <= set(REASONS)
    unexplained = rows[rows["reason"] == "unexplained"]
    assert unexplained.empty, unexplained[["entity", "field", "onefile_value", "picsweb_value"]]
    assert stored["thresholds_crossed"] == []

    note = notes[-1][2]
    assert f"drift: {sum(drift.values())} difference" in note or "no difference left" in note
    assert "unexplained (a defect" not in note


def test_a_dry_run_skips_the_drift_report_and_still_ends_green(world):
    run = world.run(dry_run=True)

    assert str(run.state) == "success"
    assert str(_ends(run)["report_drift"][0]) == "skipped"
    assert str(_ends(run)["finish_run"][0]) == "success"
    with world.picsweb.connect() as conn:
        stored = read_run_summary(conn, run.run_id)
        count = conn.execute(
            sa.select(sa.func.count()).where(pt.sync_drift.c.run_id == run.run_id)
        ).scalar_one()
    assert "drift" not in stored["summary"] and count == 0
