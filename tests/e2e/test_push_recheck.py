"""The push re-checks each write against both systems at most a minute before sending it
(issue 18, case 4), end to end (the real DAG through ``dag.test()``, the simulator over HTTP,
PostgreSQL): a value typed into OneFile or PICSWeb while a long push is under way is not
overwritten; no update goes more than ``CHECK_MAX_AGE_SECONDS`` (on the monotonic clock)
after OneFile was re-read for it; review creates are planned again per chunk; and the
re-reads cost about as many OneFile calls as the one snapshot before the loop did."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from onefile.hook import OneFileApiError, OneFileHook, OneFileSettings
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import push
from picsweb_sync.stages.push import recheck, reviews
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import connection_env
from tests.e2e.conftest import FAST_HOOK

UPDATE = re.compile(r"^/LearningAim/(\d+)$")


def _cleared(world, run) -> RunContext:
    return world.cleared(run)


def _outbox(world, kind: str, run_id: str | None = None) -> pd.DataFrame:
    o = pt.sync_outbox.c
    with world.picsweb.connect() as conn:
        if run_id is None:
            run_id = conn.execute(
                sa.select(o.run_id).where(o.kind == kind).order_by(o.outbox_id.desc()).limit(1)
            ).scalar_one()
        return pt.outbox_rows(conn, run_id, kind)


def _organisation_of_aim(world) -> dict[int, int]:
    org = {u["ID"]: u["OrganisationID"] for u in world.sim.data.users}
    return {a["ID"]: org.get(a["UserID"]) for a in world.sim.data.learning_aims}


def _updates(world) -> list[int]:
    return [
        int(m.group(1))
        for c in world.sim.calls
        if c.method == "POST" and (m := UPDATE.match(c.path))
    ]


def _with_extra(world, monkeypatch, **extra) -> None:
    url = world.picsweb.url.render_as_string(hide_password=False)
    env = connection_env(world.sim.base_url, world.sim.customer_token, url, FAST_HOOK | extra)
    monkeypatch.setenv("AIRFLOW_CONN_ONEFILE_API", env["AIRFLOW_CONN_ONEFILE_API"])


def _aims_left_pending(world, monkeypatch):
    """Run the DAG once with every learning aim update failing (HTTP 503): its aim updates
    wait in the outbox for a cleared push_learning_aims."""

    def outage(self, *args, **kwargs):
        raise OneFileApiError(503, None, "injected outage", "POST", "/LearningAim")

    with monkeypatch.context() as patch:
        patch.setattr(OneFileHook, "update_learning_aim", outage)
        run = world.run()
    assert str(run.state) == "failed"
    pending = _outbox(world, pt.AIM_UPDATE, run.run_id)
    assert len(pending) >= 6
    return run, pending


# ----- values typed in while the push is under way ------------------------------------------------
def test_a_value_typed_into_either_system_during_a_long_push_is_not_overwritten(world, monkeypatch):
    real = OneFileHook.update_learning_aim
    typed: dict[str, int] = {}
    as_typed: dict = {}
    aims = {a["ID"]: a for a in world.sim.data.learning_aims}
    organisation = _organisation_of_aim(world)

    def type_in_after_the_first_write(self, aim_id, fields):
        real(self, aim_id, fields)
        if typed:
            return
        # A user at each system, while the push goes on, fills in aims it sends later
        # (in the other organisation: re-read after this write, not before it).
        pending = _outbox(world, pt.AIM_UPDATE)
        later = pending[
            (pending["state"] == "pending")
            & (pending["target_id"].map(organisation) != organisation[aim_id])
        ]
        with_number = later[later["payload"].map(lambda p: "RegistrationNumber" in p)]
        assert len(later) >= 2 and len(with_number) >= 1, "no later update to type over"
        typed["picsweb"] = int(with_number["target_id"].iloc[0])
        typed["onefile"] = int(later[later["target_id"] != typed["picsweb"]]["target_id"].iloc[0])
        onefile_aim = aims[typed["onefile"]]
        for field in later.set_index("target_id").loc[typed["onefile"], "payload"]:
            onefile_aim[field] = (
                "TYPED-IN-ONEFILE" if field == "RegistrationNumber" else "2026-02-02T00:00:00Z"
            )
        with world.picsweb.begin() as conn:
            tq = pw.trainee_qualification.c
            conn.execute(
                sa.update(pw.trainee_qualification)
                .where(tq.onefile_learning_aim_id == typed["picsweb"])
                .values(registration_number="TYPED-IN-PICSWEB")
            )
        as_typed.update(onefile_aim)

    monkeypatch.setattr(OneFileHook, "update_learning_aim", type_in_after_the_first_write)

    run = world.run()

    assert str(run.state) == "success"
    assert typed, "the push sent nothing"
    assert typed["onefile"] not in _updates(world)  # its fields were filled: nothing sent
    assert aims[typed["onefile"]] == as_typed  # what the user typed is still there
    # The value PICSWeb held at the merge never went; the new one is sent by the next run.
    assert aims[typed["picsweb"]].get("RegistrationNumber") in (None, "")
    outbox = _outbox(world, pt.AIM_UPDATE, run.run_id).set_index("target_id")
    assert outbox.loc[typed["onefile"], "state"] == "skipped"
    assert "no longer blank in OneFile" in outbox.loc[typed["onefile"], "last_error"]
    assert outbox.loc[typed["picsweb"], "state"] == "skipped"
    assert "changed in PICSWeb since the merge" in outbox.loc[typed["picsweb"], "last_error"]


# ----- at most a minute between the re-read and the write, on the monotonic clock ---------------
def test_no_update_goes_later_than_the_limit_after_onefile_was_re_read(world, monkeypatch):
    """A push whose writes are slow (each moves the monotonic clock 20 s on, as a budget
    shared with other tasks would): every update goes at most CHECK_MAX_AGE_SECONDS after the
    OneFile read that saw its aim, so aims are re-read (by learner) as the push goes on."""
    run, pending = _aims_left_pending(world, monkeypatch)
    _with_extra(world, monkeypatch, page_size=5)
    clock = [1000.0]
    seen: dict[int, float] = {}  # aim -> when OneFile last showed it to the push
    sent_at: list[tuple[int, float]] = []
    real_search, real_update = OneFileHook.search, OneFileHook.update_learning_aim

    def search(self, entity, filters):
        for row in real_search(self, entity, filters):
            if entity == "LearningAim" and isinstance(row, dict):
                seen[row.get("ID")] = clock[0]
            yield row

    def slow_update(self, aim_id, fields):
        sent_at.append((aim_id, clock[0] - seen[aim_id]))
        real_update(self, aim_id, fields)
        clock[0] += 20.0

    monkeypatch.setattr(recheck, "_monotonic", lambda: clock[0])
    monkeypatch.setattr(OneFileHook, "search", search)
    monkeypatch.setattr(OneFileHook, "update_learning_aim", slow_update)

    counts = push.push_learning_aims(_cleared(world, run))

    assert counts["sent"] == len(sent_at) >= 3
    assert counts["failed"] == 0
    assert max(age for _, age in sent_at) <= push.CHECK_MAX_AGE_SECONDS
    assert sorted(aim for aim, _ in sent_at) == sorted(set(_updates(world)))
    by_learner = [c for c in world.sim.calls if c.path.startswith("/LearningAim/Search")]
    assert any("UserID" in c.body for c in by_learner), "nothing was re-read by learner"


# ----- calls: the re-reads cost what the snapshot did -----------------------------------------
@pytest.mark.parametrize("page_size", [100, 5], ids=["pages-of-100", "pages-of-5"])
def test_re_reading_per_chunk_costs_about_the_calls_of_one_snapshot(
    world, monkeypatch, capsys, page_size
):
    run, pending = _aims_left_pending(world, monkeypatch)
    _with_extra(world, monkeypatch, page_size=page_size)
    ctx = _cleared(world, run)
    with world.picsweb.connect() as conn:
        staged = pt.read_staging(conn, run.run_id, "learning_aims", with_raw=False)
    world.sim.reset_calls()
    hook = OneFileHook()
    push.current_learning_aims(hook, staged, [int(t) for t in pending["target_id"]])  # before
    snapshot_calls = len([c for c in world.sim.calls if c.path != "/Authentication"])
    world.sim.reset_calls()

    counts = push.push_learning_aims(ctx)

    calls = len([c for c in world.sim.calls if c.path != "/Authentication"])
    before = snapshot_calls + counts["sent"]  # the snapshot, then one call per update
    with capsys.disabled():
        print(
            f"\n[case 4, pages of {page_size}] {len(pending)} aim updates, {counts['sent']} sent: "
            f"OneFile calls {calls} re-checked per chunk vs {before} with one snapshot "
            f"(ratio {calls / before:.2f})"
        )
    assert counts["sent"] >= 6
    assert calls <= 1.1 * before


# ----- review creates: planned again per chunk --------------------------------------------------
def test_review_creates_are_planned_again_per_chunk(world, monkeypatch):
    """Chunks of one create: attendance entered in PICSWeb for a review while the push is
    sending others stops that review being created (the one plan before the loop sent it)."""
    monkeypatch.setattr(recheck, "chunk_calls", lambda hook: 2)
    real = OneFileHook.create_review
    attended: list[int] = []
    plans: list[int] = []
    real_plan = push.plan_again

    def plan_again(ctx, review_ids):
        plans.append(len(review_ids))
        return real_plan(ctx, review_ids)

    def attendance_entered_meanwhile(self, payload):
        onefile_id = real(self, payload)
        if not attended:
            pending = _outbox(world, pt.REVIEW_CREATE)
            later = pending[pending["visit_id"].isna() & (pending["state"] == "pending")]
            attended.append(int(later["target_id"].iloc[-1]))
            with world.picsweb.begin() as conn:
                r = pw.review.c
                conn.execute(
                    sa.update(pw.review)
                    .where(r.review_id == attended[0])
                    .values(attended="Y", actual_date=dt.date(2026, 3, 2))
                )
        return onefile_id

    monkeypatch.setattr(reviews, "plan_again", plan_again)
    monkeypatch.setattr(OneFileHook, "create_review", attendance_entered_meanwhile)

    run = world.run()

    assert str(run.state) == "success"
    outbox = _outbox(world, pt.REVIEW_CREATE, run.run_id).set_index("target_id")
    assert outbox.loc[attended[0], "state"] == "skipped"
    assert "no longer eligible" in outbox.loc[attended[0], "last_error"]
    stored = world.table(pw.review, "review_id").set_index("review_id")
    assert pd.isna(stored.loc[attended[0], "onefile_system_id"])
    assert stored.loc[attended[0], "attended"] == "Y"
    assert plans == [1] * len(outbox)  # one plan per chunk of one create


def test_a_chunk_is_what_the_rate_allows_within_the_limit():
    class Hook:
        settings = OneFileSettings(calls_per_minute=300, rate_period_seconds=60)

    assert push.chunk_calls(Hook()) == 225  # 300 x 50/60 x 0.9
    Hook.settings = OneFileSettings(calls_per_minute=60, rate_period_seconds=60)
    assert push.chunk_calls(Hook()) == 45
    Hook.settings = OneFileSettings(calls_per_minute=300, rate_period_seconds=10)
    assert push.chunk_calls(Hook()) == 270  # a window shorter than the limit: all of it


def test_no_review_create_goes_later_than_the_limit_after_its_plan(world, monkeypatch):
    """Creates that take long (each moves the monotonic clock 30 s on): the chunk is cut
    where its plan would be older than CHECK_MAX_AGE_SECONDS, the rest planned again."""
    clock = [1000.0]
    planned: list[tuple[float, set[int]]] = []
    created: list[tuple[float, int, int]] = []  # when, learner, PICSWeb review (by payload)
    real_plan, real_create = push.plan_again, OneFileHook.create_review

    def plan_again(ctx, review_ids):
        planned.append((clock[0], set(review_ids)))
        return real_plan(ctx, review_ids)

    def slow_create(self, payload):
        created.append((clock[0], payload["LearnerID"], payload["VisitID"]))
        answer = real_create(self, payload)
        clock[0] += 30.0
        return answer

    monkeypatch.setattr(recheck, "_monotonic", lambda: clock[0])
    monkeypatch.setattr(reviews, "plan_again", plan_again)
    monkeypatch.setattr(OneFileHook, "create_review", slow_create)

    run = world.run()

    assert str(run.state) == "success"
    outbox = _outbox(world, pt.REVIEW_CREATE, run.run_id)
    assert len(created) == len(outbox) >= 4
    visit_of = dict(zip(outbox["visit_id"].map(int), outbox["target_id"].map(int), strict=True))
    for when, _, visit_id in created:
        review = visit_of[visit_id]
        last_plan = max(at for at, ids in planned if review in ids and at <= when)
        assert when - last_plan <= push.CHECK_MAX_AGE_SECONDS
    assert len(planned) >= len(created) // 2  # planned again as the push went on
