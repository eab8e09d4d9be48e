"""What a data team does between runs, end to end (the real DAG through ``dag.test()``,
the simulator over HTTP, PICSWeb on PostgreSQL): clearing a task of an old run after a
newer run, editing PICSWeb or OneFile in between, runs side by side.

Clearing a task makes Airflow run that task's body again for the old run; here the body
(``picsweb_sync.<stage>``) is run with the old run's context, exactly as a cleared task
would be (tests/airflow clears tasks on a real scheduler).
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowSkipException

from onefile.hook import OneFileApiError, OneFileHook
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import load, push
from picsweb_sync.stages import merge as merge_stage
from picsweb_sync.stages import start_finish as report
from picsweb_sync.stages.push import answers
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import run_dag
from tests.e2e.conftest import clear_extracts

HOUR = dt.timedelta(hours=1)


# ----- helpers ------------------------------------------------------------------------------
def _run(world, hours: int = 0):
    return run_dag(logical_date=world.when + hours * HOUR)


def _cleared(world, run) -> RunContext:
    """The context a cleared task of ``run`` gets: its run id, type and interval."""
    return world.cleared(run)


def _picsweb(world) -> dict[str, pd.DataFrame]:
    return {
        "review": world.table(pw.review, "review_id"),
        "trainee_qualification": world.table(pw.trainee_qualification, "tq_id"),
    }


def _assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def _last_synchronised(world):
    with world.picsweb.connect() as conn:
        return conn.execute(sa.select(pw.onefile_settings.c.last_synchronised)).scalar_one()


def _outbox(world, run_id: str, kind: str) -> pd.DataFrame:
    with world.picsweb.connect() as conn:
        return pt.outbox_rows(conn, run_id, kind)


def _writes(world) -> list:
    """OneFile writes the simulator received (no searches, no authentication)."""
    return [
        c
        for c in world.sim.calls
        if c.method == "POST" and "/Search" not in c.path and c.path != "/Authentication"
    ]


def _failing(name: str) -> pytest.MonkeyPatch:
    """Every ``OneFileHook.<name>`` call fails as a OneFile outage would (HTTP 503), until
    the returned patch is undone (the world's connections stay)."""

    def outage(self, *args, **kwargs):
        raise OneFileApiError(503, None, "injected outage", "POST", name)

    patch = pytest.MonkeyPatch()
    patch.setattr(OneFileHook, name, outage)
    return patch


def _onefile_review(world, **match) -> dict:
    return next(r for r in world.sim.data.reviews if all(r.get(k) == v for k, v in match.items()))


# ----- merges and loads of an old run -------------------------------------------------------
def test_an_old_runs_merge_and_load_refuse_after_a_newer_run_and_redo_from_extract(world):
    first = _run(world)
    assert str(first.state) == "success"
    # In OneFile, between the runs: a review takes place, an aim's progress moves on.
    linked = world.table(pw.review, "review_id").dropna(subset=["onefile_system_id"])
    not_started = [
        r
        for r in world.sim.data.reviews
        if r["ID"] in set(linked["onefile_system_id"]) and r.get("StartedOn") is None
    ]
    review = not_started[0]
    review["StartedOn"] = review["ScheduledFor"]
    quals = world.table(pw.trainee_qualification, "tq_id").dropna(
        subset=["onefile_learning_aim_id"]
    )
    aim = next(
        a
        for a in world.sim.data.learning_aims
        if a["ID"] in set(quals["onefile_learning_aim_id"]) and a.get("TotalElements")
    )
    aim["TotalElements"] += 5
    second = _run(world, hours=1)
    assert str(second.state) == "success"
    after_second = _picsweb(world)
    stored = after_second["review"].set_index("onefile_system_id").loc[review["ID"]]
    assert stored["attended"] == "Y"
    audit_rows = len(world.audit())

    old = _cleared(world, first)
    merge_stage.merge_qualifications(old)  # deciding again is harmless: it only writes change sets
    merge_stage.merge_reviews(old)
    for task in (load.load_qualifications, load.load_reviews):
        with pytest.raises(AirflowSkipException, match=re.escape(f"run {second.run_id} already")):
            task(old)
    _assert_same(after_second, _picsweb(world))  # the review was not set back to U
    assert len(world.audit()) == audit_rows
    # The old run's other tasks, cleared too: nothing they write claims a newer state.
    synced = _last_synchronised(world)
    merge_stage.plan_review_uploads(old)
    assert push.push_reviews(old)["sent"] == 0
    assert push.push_learning_aims(old)["sent"] == 0
    report.finish_run(old)
    assert _last_synchronised(world) == synced  # run 2 synced newer data
    _assert_same(after_second, _picsweb(world))

    # Cleared from its extracts, the old run works on fresh data and changes nothing new.
    clear_extracts(old)
    merge_stage.merge_qualifications(old)
    merge_stage.merge_reviews(old)
    assert load.load_qualifications(old)["conflicts"] == 0
    assert load.load_reviews(old)["fields_changed"] == 0
    _assert_same(after_second, _picsweb(world))


# ----- pushes of an old run -----------------------------------------------------------------
def test_an_old_runs_push_reviews_re_checks_each_create_against_picsweb_now(world):
    outage = _failing("create_visit")
    first = _run(world)
    assert str(first.state) == "failed"
    with world.picsweb.connect() as conn:
        record = conn.execute(sa.select(pt.sync_run).where(pt.sync_run.c.run_id == first.run_id))
        record = record.one()
    assert record.outcome == "failed"
    assert "push_reviews (try " in record.failure
    assert "HTTP 503" in record.failure and "injected outage" in record.failure
    pending = _outbox(world, first.run_id, pt.REVIEW_CREATE)
    assert len(pending) >= 3 and set(pending["state"]) == {"failed"}
    attended_id, moved_id = (int(t) for t in pending["target_id"][:2])
    # In PICSWeb, before anyone clears the failed task: one review took place, one moved.
    with world.picsweb.begin() as conn:
        review = pw.review.c
        conn.execute(
            sa.update(pw.review)
            .where(review.review_id == attended_id)
            .values(attended="Y", actual_date=dt.date(2026, 3, 2))
        )
        conn.execute(
            sa.update(pw.review)
            .where(review.review_id == moved_id)
            .values(scheduled_date=review.scheduled_date + sa.text("2"))
        )
    moved = world.table(pw.review, "review_id").set_index("review_id").loc[moved_id]
    outage.undo()
    world.sim.reset_calls()

    counts = push.push_reviews(_cleared(world, first))  # the failed task, cleared

    assert counts["skipped"] == 1 and counts["sent"] == len(pending) - 1
    rows = world.table(pw.review, "review_id").set_index("review_id")
    assert rows.loc[attended_id, "attended"] == "Y"  # not reset to U, actual date kept
    assert rows.loc[attended_id, "actual_date"] == dt.date(2026, 3, 2)
    assert pd.isna(rows.loc[attended_id, "onefile_system_id"])
    outbox = _outbox(world, first.run_id, pt.REVIEW_CREATE).set_index("target_id")
    assert outbox.loc[attended_id, "state"] == "skipped"
    assert "no longer eligible" in outbox.loc[attended_id, "last_error"]
    sent_for_moved = _onefile_review(world, ID=int(rows.loc[moved_id, "onefile_system_id"]))
    when = dt.datetime.fromisoformat(sent_for_moved["ScheduledFor"].replace("Z", "+00:00"))
    assert when.astimezone(dt.UTC).date() == moved["scheduled_date"]  # the new date went
    reviews_posted = [c for c in _writes(world) if c.path == "/Review"]
    assert len(reviews_posted) == len(pending) - 1

    # The next run creates nothing again and leaves the attended review alone.
    world.sim.reset_calls()
    second = _run(world, hours=1)
    assert str(second.state) == "success"
    assert not [c for c in _writes(world) if c.path in ("/Visit", "/Review")]
    rows = world.table(pw.review, "review_id").set_index("review_id")
    assert rows.loc[attended_id, "attended"] == "Y"


def test_an_old_runs_push_learning_aims_sends_only_what_still_applies(world):
    outage = _failing("update_learning_aim")
    first = _run(world)
    assert str(first.state) == "failed"
    pending = _outbox(world, first.run_id, pt.AIM_UPDATE)
    assert len(pending) >= 3
    filled_in_onefile, changed_in_picsweb = (
        pending.iloc[0],
        pending[pending["payload"].map(lambda p: "RegistrationNumber" in p)].iloc[0],
    )
    assert filled_in_onefile["target_id"] != changed_in_picsweb["target_id"]
    aims = {a["ID"]: a for a in world.sim.data.learning_aims}
    # Someone fills the aim's blanks in OneFile by hand...
    for field in filled_in_onefile["payload"]:
        value = "TYPED-IN-ONEFILE" if field == "RegistrationNumber" else "2026-02-02T00:00:00Z"
        aims[int(filled_in_onefile["target_id"])][field] = value
    by_hand = dict(aims[int(filled_in_onefile["target_id"])])
    # ...and someone corrects the other's registration number in PICSWeb.
    with world.picsweb.begin() as conn:
        tq = pw.trainee_qualification.c
        conn.execute(
            sa.update(pw.trainee_qualification)
            .where(tq.onefile_learning_aim_id == int(changed_in_picsweb["target_id"]))
            .values(registration_number="CORRECTED-1")
        )
    outage.undo()
    world.sim.reset_calls()

    counts = push.push_learning_aims(_cleared(world, first))

    sent_paths = {c.path for c in _writes(world)}
    assert f"/LearningAim/{int(filled_in_onefile['target_id'])}" not in sent_paths
    assert aims[int(filled_in_onefile["target_id"])] == by_hand  # nothing overwritten
    other = aims[int(changed_in_picsweb["target_id"])]
    assert other.get("RegistrationNumber") in (None, "")  # the old value never went
    assert counts["skipped"] >= 1
    assert counts["sent"] == len(sent_paths)
    outbox = _outbox(world, first.run_id, pt.AIM_UPDATE).set_index("target_id")
    assert "no longer blank in OneFile" in outbox.loc[filled_in_onefile["target_id"], "last_error"]


# ----- exactly once, whatever users do between runs ------------------------------------------
@pytest.mark.parametrize("user_action", ["reschedule", "record_attendance"])
def test_a_create_of_unknown_outcome_is_linked_whatever_the_user_did(
    world, monkeypatch, user_action
):
    """The Review call reached OneFile, the run then failed for good before storing the ID;
    meanwhile the user changed the PICSWeb review. The next run finds the created review by
    what was sent and links it; nothing is created twice, in either system."""
    real = push.record_review_id
    doomed: list[int] = []

    def crash_for_the_first(ctx, outbox_id, review_id, onefile_id):
        if not doomed or doomed[0] == review_id:
            doomed[:1] = [review_id]
            raise ConnectionError("injected crash after the Review call, every attempt")
        return real(ctx, outbox_id, review_id, onefile_id)

    monkeypatch.setattr(answers, "record_review_id", crash_for_the_first)
    first = _run(world)
    assert str(first.state) == "failed"
    (visit_id,) = {
        int(v)
        for v, t in zip(
            *_outbox(world, first.run_id, pt.REVIEW_CREATE)[["visit_id", "target_id"]].T.values,
            strict=True,
        )
        if t == doomed[0]
    }
    created = _onefile_review(world, VisitID=visit_id)
    with world.picsweb.begin() as conn:
        review = pw.review.c
        change = (
            {"scheduled_date": review.scheduled_date + sa.text("3")}
            if user_action == "reschedule"
            else {"attended": "Y", "actual_date": dt.date(2026, 3, 3)}
        )
        conn.execute(sa.update(pw.review).where(review.review_id == doomed[0]).values(change))
    monkeypatch.setattr(answers, "record_review_id", real)
    picsweb_reviews_before = len(world.table(pw.review, "review_id"))

    for hours in (1, 2):  # the next run links it; the one after downloads it, once
        assert str(_run(world, hours=hours).state) == "success"

    same_visit = [r for r in world.sim.data.reviews if r.get("VisitID") == visit_id]
    assert [r["ID"] for r in same_visit] == [created["ID"]]
    original = {r["ID"] for r in world.original.onefile.reviews}
    new_visits = [r["VisitID"] for r in world.sim.data.reviews if r["ID"] not in original]
    assert len(set(new_visits)) == len(new_visits), "two reviews on one visit"
    rows = world.table(pw.review, "review_id")
    linked = rows[rows["onefile_system_id"] == created["ID"]]
    assert linked["review_id"].tolist() == [doomed[0]]
    # Only OneFile's own new reviews were added to PICSWeb; the created one is not among them.
    added = rows[~rows["review_id"].isin(range(picsweb_reviews_before + 1))]
    assert created["ID"] not in set(added["onefile_system_id"])


# ----- runs side by side --------------------------------------------------------------------
def test_two_runs_pushing_the_same_reviews_at_once_create_each_once(world):
    outage = _failing("create_visit")
    runs = [_run(world), _run(world, hours=1)]
    assert [str(r.state) for r in runs] == ["failed", "failed"]
    targets = set(_outbox(world, runs[0].run_id, pt.REVIEW_CREATE)["target_id"])
    assert targets == set(_outbox(world, runs[1].run_id, pt.REVIEW_CREATE)["target_id"])
    outage.undo()
    world.sim.reset_calls()
    contexts = [_cleared(world, run) for run in runs]
    results, errors = [None, None], []

    def push_for(index: int) -> None:
        try:
            results[index] = push.push_reviews(contexts[index])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push_for, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert sorted(r["sent"] for r in results) == [0, len(targets)]
    assert sorted(r["skipped"] for r in results) == [0, len(targets)]
    assert len([c for c in _writes(world) if c.path == "/Review"]) == len(targets)
    rows = world.table(pw.review, "review_id").set_index("review_id")
    assert rows.loc[sorted(targets), "onefile_system_id"].notna().all()
