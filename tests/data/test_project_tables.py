"""The project's own tables: staging per run and organisation, change sets, outbox, rejects,
run records and retention."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import time_machine
from sqlalchemy import func, inspect, select

from picsweb_sync.storage import project_tables as pt


def learners(*ids: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "learner_id": pd.array(ids, dtype="Int64"),
            "first_name": pd.array([f"Ñame{i}" for i in ids], dtype="string"),
            "last_name": pd.array([None] * len(ids), dtype="string"),
            "email": pd.array([None] * len(ids), dtype="string"),
            "mis_id": pd.array([str(i) for i in ids], dtype="string"),
            "uln": pd.array([None] * len(ids), dtype="string"),
            "default_assessor_id": pd.array([5001] * len(ids), dtype="Int64"),
            "last_modified": pd.Series(
                pd.to_datetime(["2026-03-29 01:30:00"] * len(ids)), dtype="datetime64[us]"
            ),
            "raw": pd.array([json.dumps({"ID": i}) for i in ids], dtype="string"),
        }
    )


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_ensure_project_tables_is_idempotent(empty_engine):
    pt.ensure_project_tables(empty_engine)
    pt.ensure_project_tables(empty_engine)
    names = set(inspect(empty_engine).get_table_names())
    assert set(pt.project_metadata.tables) <= names


def test_staging_is_replaced_per_run_and_organisation(engine):
    with engine.begin() as conn:
        pt.replace_staging(conn, "run-1", "learners", 11, learners(1, 2))
        pt.replace_staging(conn, "run-1", "learners", 12, learners(3))
        pt.replace_staging(conn, "run-2", "learners", 11, learners(4))
    with engine.begin() as conn:  # extract[11] of run-1 retried
        pt.replace_staging(conn, "run-1", "learners", 11, learners(2))
    with engine.connect() as conn:
        run1 = pt.read_staging(conn, "run-1", "learners")
        org11 = pt.read_staging(conn, "run-1", "learners", organisation_id=11)
    assert sorted(run1["learner_id"].tolist()) == [2, 3]
    pd.testing.assert_frame_equal(
        org11, learners(2).assign(organisation_id=pd.array([11], dtype="Int64"))[org11.columns]
    )


def test_staging_read_without_raw_is_the_same_frame_minus_raw(engine):
    """The merges and pushes read staging without ``raw`` (never used, most of the bytes)."""
    with engine.begin() as conn:
        pt.replace_staging(conn, "run-1", "learners", 11, learners(1, 2))
    with engine.connect() as conn:
        full = pt.read_staging(conn, "run-1", "learners")
        lean = pt.read_staging(conn, "run-1", "learners", with_raw=False)
    assert "raw" in full.columns and full["raw"].notna().all()
    pd.testing.assert_frame_equal(lean, full.drop(columns="raw"))


CHANGE_SET_SAMPLES = {
    "picsweb_updates": pd.DataFrame(
        {
            "table": ["trainee_qualification", "review", "review"],
            "key": [1, 2, 2],
            "field": ["registration_date", "start_time", "attended"],
            "old": [None, dt.time(9, 0), None],
            "new": [dt.date(2026, 3, 29), None, "Y"],
            "rule": ["rule2_registration_date", "rule6_start_time", "rule6_attended"],
        }
    ),
    "onefile_updates": pd.DataFrame(
        {
            "entity": ["LearningAim", "LearningAim"],
            "entity_id": [500001, 500002],
            "field": ["RegistrationNumber", "ElementsDone"],
            "old": [None, 3],
            "new": ["REG-1", 4],
            "rule": ["rule2_registration_number", "rule1_elements"],
        }
    ),
    "review_uploads": pd.DataFrame(
        {
            "review_id": [2],
            "trainee_id": [1],
            "learner_id": [100001],
            "organisation_id": [11],
            "assessor_id": [5001],
            "visit_type_id": [3],
            "scheduled_for": ["2026-03-29T22:30:00Z"],
            "visit_from": ["2026-03-29T22:30:00Z"],
            "visit_to": ["2026-03-29T23:30:00Z"],
        }
    ),
    "picsweb_review_inserts": pd.DataFrame(
        {
            "trainee_id": [1],
            "review_type": ["Normal"],
            "scheduled_date": [dt.date(2026, 3, 29)],
            "start_time": [dt.time(23, 30)],
            "end_time": [None],
            "officer_id": [None],
            "attended": ["U"],
            "actual_date": [None],
            "trainee_signed_date": [None],
            "onefile_system_id": [900777],
        }
    ),
}


@pytest.mark.parametrize("kind", list(CHANGE_SET_SAMPLES))
def test_change_sets_round_trip_per_run(engine, kind):
    sample = CHANGE_SET_SAMPLES[kind]
    with engine.begin() as conn:
        pt.replace_change_set(conn, "run-1", kind, sample)
        pt.replace_change_set(conn, "run-1", kind, sample)  # retried merge
        pt.replace_change_set(conn, "run-2", kind, sample.iloc[:0])
    with engine.connect() as conn:
        back = pt.read_change_set(conn, "run-1", kind)
        other = pt.read_change_set(conn, "run-2", kind)
    assert other.empty
    assert list(back.columns) == list(sample.columns)
    assert back.astype(object).where(back.notna(), None).values.tolist() == (
        sample.astype(object).where(sample.notna(), None).values.tolist()
    )


def test_outbox_enqueue_is_idempotent_and_tracks_state(engine):
    items = pd.DataFrame({"target_id": [2, 3], "payload": [{"LearnerID": 1}, {"LearnerID": 2}]})
    with engine.begin() as conn:
        assert pt.enqueue_outbox(conn, "run-1", "review_create", items) == 2
        assert pt.enqueue_outbox(conn, "run-1", "review_create", items) == 0
        assert pt.enqueue_outbox(conn, "run-2", "review_create", items.iloc[:1]) == 1
        pending = pt.pending_outbox(conn, "run-1")
        first, second = pending["outbox_id"].tolist()
        pt.mark_outbox(conn, first, "pending", visit_id=700001)  # Visit made, Review not yet
        pt.mark_outbox(conn, first, "failed", error="HTTP 503")
        pt.mark_outbox(conn, second, "sent", result_id=900555)
        left = pt.pending_outbox(conn, "run-1", kind="review_create")
    assert pending["payload"].tolist() == [{"LearnerID": 1}, {"LearnerID": 2}]
    assert left[["outbox_id", "state", "visit_id", "attempts"]].values.tolist() == [
        [first, "failed", 700001, 1]
    ]
    with engine.connect() as conn:
        sent = conn.execute(
            select(pt.sync_outbox.c.state, pt.sync_outbox.c.result_id).where(
                pt.sync_outbox.c.outbox_id == second
            )
        ).one()
    assert tuple(sent) == ("sent", 900555)


@pytest.mark.parametrize(
    ("outbox_id", "state", "error"),
    [(1, "done", ValueError), (999, "sent", LookupError)],
    ids=["unknown-state", "unknown-row"],
)
def test_mark_outbox_refuses_unknown_states_and_rows(engine, outbox_id, state, error):
    items = pd.DataFrame({"target_id": [2], "payload": [{}]})
    with engine.begin() as conn:
        pt.enqueue_outbox(conn, "run-1", "review_create", items)
    with pytest.raises(error), engine.begin() as conn:
        pt.mark_outbox(conn, outbox_id, state)


def rejects(*reasons: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": ["learning_aim"] * len(reasons),
            "source_id": [str(n) for n in range(len(reasons))],
            "reason": list(reasons),
            "raw": ['{"ID": "x"}'] * len(reasons),
        }
    )


def test_rejects_are_replaced_per_run_stage_and_organisation(engine):
    with engine.begin() as conn:
        pt.record_rejects(conn, "run-1", "extract", rejects("bad date", "no ID"), 11)
        pt.record_rejects(conn, "run-1", "extract", rejects("bad count"), 12)
        pt.record_rejects(conn, "run-1", "merge", rejects("two matches"))
    with engine.begin() as conn:  # extract[11] retried
        pt.record_rejects(conn, "run-1", "extract", rejects("bad date"), 11)
        pt.record_rejects(conn, "run-1", "merge", rejects("two matches"))
    with engine.connect() as conn:
        found = pt.read_rejects(conn, "run-1")
    assert sorted(found["reason"].tolist()) == ["bad count", "bad date", "two matches"]


def test_run_record_keeps_first_start_and_its_counts_have_one_source(engine):
    t0 = dt.datetime(2026, 3, 29, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with engine.begin() as conn:
        pt.start_run(conn, "run-1", t0)
        pt.record_counts(conn, "run-1", "extract[11]", {"learners": 40, "rejects": 1})
        pt.start_run(conn, "run-1", t0 + dt.timedelta(minutes=5))  # retried first task
        pt.record_counts(conn, "run-1", "extract[11]", {"learners": 41})
        pt.record_counts(conn, "run-1", "load", {"applied": 7})
        pt.finish_run(conn, "run-1", "success", t0 + dt.timedelta(minutes=9))
        # a task cleared and rerun after the run ended: the run's counts follow
        pt.record_counts(conn, "run-1", "load", {"applied": 8})
        row = conn.execute(select(pt.sync_run)).one()
        counts = pt.run_counts(conn, "run-1")
    naive_utc_start = dt.datetime(2026, 3, 29, 6, 0, tzinfo=dt.UTC).replace(tzinfo=None)
    assert (row.started_at, row.ended_at, row.outcome, row.failure) == (
        naive_utc_start,
        naive_utc_start + dt.timedelta(minutes=9),
        "success",
        None,
    )
    assert "counts" not in pt.sync_run.c  # no second copy to go stale
    assert counts == {"extract[11]": {"learners": 41}, "load": {"applied": 8}}


def test_a_failed_run_keeps_why_and_task_errors_newest_first(engine):
    t0 = dt.datetime(2026, 3, 29, 7, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        pt.start_run(conn, "run-1", t0)
        pt.record_task_error(conn, "run-1", "load_reviews", 1, "ValueError: one", t0)
        pt.record_task_error(
            conn, "run-1", "load_reviews", 2, "ValueError: two", t0 + dt.timedelta(minutes=1)
        )
        pt.record_task_error(conn, "run-2", "load_reviews", 1, "other run", t0)
        pt.finish_run(conn, "run-1", "failed", failure="load_reviews (try 2): ValueError: two")
        errors = pt.task_errors(conn, "run-1")
        row = conn.execute(select(pt.sync_run)).one()
    assert errors["error"].tolist() == ["ValueError: two", "ValueError: one"]
    assert (row.outcome, row.failure) == ("failed", "load_reviews (try 2): ValueError: two")


def test_finish_run_needs_a_started_run(engine):
    with pytest.raises(LookupError), engine.begin() as conn:
        pt.finish_run(conn, "never", "success")


def test_purge_drops_old_per_run_rows_and_keeps_audit_and_runs(engine):
    changed = pd.DataFrame(
        {
            "system": ["picsweb"],
            "entity": ["trainee_qualification"],
            "entity_key": [1],
            "field": ["elements_done"],
            "old": [1],
            "new": [2],
        }
    )
    old = time_machine.travel(dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC))
    with old, engine.begin() as conn:
        pt.start_run(conn, "run-old")
        pt.replace_staging(conn, "run-old", "learners", 11, learners(1, 2))
        pt.record_rejects(conn, "run-old", "extract", rejects("bad date"), 11)
        pt.audit(conn, "run-old", changed)
    recent = time_machine.travel(dt.datetime(2026, 1, 20, 12, 0, tzinfo=dt.UTC))
    with recent, engine.begin() as conn:
        pt.replace_staging(conn, "run-new", "learners", 11, learners(3))
    now = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        deleted = pt.purge(conn, older_than_days=30, now=now)
        staged = pt.read_staging(conn, "run-new", "learners")
    assert {name: n for name, n in deleted.items() if n} == {
        "sync_stage_learner": 2,
        "sync_reject": 1,
    }
    assert staged["learner_id"].tolist() == [3]
    assert (count(engine, pt.sync_audit), count(engine, pt.sync_run)) == (1, 1)


def test_purge_refuses_to_drop_the_current_run(engine):
    with pytest.raises(ValueError), engine.begin() as conn:
        pt.purge(conn, older_than_days=0)


def test_change_sets_of_two_merges_do_not_replace_each_other(engine):
    """The qualification and review merges both write picsweb_updates in one run."""
    sample = CHANGE_SET_SAMPLES["picsweb_updates"]
    with engine.begin() as conn:
        pt.replace_change_set(conn, "run-1", "picsweb_updates", sample, "qualifications")
        pt.replace_change_set(conn, "run-1", "picsweb_updates", sample.iloc[:1], "reviews")
        pt.replace_change_set(conn, "run-1", "picsweb_updates", sample.iloc[:1], "reviews")
    with engine.connect() as conn:
        quals = pt.read_change_set(conn, "run-1", "picsweb_updates", "qualifications")
        reviews = pt.read_change_set(conn, "run-1", "picsweb_updates", "reviews")
    assert len(sample) > 1
    assert len(quals) == len(sample)
    assert len(reviews) == 1


def _review_create(conn, run_id, target_id, state, visit_id=None):
    items = pd.DataFrame({"target_id": [target_id], "payload": [{"review": {}}]})
    pt.enqueue_outbox(conn, run_id, pt.REVIEW_CREATE, items)
    rows = pt.outbox_rows(conn, run_id, pt.REVIEW_CREATE)
    (outbox_id,) = rows.loc[rows["target_id"] == target_id, "outbox_id"]
    if state != "pending" or visit_id is not None:
        pt.mark_outbox(conn, int(outbox_id), state, visit_id=visit_id)


def test_creates_of_unknown_outcome_are_held_back_until_settled(engine):
    with engine.begin() as conn:
        _review_create(conn, "run-1", 10, "failed", visit_id=700)  # crashed after Visit+Review
        _review_create(conn, "run-1", 11, "sent", visit_id=701)  # finished normally
        _review_create(conn, "run-1", 12, "rejected")  # refused, no visit
        _review_create(conn, "run-1", 13, "skipped", visit_id=703)  # searched: never created
        _review_create(conn, "run-2", 14, "pending", visit_id=704)  # running now
        assert pt.unlinked_upload_visits(conn) == [700, 704]
        unknown = pt.unknown_creates(conn)
        assert unknown[["run_id", "target_id"]].values.tolist() == [["run-1", 10], ["run-2", 14]]
        assert unknown["payload"].tolist() == [{"review": {}}, {"review": {}}]
        (outbox_id,) = unknown.loc[unknown["target_id"] == 10, "outbox_id"]
        pt.mark_outbox(conn, int(outbox_id), "sent", result_id=900)  # found and linked
        assert pt.unlinked_upload_visits(conn) == [704]


def test_purge_never_deletes_a_create_whose_outcome_is_unknown(engine):
    with time_machine.travel(dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)), engine.begin() as c:
        _review_create(c, "run-old", 10, "failed", visit_id=700)
        _review_create(c, "run-old", 11, "sent", visit_id=701)
        _review_create(c, "run-old", 12, "pending")
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        deleted = pt.purge(conn, older_than_days=30, now=now)
        left = pt.outbox_rows(conn, "run-old")
    assert deleted["sync_outbox"] == 2
    assert left["target_id"].tolist() == [10]


def test_a_restarted_create_lets_its_empty_visit_go(engine):
    with engine.begin() as conn:
        _review_create(conn, "run-1", 10, "failed", visit_id=700)
        (outbox_id,) = pt.outbox_rows(conn, "run-1")["outbox_id"]
        pt.restart_create(conn, int(outbox_id), {"review": {"x": 1}}, "visit 700 left empty")
        row = pt.outbox_rows(conn, "run-1").iloc[0]
    assert pd.isna(row["visit_id"])
    assert (row["state"], row["payload"], row["last_error"]) == (
        "pending",
        {"review": {"x": 1}},
        "visit 700 left empty",
    )
    with engine.connect() as conn:
        assert pt.unlinked_upload_visits(conn) == []


def test_purge_takes_a_run_whole_or_not_at_all(engine):
    """A run's change set re-made by a clear keeps its old staging and basis alive: the run
    is purged once its newest row is past retention, every table at once (issue 18)."""
    sample = CHANGE_SET_SAMPLES["picsweb_updates"]
    with time_machine.travel(dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)), engine.begin() as c:
        pt.replace_staging(c, "run-old", "learners", 11, learners(1, 2))
        pt.record_rejects(c, "run-old", "extract", rejects("bad date"), 11)
    with time_machine.travel(dt.datetime(2026, 1, 25, 12, 0, tzinfo=dt.UTC)), engine.begin() as c:
        pt.replace_change_set(c, "run-old", "picsweb_updates", sample, "qualifications")
    with engine.begin() as conn:
        kept = pt.purge(conn, older_than_days=30, now=dt.datetime(2026, 2, 10, tzinfo=dt.UTC))
    assert not any(kept.values())
    with engine.begin() as conn:
        gone = pt.purge(conn, older_than_days=30, now=dt.datetime(2026, 2, 25, tzinfo=dt.UTC))
        left = pt.read_staging(conn, "run-old", "learners")
        changes = pt.read_change_set(conn, "run-old", "picsweb_updates", "qualifications")
    assert {name: n for name, n in gone.items() if n} == {
        "sync_stage_learner": 2,
        "sync_reject": 1,
        "sync_cs_picsweb_update": len(sample),
    }
    assert left.empty and changes.empty
