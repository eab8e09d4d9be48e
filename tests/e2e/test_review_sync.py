"""Rules 5 and 6 end to end: the DAG run by ``dag.test()`` against the simulator and PostgreSQL.

Expected PICSWeb rows and OneFile request bodies come from ``review_oracle`` (plain loops
over the generator's rows), never from the code under test.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, time, timedelta

import pendulum
import pytest
import sqlalchemy as sa

from picsweb_sync.stages import push
from picsweb_sync.stages.push import answers
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo import dag_runs
from sync_demo.picsweb_db import load_picsweb_rows
from tests.e2e.review_oracle import (
    NO_OFFICER,
    NO_ORGANISATION,
    UK,
    expected_reviews,
    instant,
    plan_uploads,
    reviews_in_window,
    uk,
    unlinked_count,
)

WINDOW = timedelta(days=30)  # the DAG's review_days_before / review_days_after defaults
STRAY_LEARNER = 424242  # a OneFile learner ID that no synced organisation has


# ----- reading both systems ---------------------------------------------------------------
def _rows(world) -> list[dict]:
    frame = world.table(pw.review, "review_id")
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _posts(world, path: str) -> list[dict]:
    """Bodies of the creates OneFile answered (``POST /Visit`` or ``POST /Review``)."""
    return [c.body for c in world.sim.calls if c.method == "POST" and c.path == path]


def _sorted(bodies: list[dict]) -> list[dict]:
    return sorted(bodies, key=lambda body: json.dumps(body, sort_keys=True))


def _rejects(world, run_id: str) -> dict[int, str]:
    table = pt.sync_reject
    with world.picsweb.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.source_id, table.c.reason).where(
                table.c.run_id == run_id, table.c.stage == "plan_review_uploads"
            )
        ).all()
    return {int(source_id): reason for source_id, reason in rows}


def _count(world, run_id: str, stage: str, name: str) -> int:
    table = pt.sync_run_count
    with world.picsweb.connect() as conn:
        return conn.execute(
            sa.select(table.c.value).where(
                table.c.run_id == run_id, table.c.stage == stage, table.c.name == name
            )
        ).scalar_one()


def _states(run) -> dict[str, set[str]]:
    states: dict[str, set[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(str(ti.state))
    return states


def _window(run) -> tuple[datetime, datetime]:
    """The scheduled (full) run's review window: the data interval widened by 30 days."""
    return run.data_interval_start - WINDOW, run.data_interval_end + WINDOW


# ----- comparing with the oracle ----------------------------------------------------------
def _created(world, uploads, added: tuple[dict, ...] = ()) -> dict[int, dict]:
    """PICSWeb review_id -> the OneFile review created for it, told apart by learner and
    time (unique among the uploads, checked here); ``added``: reviews a test put in OneFile."""
    original = {r["ID"] for r in (*world.original.onefile.reviews, *added)}
    by_key = {(u.review["LearnerID"], u.review["ScheduledFor"]): i for i, u in uploads.items()}
    assert len(by_key) == len(uploads)
    new = [r for r in world.sim.data.reviews if r["ID"] not in original]
    created = {by_key[(r["LearnerID"], r["ScheduledFor"])]: r for r in new}
    assert len(created) == len(new), "a review was created twice in OneFile"
    return created


def _assert_uploads_sent(world, uploads) -> None:
    """The Visit and Review bodies are the oracle's; each Review names its own new Visit."""
    assert _sorted(_posts(world, "/Visit")) == _sorted([u.visit for u in uploads.values()])
    reviews = _posts(world, "/Review")
    expected = [u.review for u in uploads.values()]
    assert _sorted([{k: v for k, v in r.items() if k != "VisitID"} for r in reviews]) == _sorted(
        expected
    )
    visits = {v["ID"]: v for v in world.sim.data.visits}
    for review in reviews:
        visit = visits[review["VisitID"]]
        assert (visit["LearnerID"], visit["DateFrom"]) == (
            review["LearnerID"],
            review["ScheduledFor"],
        )


