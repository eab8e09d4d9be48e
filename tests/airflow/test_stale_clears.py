"""Issue 18, cases 1-3, as the data team meets them: old runs' tasks cleared through the
REST API (what ``airflow tasks clear`` and the UI's *Clear* do) on the session's running
Airflow (scheduler, two Celery workers; see conftest.py), after newer runs.

One sequence of three runs of consecutive days, D1, D2 and D3, with OneFile edited before
each (a learning aim's ElementsDone 5, 7, 9; a review made in PICSWeb, uploaded by D1,
moved in OneFile before D2; a review started in OneFile before D3), serves all three:

- case 1: D1's ``merge_qualifications`` cleared with downstream (its load refuses), then
  D1's ``extract_`` tasks without downstream (its staging is now newer than D3's), then
  D1's ``load_qualifications``: refused again, PICSWeb keeps D3's 9;
- case 2: D1's ``push_reviews`` cleared: PICSWeb keeps the date and time D2 downloaded, not
  the payload D1 sent, and OneFile holds the review once;
- case 3: D2's rows made 40 days old and its ``merge_reviews`` cleared (a change set of
  today from staging that is past retention): D3's ``finish_run`` purges nothing of D2
  (never a part of a run), D2's cleared ``load_reviews`` refuses (attended stays Y); made
  old again, D2 is purged whole, and its cleared ``finish_run`` leaves
  ``last_synchronised`` alone.

tests/e2e/test_write_basis.py has the same cases through ``dag.test()`` and direct calls;
here the scheduler decides what runs, what is skipped and what follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from onefile_simulator.data import format_instant
from picsweb_sync.run import freshness
from picsweb_sync.run.settings import read_settings
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from tests.airflow.world import AirflowWorld, at_0200_london
from tests.support.airflow_server import FINAL_TI_STATES

pytestmark = pytest.mark.airflow_server

LONDON = ZoneInfo("Europe/London")
# Days no other test of this folder runs (one run per logical date).
DAYS = (date(2026, 4, 10), date(2026, 4, 11), date(2026, 4, 12))
ELEMENTS = (5, 7, 9)  # OneFile's ElementsDone before D1, D2, D3
TOTAL_ELEMENTS = 20
# A review a data team member adds in PICSWeb before D1 (UK date and time; D1 uploads it),
# and where OneFile moves it before D2 (D2 downloads the move).
UPLOADED_AT = (date(2026, 4, 15), time(11, 15))
MOVED_TO = (date(2026, 4, 17), time(14, 45))
EXTRACTS = ("extract_learners", "extract_assessors", "extract_learning_aims", "extract_reviews")
# Older than the retention_days Param's default (30 days).
AGE = timedelta(days=40)
REVIEW_DAYS = timedelta(days=30)  # review_days_before / _after (the Params' defaults)


@dataclass
class ThreeDays:
    runs: tuple[str, str, str]  # D1, D2, D3
    tq_id: int  # the qualification whose OneFile aim goes 5 -> 7 -> 9
    uploaded: int  # the PICSWeb review D1 uploads (case 2)
    uploaded_onefile: int  # its OneFile ID
    started: int  # the PICSWeb review whose OneFile review starts before D3 (case 3)


# ----- what PICSWeb and the sync hold ---------------------------------------------------
def _elements_done(world: AirflowWorld, tq_id: int) -> int | None:
    tq = pw.trainee_qualification.c
    with world.picsweb.connect() as conn:
        return conn.execute(sa.select(tq.elements_done).where(tq.tq_id == tq_id)).scalar_one()


def _review(world: AirflowWorld, review_id: int) -> dict[str, Any]:
    with world.picsweb.connect() as conn:
        row = conn.execute(sa.select(pw.review).where(pw.review.c.review_id == review_id))
        return dict(row.mappings().one())


def _last_synchronised(world: AirflowWorld) -> datetime | None:
    with world.picsweb.connect() as conn:
        return conn.execute(sa.select(pw.onefile_settings.c.last_synchronised)).scalar_one()


def _run_rows(world: AirflowWorld, run_id: str) -> dict[str, int]:
    """How many rows the run has in each of the sync's per-run (purged) tables."""
    with world.picsweb.connect() as conn:
        return {
            table.name: conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)
            ).scalar_one()
            for table in pt.PURGED_TABLES
        }


