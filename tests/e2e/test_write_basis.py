"""Every write carries its basis (issue 18, cases 1 and 3): a change set is judged by the
OneFile data it was merged from, never by its run's latest extract, and a run's staging,
change sets and basis are purged together, so no order of clears and purges applies
OneFile data older than what PICSWeb already holds.

The real DAG through ``dag.test()`` (``sync_demo.dag_runs``), the simulator over HTTP and
PICSWeb on PostgreSQL; a cleared task is its stage function run with the old run's context,
as tests/e2e/test_reruns.py does (tests/airflow clears tasks on a real scheduler).
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa
import time_machine
from airflow.sdk.exceptions import AirflowSkipException

from picsweb_sync.run import freshness
from picsweb_sync.run.runtime import RunContext, settings_snapshot
from picsweb_sync.run.settings import read_settings
from picsweb_sync.stages import extract, load
from picsweb_sync.stages import merge as merge_stage
from picsweb_sync.stages import start_finish as report
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables.common import database_now
from tests.e2e.conftest import clear_extracts
from tests.e2e.test_reruns import _cleared, _last_synchronised, _picsweb, _run

ELEMENTS = (5, 7, 9)  # OneFile's ElementsDone before runs D1, D2, D3


def _aim_without_units(world) -> tuple[dict, int]:
    """A OneFile learning aim linked to a PICSWeb qualification without units (rule 1
    applies to it) after a first run, and that qualification's ``tq_id``."""
    quals = world.table(pw.trainee_qualification, "tq_id").dropna(
        subset=["onefile_learning_aim_id"]
    )
    units = world.table(pw.trainee_qualification_unit, "tqu_id")
    quals = quals[~quals["tq_id"].isin(units["tq_id"])]
    by_aim = dict(zip(quals["onefile_learning_aim_id"].astype(int), quals["tq_id"], strict=True))
    aim = next(a for a in world.sim.data.learning_aims if a["ID"] in by_aim)
    return aim, int(by_aim[aim["ID"]])


def _elements_done(world, tq_id: int) -> int:
    quals = world.table(pw.trainee_qualification, "tq_id").set_index("tq_id")
    return int(quals.loc[tq_id, "elements_done"])


def _three_days(world, tq_id: int, aim: dict):
    """Runs D1, D2, D3 with OneFile's ElementsDone 5, 7 and 9: PICSWeb follows."""
    runs = []
    aim["TotalElements"] = 20
    for hours, done in zip((1, 2, 3), ELEMENTS, strict=True):
        aim["ElementsDone"] = done
        run = _run(world, hours=hours)
        assert str(run.state) == "success"
        assert _elements_done(world, tq_id) == done
        runs.append(run)
    return runs


def test_a_load_is_judged_by_its_change_sets_basis_not_by_a_later_extract(world):
    """Case 1: clear merge (with downstream) on D1, then its extracts without downstream,
    then its load: the change set still comes from D1's first extract (ElementsDone 5),
    and must not be loaded over D3's 9, although D1's staging is now the newest."""
    assert str(_run(world).state) == "success"
    aim, tq_id = _aim_without_units(world)
    d1, _, d3 = _three_days(world, tq_id, aim)
    old = _cleared(world, d1)

    merge_stage.merge_qualifications(old)  # tasks clear -t merge_qualifications -d
    with pytest.raises(AirflowSkipException, match=re.escape(f"run {d3.run_id} already")):
        load.load_qualifications(old)
    clear_extracts(old)  # tasks clear -t extract_ (no -d): staging newer than the change set
    with world.picsweb.connect() as conn:
        staged = freshness.extracted_at(conn, d1.run_id, freshness.QUALIFICATIONS)
        basis = freshness.change_basis(conn, d1.run_id, freshness.QUALIFICATIONS)
    assert staged > basis.extracted_at
    audit_rows = len(world.audit())

    with pytest.raises(AirflowSkipException, match=re.escape(f"run {d3.run_id} already")):
        load.load_qualifications(old)  # tasks clear -t load_qualifications

    assert _elements_done(world, tq_id) == 9  # not set back to 5
    assert len(world.audit()) == audit_rows
    # Merged again from the fresh extract (clear -t merge -d), D1 is as fresh as any run.
    merge_stage.merge_qualifications(old)
    counts = load.load_qualifications(old)
    assert (counts["fields_changed"], counts["conflicts"]) == (0, 0)
    assert _elements_done(world, tq_id) == 9


def _age(world, run_id: str, days: int, tables=pt.PURGED_TABLES) -> None:
    """Make every per-run row of ``run_id`` in ``tables`` ``days`` older."""
    with world.picsweb.begin() as conn:
        for table in tables:
            conn.execute(
                sa.update(table)
                .where(table.c.run_id == run_id)
                .values(created_at=table.c.created_at - dt.timedelta(days=days))
            )