def _assert_reviews(world, want_rows: dict[int, dict], want_new: dict[int, dict]) -> None:
    """PICSWeb's reviews are exactly the oracle's: the rows that existed by review_id, the
    downloaded ones by onefile_system_id; a mismatch is listed field by field."""
    rows = _rows(world)
    have_rows = {r["review_id"]: r for r in rows if r["review_id"] in want_rows}
    have_new = {
        r["onefile_system_id"]: {c: v for c, v in r.items() if c != "review_id"}
        for r in rows
        if r["review_id"] not in want_rows
    }
    assert sorted(have_rows) == sorted(want_rows)
    assert sorted(have_new) == sorted(want_new)
    differences = [
        (key, field, have[key][field], want[key][field])
        for have, want in ((have_rows, want_rows), (have_new, want_new))
        for key in want
        for field in want[key]
        if have[key][field] != want[key][field]
    ]
    assert not differences, "\n".join(map(repr, differences))


def _add_stray_trainee(world) -> dict:
    """A trainee linked to a OneFile learner no synced organisation has, with a review
    rule 5 would send: its reject is 'learner not linked to a synced organisation'."""
    picsweb = copy.deepcopy(world.original.picsweb)
    linked_officer = next(o["officer_id"] for o in picsweb["officer"] if o["onefile_id"])
    trainee = {
        "trainee_id": max(t["trainee_id"] for t in picsweb["trainee"]) + 1,
        "first_name": "Stray",
        "surname": "Learner",
        "email": None,
        "uln": None,
        "main_officer_id": linked_officer,
        "onefile_learner_id": STRAY_LEARNER,
    }
    review = {
        "review_id": max(r["review_id"] for r in picsweb["review"]) + 1,
        "trainee_id": trainee["trainee_id"],
        "review_type": "Normal",
        "scheduled_date": world.original.today,
        "start_time": time(11, 0),
        "end_time": None,
        "officer_id": None,
        "attended": None,
        "actual_date": None,
        "trainee_signed_date": None,
        "onefile_system_id": None,
    }
    load_picsweb_rows(world.picsweb, {"trainee": [trainee], "review": [review]})
    picsweb["trainee"].append(trainee)
    picsweb["review"].append(review)
    return picsweb


def _add_midnight_review(world) -> dict:
    """A OneFile review scheduled, started and signed just after UK midnight in summer
    time (the previous day in UTC): the generator only starts reviews in the past, so
    none of its started ones sits on that edge."""
    learner = next(t["onefile_learner_id"] for t in world.original.picsweb["trainee"])
    review = {
        "ID": 990001,
        "LearnerID": learner,
        "AssessorID": None,
        "EmployerID": None,
        "ScheduledFor": "2026-03-29T23:30:00.000Z",
        "Status": 2,
        "CreatedOn": "2026-03-01T10:00:00.000Z",
        "StartedOn": "2026-03-29T23:40:00Z",
        "AssessorSignedOn": None,
        "LearnerSignedOn": "2026-03-29T23:55:00.000Z",
        "EmployerSignedOn": None,
        "EndTime": None,
        "VisitID": None,
    }
    world.sim.data.reviews.append(review)
    return review