def _age(world: AirflowWorld, run_id: str) -> None:
    """Make every per-run row of ``run_id`` AGE older (past the retention period)."""
    with world.picsweb.begin() as conn:
        for table in pt.PURGED_TABLES:
            conn.execute(
                sa.update(table)
                .where(table.c.run_id == run_id)
                .values(created_at=table.c.created_at - AGE)
            )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _onefile_instant(day: date, at: time) -> str:
    """A UK date and time as OneFile writes the instant."""
    return format_instant(datetime.combine(day, at, tzinfo=LONDON))


# ----- clearing through the REST API ----------------------------------------------------
def _tries(world: AirflowWorld, run_id: str) -> dict[tuple[str, int], int]:
    return {(t["task_id"], t["map_index"]): t["try_number"] for t in world.tis(run_id)}


def _clear(
    world: AirflowWorld,
    run_id: str,
    task_ids: list[str] | tuple[str, ...],
    downstream: bool = False,
    watch: tuple[str, ...] = (),
) -> dict[tuple[str, int], str | None]:
    """Clear ``task_ids`` of a finished run (every map index), with or without their
    downstream tasks, as the UI's *Clear* does; wait until each of them (and ``watch``)
    has run again and the run has ended. Returns the run's task states."""
    airflow = world.airflow
    before = _tries(world, run_id)
    airflow.clear_task_instances(
        world.dag_id,
        dag_run_id=run_id,
        task_ids=list(task_ids),
        only_failed=False,
        include_downstream=downstream,
        include_upstream=False,
        reset_dag_runs=True,
    )
    keys = [key for key in before if key[0] in (*task_ids, *watch)]

    def rerun() -> bool:
        now = {(t["task_id"], t["map_index"]): t for t in world.tis(run_id)}
        return all(
            now[key]["try_number"] > before[key] and now[key]["state"] in FINAL_TI_STATES
            for key in keys
        )

    airflow.wait_until(rerun, 180, f"{', '.join(task_ids)} of {run_id} to run again")
    final = airflow.wait_for_run(world.dag_id, run_id, timeout=180)
    assert final["state"] == "success", airflow.ti_summary(world.dag_id, run_id)
    after = _tries(world, run_id)
    if not downstream:  # exactly the cleared tasks ran again
        ran = {key for key, n in after.items() if n != before[key]}
        assert ran == {key for key in before if key[0] in task_ids}, ran
    return world.states(run_id)


def _refusal_logged(world: AirflowWorld, run_id: str, task_id: str, newer_run: str) -> bool:
    """Whether the task's latest try says it refused because ``newer_run`` loaded newer data."""
    ti = world.airflow.task_instance(world.dag_id, run_id, task_id)
    events = world.airflow.task_log(world.dag_id, run_id, task_id, ti["try_number"])
    return any(f"not loading: run {newer_run} already loaded" in str(e) for e in events)


# ----- the world before D1 --------------------------------------------------------------
def _synced_organisations(world: AirflowWorld) -> tuple[int, ...]:
    with world.picsweb.connect() as conn:
        settings = read_settings(conn)
    assert settings.upload_review_data and settings.download_review_data, settings
    return settings.organisation_ids


def _aim_without_units(world: AirflowWorld, organisations: tuple[int, ...]) -> tuple[dict, int]:
    """A OneFile learning aim linked by ID to a PICSWeb qualification without units (rule 1
    applies to it) of its own learner, and that qualification's ``tq_id``."""
    tq, trainee = pw.trainee_qualification.c, pw.trainee.c
    with world.picsweb.connect() as conn:
        rows = conn.execute(
            sa.select(tq.tq_id, tq.onefile_learning_aim_id, trainee.onefile_learner_id)
            .join_from(pw.trainee_qualification, pw.trainee, tq.trainee_id == trainee.trainee_id)
            .where(
                tq.onefile_learning_aim_id.is_not(None),
                tq.tq_id.not_in(sa.select(pw.trainee_qualification_unit.c.tq_id)),
            )
            .order_by(tq.tq_id)
        ).all()
    organisation_of = {u["ID"]: u.get("OrganisationID") for u in world.sim.data.users}
    aims = {a["ID"]: a for a in world.sim.data.learning_aims}
    found = [
        (aims[aim_id], tq_id)
        for tq_id, aim_id, learner_id in rows
        if aim_id in aims
        and aims[aim_id].get("UserID") == learner_id
        and organisation_of.get(learner_id) in organisations
    ]
    assert found, "no linked learning aim without units"
    return found[-1]  # the last: test_scenarios grows the first one's total