def _started_review(world, first_run) -> tuple[int, int]:
    """A linked review OneFile holds as not started after ``first_run``; it starts now in
    OneFile. Returns (OneFile review ID, PICSWeb review ID)."""
    linked = world.table(pw.review, "review_id").dropna(subset=["onefile_system_id"])
    by_onefile = dict(
        zip(linked["onefile_system_id"].astype(int), linked["review_id"], strict=True)
    )
    review = next(
        r for r in world.sim.data.reviews if r["ID"] in by_onefile and r.get("StartedOn") is None
    )
    review["StartedOn"] = review["ScheduledFor"]
    return review["ID"], int(by_onefile[review["ID"]])


def test_retention_purges_a_run_whole_so_a_cleared_load_finds_its_basis_or_nothing(world):
    """Case 3: an old run's staging is past retention, its change set was re-made by a
    clear; the purge takes the run whole or not at all, so its load is either refused
    (the basis is there) or has nothing left to write. Attended Y never becomes U."""
    first = _run(world)
    assert str(first.state) == "success"
    onefile_id, review_id = _started_review(world, first)
    second = _run(world, hours=1)
    assert str(second.state) == "success"
    after_second = _picsweb(world)
    assert after_second["review"].set_index("review_id").loc[review_id, "attended"] == "Y"
    old = _cleared(world, first)

    _age(world, first.run_id, days=40)  # the first run's rows are past retention
    merge_stage.merge_reviews(old)  # its merge cleared today: a fresh change set, Y -> U
    with world.picsweb.begin() as conn:
        kept = pt.purge(conn, older_than_days=30)
    assert not any(kept.values())  # the run's newest row is today's: nothing of it goes
    with pytest.raises(AirflowSkipException, match=re.escape(f"run {second.run_id} already")):
        load.load_reviews(old)
    pd.testing.assert_frame_equal(_picsweb(world)["review"], after_second["review"])

    _age(world, first.run_id, days=40)  # now all of it is old: purged together
    with world.picsweb.begin() as conn:
        purged = pt.purge(conn, older_than_days=30)
    assert purged["sync_change_basis"] == 2 and purged["sync_cs_picsweb_update"] > 0
    with world.picsweb.connect() as conn:
        assert freshness.change_basis(conn, first.run_id, freshness.REVIEWS) is None
        assert pt.read_change_set(conn, first.run_id, "picsweb_updates", "reviews").empty
    counts = load.load_reviews(old)  # nothing left to write, nothing refused
    assert (counts["fields_changed"], counts["reviews_inserted"]) == (0, 0)
    synced = _last_synchronised(world)
    report.finish_run(old)  # a purged run claims no sync
    assert _last_synchronised(world) == synced
    pd.testing.assert_frame_equal(_picsweb(world)["review"], after_second["review"])


def test_a_change_set_without_a_basis_is_never_applied(world):
    """A change set whose basis is gone (a partial purge by an older version, a row lost)
    is refused, changing nothing, with what to do."""
    first = _run(world)
    assert str(first.state) == "success"
    _started_review(world, first)
    old = _cleared(world, first)
    clear_extracts(old)
    merge_stage.merge_reviews(old)  # OneFile's review started: a change to load
    with world.picsweb.connect() as conn:
        changes = pt.read_change_set(conn, first.run_id, "picsweb_updates", "reviews")
    assert not changes.empty
    with world.picsweb.begin() as conn:
        conn.execute(sa.delete(pt.sync_change_basis))
    before = _picsweb(world)

    with pytest.raises(AirflowSkipException, match="has no recorded basis"):
        load.load_reviews(old)

    pd.testing.assert_frame_equal(_picsweb(world)["review"], before["review"])


def test_extracts_are_stamped_by_the_databases_clock_not_the_workers(world):
    """A worker whose clock runs hours ahead stamps its staged rows with the database's
    time, read just before the first search: its old data can never pass for newer data
    another worker extracted later (the basis of every write compares these stamps)."""
    with world.picsweb.connect() as conn:
        settings = read_settings(conn)
    ctx = RunContext(
        run_id="skewed worker",
        run_type="manual",
        interval_start=world.when - dt.timedelta(days=1),
        interval_end=world.when,
        settings_snapshot=settings_snapshot(settings),
        task_label="extract_learners",
        try_number=1,
    )
    organisation_id = settings.organisation_ids[0]
    pt.ensure_project_tables(world.picsweb)  # as start_run does
    before = database_now(world.picsweb)
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    with time_machine.travel(ahead, tick=True):
        extract.extract_learners(ctx, organisation_id)
    after = database_now(world.picsweb)
    with world.picsweb.connect() as conn:
        stamps = conn.execute(
            sa.select(sa.distinct(pt.STAGING["learners"].c.created_at)).where(
                pt.STAGING["learners"].c.run_id == "skewed worker"
            )
        ).scalars()
        (stamp,) = list(stamps)
    assert before <= stamp <= after