# ----- tests ------------------------------------------------------------------------------
def test_first_run_matches_the_oracle_second_changes_nothing_rejects_repeat_until_fixed(world):
    picsweb = _add_stray_trainee(world)
    midnight = _add_midnight_review(world)
    users = world.original.onefile.users
    first = world.run()
    assert str(first.state) == "success"

    uploads, want_rejects = plan_uploads(picsweb, users)
    onefile_reviews = [*world.original.onefile.reviews, midnight]
    downloads = reviews_in_window(onefile_reviews, users, picsweb, *_window(first))
    # The generated mix must exercise every case, or the comparisons below prove little.
    assert set(want_rejects.values()) == {NO_OFFICER, NO_ORGANISATION}
    assert any(instant(r["ScheduledFor"]).date() != uk(r["ScheduledFor"]).date() for r in downloads)
    upload_offsets = {uk(u.review["ScheduledFor"]).utcoffset() for u in uploads.values()}
    assert upload_offsets == {timedelta(0), timedelta(hours=1)}  # GMT and BST uploads

    _assert_uploads_sent(world, uploads)
    created = _created(world, uploads, (midnight,))
    want_rows, want_new = expected_reviews(picsweb, users, downloads, created)
    assert want_new[midnight["ID"]]["actual_date"].isoformat() == "2026-03-30"
    _assert_reviews(world, want_rows, want_new)
    for review_id, review in created.items():  # the new ID is in PICSWeb, and only there once
        assert [r["review_id"] for r in _rows(world) if r["onefile_system_id"] == review["ID"]] == [
            review_id
        ]
    rejects = _rejects(world, first.run_id)
    assert set(rejects) == set(want_rejects)
    assert all(want_rejects[i] in reason for i, reason in rejects.items())
    assert str(STRAY_LEARNER) in " ".join(rejects.values())
    unlinked = unlinked_count(downloads, picsweb)
    assert unlinked > 0
    assert _count(world, first.run_id, "merge_reviews", "reviews_learner_unlinked") == unlinked

    after_first = _rows(world)
    world.sim.reset_calls()
    second = world.run()
    assert str(second.state) == "success"
    assert world.audit(second.run_id).empty
    assert _posts(world, "/Visit") == [] and _posts(world, "/Review") == []
    assert _rows(world) == after_first
    assert _rejects(world, second.run_id) == rejects  # every run, until someone fixes it

    fixed = next(i for i, kind in want_rejects.items() if kind == NO_OFFICER)
    linked_officer = next(o["officer_id"] for o in picsweb["officer"] if o["onefile_id"])
    with world.picsweb.begin() as conn:
        conn.execute(
            sa.update(pw.review)
            .where(pw.review.c.review_id == fixed)
            .values(officer_id=linked_officer)
        )
    now = {**picsweb, "review": _rows(world)}
    fixed_upload, still_rejected = plan_uploads(now, users)
    assert list(fixed_upload) == [fixed]
    world.sim.reset_calls()
    third = world.run()
    assert str(third.state) == "success"
    _assert_uploads_sent(world, fixed_upload)
    assert set(_rejects(world, third.run_id)) == set(still_rejected) == set(rejects) - {fixed}


def test_a_crash_between_the_review_call_and_storing_its_id_creates_one_review(world, monkeypatch):
    """The second ID to be stored fails once; the retried task must find the review
    OneFile already made (by learner, time and VisitID), never create it again."""
    real = push.record_review_id
    stored = {"n": 0}
    crashed: list[int] = []

    def crash_once(ctx, outbox_id, review_id, onefile_id, **kw):
        if stored["n"] == 1 and not crashed:
            crashed.append(review_id)
            raise ConnectionError("injected crash after the Review call")
        stored["n"] += 1
        return real(ctx, outbox_id, review_id, onefile_id)

    monkeypatch.setattr(answers, "record_review_id", crash_once)
    run = world.run()
    assert str(run.state) == "success"
    assert len(crashed) == 1, "the injected crash never happened"

    users = world.original.onefile.users
    picsweb = world.original.picsweb
    uploads, _ = plan_uploads(picsweb, users)
    _assert_uploads_sent(world, uploads)  # one Visit and one Review call per upload
    created = _created(world, uploads)
    assert sorted(created) == sorted(uploads)
    downloads = reviews_in_window(world.original.onefile.reviews, users, picsweb, *_window(run))
    _assert_reviews(world, *expected_reviews(picsweb, users, downloads, created))
    searched = [
        c.body["LearnerID"] for c in world.sim.calls_to("/Review/Search") if "LearnerID" in c.body
    ]
    assert searched == [uploads[crashed[0]].review["LearnerID"]]
    audit = world.audit(run.run_id)
    created_from = audit.loc[audit["field"] == "created_from_picsweb_review", "new_value"]
    assert sorted(created_from.astype(int)) == sorted(uploads)  # audited once each