def _add_review_to_upload(world: AirflowWorld, organisations: tuple[int, ...]) -> int:
    """A review a data team member adds in PICSWeb, eligible for upload (rule 5): a Normal
    review of a linked trainee whose officer is on OneFile, with no OneFile ID."""
    with world.picsweb.connect() as conn:
        officers = dict(
            conn.execute(sa.select(pw.officer.c.officer_id, pw.officer.c.onefile_id)).all()
        )
        learner_of = dict(
            conn.execute(sa.select(pw.trainee.c.trainee_id, pw.trainee.c.onefile_learner_id)).all()
        )
        reviews = [
            dict(r)
            for r in conn.execute(sa.select(pw.review).order_by(pw.review.c.review_id)).mappings()
        ]
    organisation_of = {u["ID"]: u.get("OrganisationID") for u in world.sim.data.users}
    taken = {(r["trainee_id"], r["scheduled_date"], r["start_time"]) for r in reviews}
    onefile_taken = {
        (r.get("LearnerID"), _instant(r["ScheduledFor"])) for r in world.sim.data.reviews
    }

    def free(trainee_id: int) -> bool:
        learner = learner_of.get(trainee_id)
        return all(
            (trainee_id, *at) not in taken
            and (learner, _instant(_onefile_instant(*at))) not in onefile_taken
            for at in (UPLOADED_AT, MOVED_TO)
        )

    template = next(
        r
        for r in reversed(reviews)
        if r["onefile_system_id"] is not None
        and (r["review_type"] or "").strip().lower() == "normal"
        and officers.get(r["officer_id"]) is not None
        and organisation_of.get(learner_of.get(r["trainee_id"])) in organisations
        and free(r["trainee_id"])
    )
    return world.add_review_to_upload(template, *UPLOADED_AT)


def _review_to_start(world: AirflowWorld, organisations: tuple[int, ...]) -> dict:
    """A linked OneFile review not started, scheduled inside both D2's and D3's review
    windows, whose PICSWeb review is not attended: it starts before D3."""
    lo = at_0200_london(DAYS[2]) - REVIEW_DAYS
    hi = at_0200_london(DAYS[1] + timedelta(days=1)) + REVIEW_DAYS
    rv, trainee = pw.review.c, pw.trainee.c
    with world.picsweb.connect() as conn:
        linked = {
            row.onefile_system_id: row
            for row in conn.execute(
                sa.select(
                    rv.review_id, rv.onefile_system_id, rv.attended, trainee.onefile_learner_id
                )
                .join_from(pw.review, pw.trainee, rv.trainee_id == trainee.trainee_id)
                .where(rv.onefile_system_id.is_not(None))
            )
        }
    organisation_of = {u["ID"]: u.get("OrganisationID") for u in world.sim.data.users}
    found = [
        r
        for r in world.sim.data.reviews
        if r["ID"] in linked
        and r.get("StartedOn") is None
        and linked[r["ID"]].attended != "Y"
        and linked[r["ID"]].onefile_learner_id == r.get("LearnerID")
        and organisation_of.get(r.get("LearnerID")) in organisations
        and lo <= _instant(r["ScheduledFor"]) < hi
    ]
    assert found, "no linked review left to start"
    return {"onefile": found[-1], "review_id": int(linked[found[-1]["ID"]].review_id)}


def _run_day(world: AirflowWorld, day: date) -> str:
    run_id = world.trigger(at_0200_london(day))
    state = world.wait(run_id, timeout=300)
    assert state == "success", world.airflow.ti_summary(world.dag_id, run_id)
    return run_id


