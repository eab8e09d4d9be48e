"""Review creates under faults, end to end (the real DAG through ``dag.test()``, the simulator
over HTTP, PostgreSQL): a failed Visit or Review call settled inside the same try (issue 18,
case 9), every visit the sync made and could not use recorded with what to do (case 10), and
a create of unknown outcome found again although its learner moved to another organisation
(case 11)."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest
import sqlalchemy as sa
from sync_page.queries import run_detail

from onefile.hook import OneFileHook
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import push
from picsweb_sync.stages.push import answers
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables import outbox as outbox_table
from sync_demo.dag_runs import run_dag

HOUR = dt.timedelta(hours=1)


def _posts(world, path: str) -> list:
    return [c for c in world.sim.calls if c.method == "POST" and c.path == path]


def _tries(run, task_id: str) -> int:
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    return int(ti.try_number)


def _outbox(world, run_id: str):
    with world.picsweb.connect() as conn:
        return pt.outbox_rows(conn, run_id, pt.REVIEW_CREATE).set_index("target_id")


def _empty_visits(world, run_id: str | None = None):
    with world.picsweb.connect() as conn:
        return outbox_table.empty_visits(conn, run_id)


def _push_rejects(world, run_id: str) -> list[str]:
    r = pt.sync_reject.c
    with world.picsweb.connect() as conn:
        rows = conn.execute(
            sa.select(r.reason).where(r.run_id == run_id, r.stage == "push_reviews")
        )
        return list(rows.scalars())


def _cleared(world, run) -> RunContext:
    return world.cleared(run)


def _assert_each_upload_once(world, run_id: str) -> dict[int, int]:
    """Every create the run sent exists exactly once in OneFile, on a visit of its own, and
    its PICSWeb review holds its ID; returns PICSWeb review -> OneFile review."""
    outbox = _outbox(world, run_id)
    sent = outbox[outbox["state"] == "sent"]
    assert len(sent) == len(outbox), outbox[["state", "last_error"]]
    original = {r["ID"] for r in world.original.onefile.reviews}
    created = [r for r in world.sim.data.reviews if r["ID"] not in original]
    assert len(created) == len(sent), "a review was created more than once (or not at all)"
    per_visit = Counter(r["VisitID"] for r in created)
    assert max(per_visit.values()) == 1, "two reviews on one visit"
    per_slot = Counter((r["LearnerID"], r["ScheduledFor"]) for r in created)
    assert max(per_slot.values()) == 1, "the same review created twice"
    stored = world.table(pw.review, "review_id").set_index("review_id")
    links = {int(t): int(stored.loc[t, "onefile_system_id"]) for t in sent.index}
    assert sorted(links.values()) == sorted(r["ID"] for r in created)
    return links


# ----- case 9: a failed create settled inside the same try ---------------------------------------
def test_a_failed_create_is_settled_in_the_same_try_and_each_review_exists_once(world, capsys):
    """Every 7th OneFile call of any kind (searches, creates, logins) answered 500, every
    5th 429: the run succeeds with push_reviews in one try, each review once in OneFile."""
    world.sim.faults.add(status=500, every=7)
    world.sim.faults.add(status=429, every=5, retry_after=1)  # without: ~60 s a 429
    started = time.monotonic()
    run = world.run()
    took = time.monotonic() - started
    assert str(run.state) == "success"
    assert _tries(run, "push_reviews") == 1, "a create waited for Airflow's retry"
    links = _assert_each_upload_once(world, run.run_id)
    assert len(links) >= 5
    creates = _posts(world, "/Review") + _posts(world, "/Visit")
    failed = [c for c in creates if c.status is not None and c.status >= 500]
    assert failed, "the faults never hit a create: the test proves nothing"
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    with capsys.disabled():
        print(
            f"\n[case 9] {len(links)} creates; tries per task: {sorted(set(tries.values()))} "
            f"(push_reviews {tries['push_reviews']}); creates answered 5xx: {len(failed)}; "
            f"OneFile calls: {len(world.sim.calls)}; whole run (dag.test): {took:.1f} s"
        )
    # A Visit call answered 500 may have left a visit: recorded (ID unknown), with advice.
    visit_faults = [c for c in _posts(world, "/Visit") if c.status is not None and c.status >= 500]
    unknown = _empty_visits(world, run.run_id)
    assert len(unknown) == len(visit_faults)
    assert unknown["visit_id"].isna().all()
    assert unknown["what_to_do"].str.contains("holding no review").all()


def test_a_review_call_answered_500_after_creating_it_is_linked_not_sent_again(world):
    """Every Review call answered 500 although OneFile created the review: each is found
    by its VisitID in the same try, linked, never created a second time."""
    world.sim.faults.add(status=500, every=1, path_is="/Review", method="POST", after_effect=True)
    run = world.run()
    assert str(run.state) == "success"
    assert _tries(run, "push_reviews") == 1
    links = _assert_each_upload_once(world, run.run_id)
    assert len(_posts(world, "/Review")) == len(links)  # found, never re-sent
    assert _empty_visits(world, run.run_id).empty


# ----- case 10: visits made and not used are recorded -----------------------------------------
@pytest.mark.parametrize("recovered_by", ["the same run, cleared", "the next run"])
def test_a_crash_between_visit_and_review_then_a_reschedule_records_the_empty_visit(
    world, monkeypatch, recovered_by
):
    real = OneFileHook.create_review
    doomed: list[int] = []

    def crash_before_the_first_review(self, payload):
        if not doomed or doomed[0] == payload["LearnerID"]:
            doomed[:1] = [payload["LearnerID"]]
            raise ConnectionError("injected crash between the Visit and the Review call")
        return real(self, payload)

    monkeypatch.setattr(OneFileHook, "create_review", crash_before_the_first_review)
    first = world.run()
    assert str(first.state) == "failed"
    outbox = _outbox(world, first.run_id)
    waiting = outbox[outbox["visit_id"].notna() & outbox["result_id"].isna()]
    (review_id,) = waiting.index
    visit_id = int(waiting.loc[review_id, "visit_id"])
    learner_id = doomed[0]
    # In PICSWeb, before anyone recovers: the review is moved a day later.
    with world.picsweb.begin() as conn:
        r = pw.review.c
        conn.execute(
            sa.update(pw.review)
            .where(r.review_id == int(review_id))
            .values(scheduled_date=r.scheduled_date + sa.text("1"))
        )
    monkeypatch.setattr(OneFileHook, "create_review", real)

    if recovered_by == "the next run":  # settles run 1's create, records under its own id
        second = run_dag(logical_date=world.when + HOUR)
        assert str(second.state) == "success"
        recorded_in = second.run_id
    else:
        push.push_reviews(_cleared(world, first))
        recorded_in = first.run_id

    # The visit holds no review, and the sync says so, with what to do.
    assert not [x for x in world.sim.data.reviews if x.get("VisitID") == visit_id]
    empty = _empty_visits(world)
    row = empty[empty["visit_id"] == visit_id]
    assert len(row) == 1, empty
    row = row.iloc[0]
    assert (row["run_id"], int(row["learner_id"]), int(row["review_id"])) == (
        recorded_in,
        learner_id,
        int(review_id),
    )
    assert f"delete visit {visit_id}" in row["what_to_do"]
    assert any(
        reason.startswith(f"OneFile visit left empty (visit {visit_id}, learner {learner_id}")
        for reason in _push_rejects(world, recorded_in)
    )
    # The run's page on the sync page lists it among the run's rejects, by its kind.
    with world.picsweb.connect() as conn:
        groups = run_detail(conn, recorded_in)["rejects"]["groups"]
    (shown,) = [g for g in groups if g["kind"] == "OneFile visit left empty"]
    assert [r["source_id"] for r in shown["rows"]] == [str(visit_id)]
    # The review itself was created once, at its new time, on a new visit.
    stored = world.table(pw.review, "review_id").set_index("review_id")
    onefile_id = int(stored.loc[int(review_id), "onefile_system_id"])
    (created,) = [x for x in world.sim.data.reviews if x["ID"] == onefile_id]
    assert created["VisitID"] != visit_id
    mine = [x for x in world.sim.data.reviews if x["LearnerID"] == learner_id]
    assert len({x["VisitID"] for x in mine}) == len(mine)


def test_a_review_refused_after_its_visit_was_made_records_the_empty_visit(world):
    world.sim.faults.add(status=400, path_is="/Review", method="POST")  # the first only
    run = world.run()
    outbox = _outbox(world, run.run_id)
    rejected = outbox[outbox["state"] == "rejected"]
    assert len(rejected) == 1
    visit_id = int(rejected["visit_id"].iloc[0])
    empty = _empty_visits(world, run.run_id)
    assert empty["visit_id"].tolist() == [visit_id]
    assert "POST /Review refused" in empty["reason"].iloc[0]
    assert not [x for x in world.sim.data.reviews if x.get("VisitID") == visit_id]


# ----- case 11: the learner moved to another organisation before the recovery ---------------------
def test_an_unknown_create_is_found_after_its_learner_moved_organisation(world, monkeypatch):
    real = push.record_review_id
    doomed: list[int] = []

    def crash_after_the_first_review(ctx, outbox_id, review_id, onefile_id, **basis):
        if not doomed or doomed[0] == review_id:
            doomed[:1] = [review_id]
            raise ConnectionError("injected crash after the Review call, every attempt")
        return real(ctx, outbox_id, review_id, onefile_id, **basis)

    monkeypatch.setattr(answers, "record_review_id", crash_after_the_first_review)
    first = world.run()
    assert str(first.state) == "failed"
    outbox = _outbox(world, first.run_id)
    visit_id = int(outbox.loc[doomed[0], "visit_id"])
    (created,) = [r for r in world.sim.data.reviews if r.get("VisitID") == visit_id]
    sent_to = outbox.loc[doomed[0], "payload"]["organisation_id"]
    # In OneFile, before the recovery: the learner moves to the other organisation.
    (learner,) = [u for u in world.sim.data.users if u["ID"] == created["LearnerID"]]
    (other,) = [o["ID"] for o in world.sim.data.organisations if o["ID"] != sent_to]
    learner["OrganisationID"] = other
    monkeypatch.setattr(answers, "record_review_id", real)
    world.sim.reset_calls()

    second = push.push_reviews(_cleared(world, first))

    assert second["recovered"] == 1
    stored = world.table(pw.review, "review_id").set_index("review_id")
    assert int(stored.loc[doomed[0], "onefile_system_id"]) == created["ID"]
    assert [r["ID"] for r in world.sim.data.reviews if r["LearnerID"] == learner["ID"]].count(
        created["ID"]
    ) == 1
    assert not [c for c in _posts(world, "/Review") if c.body["LearnerID"] == learner["ID"]]
    assert [c.path for c in world.sim.calls if c.method == "GET"] == [f"/User/{learner['ID']}"]
    searched = [c.body for c in world.sim.calls if c.path.startswith("/Review/Search")]
    assert searched and all(body["OrganisationID"] == other for body in searched)
    assert _empty_visits(world).empty
    # Its basis is when OneFile created it (CreatedOn), not when it was found.
    with world.picsweb.connect() as conn:
        bases = outbox_table.create_bases(conn, first.run_id).set_index("target_id")
    created_on = dt.datetime.fromisoformat(created["CreatedOn"].replace("Z", "+00:00"))
    assert bases.loc[doomed[0], "basis_at"] == created_on.astimezone(dt.UTC).replace(tzinfo=None)


# ----- case 2 (the push's part): what OneFile data each reflected write is based on --------------
def test_each_reflected_write_carries_when_onefile_accepted_its_create(world, monkeypatch):
    from picsweb_sync.storage import picsweb_writes

    real = picsweb_writes.apply_updates
    seen = []

    def keep(conn, run_id, updates, *args, **kwargs):
        if kwargs.get("work_key") == "review_uploads":
            seen.append(updates.copy())
        return real(conn, run_id, updates, *args, **kwargs)

    monkeypatch.setattr(picsweb_writes, "apply_updates", keep)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run = world.run()
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert str(run.state) == "success"
    (updates,) = seen
    assert not updates.empty and updates["basis_at"].notna().all()
    with world.picsweb.connect() as conn:
        bases = outbox_table.create_bases(conn, run.run_id).set_index("target_id")
    assert (updates["basis_at"] == bases["basis_at"].reindex(updates["key"]).to_numpy()).all()
    assert updates["basis_at"].between(before, after).all()
    # The extra column changes nothing in what is written: every update was applied.
    audit = world.audit(run.run_id)
    reflected = audit[(audit["system"] == "picsweb") & (audit["entity"] == "review")]
    assert set(zip(updates["key"].astype(str), updates["field"], strict=True)) <= set(
        zip(reflected["entity_key"].astype(str), reflected["field"], strict=True)
    )