@pytest.mark.parametrize(
    ("setting", "skipped"),
    [
        ("upload_review_data", {"plan_review_uploads", "push_reviews"}),
        ("download_review_data", {"extract_reviews", "merge_reviews", "load_reviews"}),
    ],
    ids=["upload-off", "download-off"],
)
def test_each_review_toggle_switches_its_direction_off(world, setting, skipped):
    world.set_settings(**{setting: False})
    run = world.run()
    assert str(run.state) == "success"
    states = _states(run)
    assert {task: states[task] for task in skipped} == {task: {"skipped"} for task in skipped}

    users = world.original.onefile.users
    picsweb = world.original.picsweb
    upload_on = setting != "upload_review_data"
    download_on = setting != "download_review_data"
    uploads = plan_uploads(picsweb, users)[0] if upload_on else {}
    _assert_uploads_sent(world, uploads)
    if not upload_on:
        assert _rejects(world, run.run_id) == {}
    if not download_on:
        assert world.sim.calls_to("/Review/Search") == []
    downloads = reviews_in_window(world.original.onefile.reviews, users, picsweb, *_window(run))
    created = _created(world, uploads)
    _assert_reviews(world, *expected_reviews(picsweb, users, downloads, created, download_on))


def test_a_reviews_only_run_syncs_the_reviews_of_its_data_interval_and_nothing_else(
    world, monkeypatch
):
    """``dag.test()`` always makes a manual run with the timetable's manual interval, so
    the DAG is given a day-long data-interval timetable here: the run then covers one day,
    as each run of a daily backfill does. The day chosen is the generated day with the
    most OneFile reviews of linked learners."""
    from airflow.sdk import CronDataIntervalTimetable

    load_dag = dag_runs.load_dag

    def daily_intervals():
        dag = load_dag()
        dag.timetable = CronDataIntervalTimetable("0 2 * * *", timezone="Europe/London")
        return dag

    monkeypatch.setattr(dag_runs, "load_dag", daily_intervals)
    users = world.original.onefile.users
    picsweb = world.original.picsweb
    linked = {t["onefile_learner_id"] for t in picsweb["trainee"]}
    days = [
        uk(r["ScheduledFor"]).date()
        for r in world.original.onefile.reviews
        if r["LearnerID"] in linked
    ]
    busiest = max(sorted(set(days)), key=days.count)
    logical = pendulum.datetime(busiest.year, busiest.month, busiest.day, 2, tz=UK).add(days=1)

    run = dag_runs.run_dag(logical_date=logical, conf={"mode": "reviews_only"})
    assert str(run.state) == "success"
    assert run.data_interval_end - run.data_interval_start == timedelta(days=1)
    downloads = reviews_in_window(
        world.original.onefile.reviews,
        users,
        picsweb,
        run.data_interval_start,
        run.data_interval_end,
    )
    want = expected_reviews(picsweb, users, downloads, {})
    whole_window = expected_reviews(picsweb, users, world.original.onefile.reviews, {})
    assert want != whole_window, "nothing outside the interval would have changed"
    assert want != expected_reviews(picsweb, users, [], {}), "nothing to sync in the interval"
    _assert_reviews(world, *want)

    states = _states(run)
    for task in (
        "extract_learners",
        "extract_learning_aims",
        "merge_qualifications",
        "load_qualifications",
        "push_learning_aims",
        "plan_review_uploads",
        "push_reviews",
    ):
        assert states[task] == {"skipped"}, task
    assert world.sim.calls_to("/LearningAim") == []
    assert [c.body["Role"] for c in world.sim.calls_to("/User/Search") if c.body["Role"] == 1] == []
    assert _posts(world, "/Visit") == [] and _posts(world, "/Review") == []
    assert world.table(pw.onefile_settings, "settings_id")["last_synchronised"].isna().all()


def test_a_backfill_run_of_the_dag_covers_a_whole_day_of_reviews(airflow_db):
    """A reviews-only backfill run syncs the reviews scheduled in its data interval, so
    each daily run's interval must span its day; an empty one would sync nothing."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag_runs.load_dag()))
    infos = list(
        dag.iter_dagrun_infos_between(
            pendulum.datetime(2026, 3, 27, tz=UK), pendulum.datetime(2026, 3, 31, tz=UK)
        )
    )
    assert len(infos) == 4
    for info in infos:  # 23 hours on 29 March, when the UK clocks go forward
        assert info.data_interval.end - info.data_interval.start >= timedelta(hours=23)