@pytest.fixture(scope="module")
def three_days(airflow_world) -> ThreeDays:
    """D1, D2, D3 triggered through the REST API, OneFile edited before each."""
    world = airflow_world
    world.airflow.wait_for_backfill_done(world.dag_id)
    world.airflow.set_paused(world.dag_id, False)
    organisations = _synced_organisations(world)
    aim, tq_id = _aim_without_units(world, organisations)
    uploaded = _add_review_to_upload(world, organisations)
    to_start = _review_to_start(world, organisations)
    aim["TotalElements"] = TOTAL_ELEMENTS

    aim["ElementsDone"] = ELEMENTS[0]
    d1 = _run_day(world, DAYS[0])
    assert _elements_done(world, tq_id) == ELEMENTS[0]
    review = _review(world, uploaded)
    assert review["onefile_system_id"] is not None, f"D1 did not upload review {uploaded}"
    assert (review["scheduled_date"], review["start_time"]) == UPLOADED_AT
    onefile_id = int(review["onefile_system_id"])
    created = [r for r in world.sim.data.reviews if r["ID"] == onefile_id]
    assert len(created) == 1, created

    aim["ElementsDone"] = ELEMENTS[1]
    created[0]["ScheduledFor"] = _onefile_instant(*MOVED_TO)  # OneFile moves it
    d2 = _run_day(world, DAYS[1])
    assert _elements_done(world, tq_id) == ELEMENTS[1]
    review = _review(world, uploaded)
    assert (review["scheduled_date"], review["start_time"]) == MOVED_TO  # PICSWeb follows

    aim["ElementsDone"] = ELEMENTS[2]
    to_start["onefile"]["StartedOn"] = to_start["onefile"]["ScheduledFor"]
    d3 = _run_day(world, DAYS[2])
    assert _elements_done(world, tq_id) == ELEMENTS[2]
    assert _review(world, to_start["review_id"])["attended"] == "Y"
    world.assert_consistent()
    return ThreeDays(
        runs=(d1, d2, d3),
        tq_id=tq_id,
        uploaded=uploaded,
        uploaded_onefile=onefile_id,
        started=to_start["review_id"],
    )


# ----- case 1 ----------------------------------------------------------------------------
def test_case1_a_cleared_load_is_judged_by_its_merge_not_by_a_later_extract(
    airflow_world, three_days
):
    """Clear D1's merge with downstream, then its extracts without, then its load: the
    change set still comes from D1's first extract (ElementsDone 5); its load is refused
    although D1's staging is now the newest, and PICSWeb keeps D3's 9."""
    world = airflow_world
    d1, _, d3 = three_days.runs
    before = world.picsweb_rows()
    audited, mark = world.audit_rows(), world.call_mark()
    load = ("load_qualifications", -1)

    # `airflow tasks clear -t merge_qualifications -d`: merged again from D1's staging (5),
    # a change 9 -> 5 that the load, downstream, refuses.
    states = _clear(world, d1, ["merge_qualifications"], downstream=True, watch=(load[0],))
    assert _elements_done(world, three_days.tq_id) == ELEMENTS[2]
    assert states[load] == "skipped", states
    assert _refusal_logged(world, d1, load[0], d3)
    assert world.picsweb_rows() == before

    # `airflow tasks clear -t extract_` (no -d): D1's staging is extracted again, now newer
    # than what D3 loaded; its change set is the one merged above.
    _clear(world, d1, EXTRACTS)
    with world.picsweb.connect() as conn:
        staged = freshness.extracted_at(conn, d1, freshness.QUALIFICATIONS)
        mark_c = pt.sync_load_mark.c
        d3_loaded = conn.execute(
            sa.select(mark_c.extracted_at).where(
                mark_c.run_id == d3, mark_c.stage == freshness.QUALIFICATIONS
            )
        ).scalar_one()
    assert staged > d3_loaded  # judged by its staging, D1's load would now be the freshest

    # `airflow tasks clear -t load_qualifications`: refused, PICSWeb keeps 9 (not 5).
    states = _clear(world, d1, [load[0]])
    assert _elements_done(world, three_days.tq_id) == ELEMENTS[2]
    assert states[load] == "skipped", states
    assert _refusal_logged(world, d1, load[0], d3)
    assert world.picsweb_rows() == before
    assert world.audit_rows() == audited
    assert world.onefile_writes(since=mark) == []


