"""Thresholds through the real DAG (``dag.test()`` against the simulator and PostgreSQL):
a run whose rejects cross ``max_rejects`` still syncs everything, then fails loudly in
``check_thresholds``, naming the threshold and the numbers; its summary matches what the
run did, as the audit tells it."""

from __future__ import annotations

import sqlalchemy as sa

from picsweb_sync.run import note as run_note
from picsweb_sync.run.summary import read_run_summary
from picsweb_sync.run.thresholds import crossed_thresholds
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import load_dag


def _states(run) -> dict[str, set[str]]:
    states: dict[str, set[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(str(ti.state))
    return states


def test_crossing_max_rejects_fails_the_run_after_everything_is_synced(world, monkeypatch):
    notes: list[tuple[str, str, str]] = []
    monkeypatch.setattr(run_note, "publish", lambda *args: notes.append(args) or True)
    world.sim.faults.inject_rows("LearningAim", [None])  # one page element that is no object
    with world.picsweb.connect() as conn:
        synced_before = conn.execute(sa.select(pw.onefile_settings.c.last_synchronised)).scalar()

    run = world.run(max_rejects=0)

    # ----- the run is red, through check_thresholds alone, without a retry ----------------
    assert str(run.state) == "failed"
    states = _states(run)
    assert states.pop("check_thresholds") == {"failed"}
    assert states.pop("record_failure") == {"skipped"}  # no step failed
    assert set().union(*states.values()) == {"success"}, states
    (check,) = [ti for ti in run.get_task_instances() if ti.task_id == "check_thresholds"]
    assert check.try_number == 1

    # ----- ... and everything safe was done: PICSWeb and OneFile changed, run recorded -----
    audit = world.audit(run.run_id)
    picsweb_changes = audit[audit["system"] == "picsweb"]
    assert len(picsweb_changes) > 0
    with world.picsweb.connect() as conn:
        synced = conn.execute(sa.select(pw.onefile_settings.c.last_synchronised)).scalar()
        record = conn.execute(
            sa.select(pt.sync_run).where(pt.sync_run.c.run_id == run.run_id)
        ).one()
        stored = read_run_summary(conn, run.run_id)
    assert synced is not None and synced != synced_before
    assert record.outcome == "failed"
    rejects = stored["summary"]["rejects"]
    crossed = f"rejects {rejects} > max_rejects 0"
    assert crossed in record.failure and "synced" in record.failure
    assert crossed in stored["thresholds_crossed"]
    assert stored["first_ended_at"] is not None

    # ----- the summary says what the run did (counted apart: the audit and the data) ------
    summary = stored["summary"]
    assert summary["rejects_by_kind"]["not a JSON object"] == 1
    assert summary["rejects"] == sum(summary["rejects_by_kind"].values())
    reviews = picsweb_changes[picsweb_changes["entity"] == "review"]
    created = set(reviews.loc[reviews["field"] == "trainee_id", "entity_key"])
    inserted = reviews["entity_key"].isin(created)
    linked = (reviews["field"] == "onefile_system_id") & ~inserted
    assert summary["picsweb_reviews_created"] == len(created) > 0
    assert summary["picsweb_fields_changed"] == len(picsweb_changes) - inserted.sum() - linked.sum()
    assert summary["picsweb_fields_changed"] > 0
    onefile = audit[audit["system"] == "onefile"]
    assert summary["onefile_fields_changed"] == (onefile["entity"] == "LearningAim").sum() > 0
    created_in_onefile = onefile["field"] == "created_from_picsweb_review"
    assert summary["onefile_reviews_created"] == created_in_onefile.sum() > 0
    organisations = set(world.dataset.picsweb["onefile_settings"][0]["organisation_ids"].split(","))
    learners = [
        u
        for u in world.original.onefile.users
        if u.get("Role") == 1 and str(u.get("OrganisationID")) in {o.strip() for o in organisations}
    ]
    assert summary["learners_extracted"] == len(learners) > 0
    assert summary["learning_aims_extracted"] > 0 and summary["reviews_extracted"] > 0
    assert summary["conflicts"] == 0 and summary["outbox_pending"] == 0
    assert summary["dry_run"] is False

    # ----- the note: first the summary, then the thresholds named, each with the link -----
    assert [n[1] for n in notes] == [run.run_id, run.run_id]
    assert notes[0][2].startswith("✅ synced")
    assert notes[1][2].startswith(f"⚠️ thresholds crossed: {crossed}")
    assert "/onefile-sync/runs/" in notes[1][2]

    # ----- with the DAG's default thresholds the same run passes -------------------------
    params = load_dag().params
    assert crossed_thresholds(summary, {name: params[name] for name in params}) == []