# ----- case 2 ----------------------------------------------------------------------------
def test_case2_a_cleared_push_keeps_the_move_a_newer_run_downloaded(airflow_world, three_days):
    """D1 uploaded a review made in PICSWeb; OneFile moved it and D2 downloaded the move.
    Clearing D1's push_reviews reflects what D1 sent days ago: PICSWeb must keep D2's date
    and time, and OneFile must still hold the review once."""
    world = airflow_world
    d1 = three_days.runs[0]
    before = _review(world, three_days.uploaded)
    assert (before["scheduled_date"], before["start_time"]) == MOVED_TO
    mark = world.call_mark()

    states = _clear(world, d1, ["push_reviews"])

    assert states[("push_reviews", -1)] == "success"
    after = _review(world, three_days.uploaded)
    assert (after["scheduled_date"], after["start_time"]) == MOVED_TO, after
    assert after == before
    assert world.onefile_writes(since=mark) == []
    onefile = [r for r in world.sim.data.reviews if r["ID"] == three_days.uploaded_onefile]
    assert len(onefile) == 1
    moved = _instant(_onefile_instant(*MOVED_TO))
    same = [
        r
        for r in world.sim.data.reviews
        if r.get("LearnerID") == onefile[0]["LearnerID"] and _instant(r["ScheduledFor"]) == moved
    ]
    assert same == onefile
    world.assert_consistent()


# ----- case 3 ----------------------------------------------------------------------------
def test_case3_retention_purges_an_old_run_whole_and_its_clears_change_nothing(
    airflow_world, three_days
):
    """D2's rows are past retention, its merge_reviews cleared today (its change set would
    set D3's attended Y back to U): a purge takes none of D2, and D2's cleared load refuses.
    Made old again, D2 goes whole; its cleared load and finish_run then change nothing,
    last_synchronised included."""
    world = airflow_world
    _, d2, d3 = three_days.runs
    started = three_days.started
    assert _review(world, started)["attended"] == "Y"

    _age(world, d2)
    _clear(world, d2, ["merge_reviews"])
    with world.picsweb.connect() as conn:
        changes = pt.read_change_set(conn, d2, "picsweb_updates", "reviews")
    back = changes[(changes["key"] == started) & (changes["field"] == "attended")]
    assert list(back["new"]) == ["U"], changes  # what a load of it would write

    # D3's finish_run purges with its retention (the retention_days Param, 30 days): D2's
    # newest row is today's change set, so nothing of D2 goes (never its staging alone).
    held = _run_rows(world, d2)
    assert held["sync_stage_review"] and held["sync_cs_picsweb_update"], held
    _clear(world, d3, ["finish_run"])
    assert _run_rows(world, d2) == held

    # `airflow tasks clear -t load_reviews` on D2: refused, attended stays Y.
    before = world.picsweb_rows()
    states = _clear(world, d2, ["load_reviews"])
    assert _review(world, started)["attended"] == "Y"
    assert states[("load_reviews", -1)] == "skipped", states
    assert _refusal_logged(world, d2, "load_reviews", d3)
    assert world.picsweb_rows() == before

    # All of D2 past retention: D3's finish_run purges it whole.
    _age(world, d2)
    _clear(world, d3, ["finish_run"])
    assert not any(_run_rows(world, d2).values()), _run_rows(world, d2)

    # D2's load and finish_run cleared: nothing left to write, no sync claimed.
    synced = _last_synchronised(world)
    assert synced is not None
    mark = world.call_mark()
    states = _clear(world, d2, ["load_reviews", "finish_run"])
    assert _last_synchronised(world) == synced
    assert _review(world, started)["attended"] == "Y"
    assert world.picsweb_rows() == before
    assert world.onefile_writes(since=mark) == []
    assert states[("load_reviews", -1)] == states[("finish_run", -1)] == "success", states
    world.assert_consistent()
