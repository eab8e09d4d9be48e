"""Dry runs on SQLite and PostgreSQL: the read-only classification of a PICSWeb change set,
the dry-run loads (counts, conflict rejects, what they would change, nothing written to
PICSWeb) and ``dry_run.would_change``, checked against what the real load then does."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import event, select

from picsweb_sync.run import dry_run, freshness
from picsweb_sync.run.runtime import RunContext, settings_snapshot
from picsweb_sync.run.settings import read_settings
from picsweb_sync.stages import load
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage import sqlframes
from picsweb_sync.storage.picsweb_writes import apply_updates, classify_updates
from sync_demo.picsweb_db import load_picsweb_rows

from .conftest import LONG_TITLE, review_row
from .test_mssql_compile import NOT_TSQL, tsql
from .test_picsweb_writes import changes

TQ, RV = "trainee_qualification", "review"
D = dt.date
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|TRUNCATE)\b", re.I)


@contextmanager
def statements(engine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs inside the block."""
    seen: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", keep)


@contextmanager
def constructs(engine) -> Iterator[list[sa.sql.ClauseElement]]:
    """Every SQLAlchemy statement the engine runs inside the block (to compile as T-SQL)."""
    seen: list[sa.sql.ClauseElement] = []

    def keep(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, sa.sql.ClauseElement):
            seen.append(clauseelement)

    event.listen(engine, "before_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_execute", keep)


def assert_tsql(stmts: list[sa.sql.ClauseElement]) -> None:
    assert stmts
    for stmt in stmts:
        sql = tsql(stmt)
        offending = [token for token in NOT_TSQL if token in sql.upper()]
        assert not offending, (offending, sql)


def picsweb_writes(seen: list[str]) -> list[str]:
    """The statements that write (or create) anything but the sync's own tables."""
    return [s for s in seen if WRITE.match(s) and not re.search(r"\bsync_\w+", s)]


def snapshot(engine) -> dict[str, pd.DataFrame]:
    """Every PICSWeb table, in key order."""
    with engine.connect() as conn:
        return {
            table.name: sqlframes.read_frame(
                conn, select(table).order_by(*table.primary_key.columns)
            )
            for table in pw.metadata.sorted_tables
        }


def assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def rows_of(engine, table: sa.Table, run_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)
        ).scalar_one()


# ----- the read-only classification: the real one's outcome, no write ------------------------
CLASSIFY_CASES = [  # (case, change (table, key, field, old, new), outcome)
    ("int-would-change", (TQ, 1, "elements_done", 10, 12), "applied"),
    ("int-from-null", (TQ, 2, "elements_done", None, 5), "applied"),
    ("date-to-null", (TQ, 2, "certificate_applied_date", D(2026, 1, 31), None), "applied"),
    ("long-unicode-text", (TQ, 1, "title", LONG_TITLE, "Título ünïcode"), "applied"),
    ("time", (RV, 2, "start_time", dt.time(23, 30), dt.time(9, 0)), "applied"),
    ("char-from-null", (RV, 2, "attended", None, "Y"), "applied"),
    ("char-case-only-change", (RV, 3, "attended", "y", "Y"), "applied"),
    ("equal-values", (TQ, 1, "total_elements", 40, 40), "unchanged"),
    ("already-new", (TQ, 1, "elements_done", 8, 10), "unchanged"),
    ("null-to-null", (TQ, 2, "elements_done", None, None), "unchanged"),
    ("char-already-new", (RV, 3, "attended", "N", "y"), "unchanged"),
    ("text-edited-since-merge", (TQ, 1, "registration_number", "REG-0", "REG-2"), "conflict"),
    ("text-differs-only-in-case", (TQ, 1, "registration_number", "reg-1", "REG-2"), "conflict"),
    ("text-differs-by-a-trailing-space",
     (TQ, 1, "registration_number", "REG-1 ", "REG-2"), "conflict"),
    ("new-value-only-with-a-trailing-space",
     (TQ, 1, "registration_number", "X", "REG-1 "), "conflict"),
    ("null-but-merge-saw-value", (TQ, 2, "elements_done", 3, 5), "conflict"),
    ("value-but-merge-saw-null",
     (TQ, 2, "certificate_applied_date", None, D(2026, 2, 1)), "conflict"),
    ("bigint-edited-since-merge", (RV, 1, "onefile_system_id", None, 900002), "conflict"),
    ("row-gone", (TQ, 99, "elements_done", None, 5), "missing"),
]  # fmt: skip


def test_classify_updates_gives_the_real_outcome_without_writing(engine):
    """Each case classified read-only, then by the real classification (rolled back)."""
    load_picsweb_rows(engine, {"review": [review_row(3, attended="y")]})
    before = snapshot(engine)
    for case, change, outcome in CLASSIFY_CASES:
        with statements(engine) as seen, engine.connect() as conn:
            found = classify_updates(conn, changes(change))
        assert [s for s in seen if WRITE.match(s)] == [], case  # not even the work table
        rows = pd.concat([found.applied, found.unchanged, found.conflicts])
        assert rows["outcome"].tolist() == [outcome], case
        with engine.connect() as conn, conn.begin() as transaction:
            real = apply_updates(conn, "real", changes(change))
            transaction.rollback()
        real_rows = pd.concat([real.applied, real.unchanged, real.conflicts])
        assert real_rows["outcome"].tolist() == [outcome], case
    assert_same(before, snapshot(engine))


def test_classify_updates_of_a_batch_keeps_the_input_order_and_current_values(engine):
    batch = changes(
        (TQ, 2, "registration_number", "stale", "REG-7"),
        (TQ, 1, "elements_done", 10, 11),
        (RV, 2, "actual_date", None, D(2026, 3, 29)),
        (TQ, 1, "registration_number", "X", "REG-1"),
        (TQ, 77, "title", None, "gone"),
    )
    with engine.connect() as conn:
        found = classify_updates(conn, batch)
    assert found.applied[["key", "field"]].values.tolist() == [
        [1, "elements_done"],
        [2, "actual_date"],
    ]
    assert found.unchanged["key"].tolist() == [1]
    assert found.conflicts[["key", "outcome", "current"]].values.tolist() == [
        [2, "conflict", None],
        [77, "missing", None],
    ]
    assert found.applied["current"].tolist() == [10, None]


def test_classify_updates_refuses_an_unknown_field_as_the_real_load_does(engine):
    with engine.connect() as conn, pytest.raises(ValueError, match="not updatable"):
        classify_updates(conn, changes((TQ, 1, "tq_id", 1, 2)))


def test_classify_updates_of_an_empty_change_set(engine):
    with engine.connect() as conn:
        found = classify_updates(conn, changes())
    assert (len(found.applied), len(found.unchanged), len(found.conflicts)) == (0, 0, 0)


# ----- the dry-run loads, then the real ones ------------------------------------------------
QUAL_CHANGES = [
    (TQ, 1, "elements_done", 10, 12),  # would change
    (TQ, 1, "registration_date", D(2025, 9, 1), D(2025, 10, 1)),  # would change
    (TQ, 2, "elements_done", None, 4),  # would change
    (TQ, 1, "total_elements", 40, 40),  # already equal
    (TQ, 1, "registration_number", "REG-0", "REG-2"),  # would conflict
    (TQ, 3, "title", "Old", "New"),  # would conflict (PICSWeb holds null)
]
REVIEW_CHANGES = [
    (RV, 1, "attended", None, "Y"),  # would change
    (RV, 1, "end_time", dt.time(10, 30), dt.time(11, 0)),  # would change
    (RV, 1, "officer_id", 2, 1),  # already equal
]


def review_insert(onefile_id: int, **overrides) -> dict:
    row = review_row(0, trainee_id=1, onefile_system_id=onefile_id, **overrides)
    del row["review_id"]
    return row


REVIEW_INSERTS = [
    review_insert(900001),  # PICSWeb already holds it: not inserted
    review_insert(900777, start_time=dt.time(9, 0), officer_id=1),  # would be inserted
    review_insert(900778, scheduled_date=D(2026, 4, 2)),  # would be inserted
]


def seed(engine, run_id: str) -> None:
    """A run's merges as they would leave them: change sets with their basis, and staged
    OneFile rows (so the loads have an extraction time a freshness mark would record)."""
    staged = pd.DataFrame({"learning_aim_id": [500001], "learner_id": [100001]})
    reviews = pd.DataFrame({"review_id": [900001], "learner_id": [100001]})
    with engine.begin() as conn:
        pt.replace_staging(conn, run_id, "learning_aims", 11, staged)
        pt.replace_staging(conn, run_id, "reviews", 11, reviews)
        pt.replace_change_set(
            conn, run_id, "picsweb_updates", changes(*QUAL_CHANGES), "qualifications"
        )
        pt.replace_change_set(conn, run_id, "picsweb_updates", changes(*REVIEW_CHANGES), "reviews")
        pt.replace_change_set(conn, run_id, "picsweb_review_inserts", pd.DataFrame(REVIEW_INSERTS))
        for stage in (freshness.QUALIFICATIONS, freshness.REVIEWS):
            basis = freshness.merge_basis(conn, run_id, stage)
            freshness.record_change_basis(conn, run_id, stage, basis)


def context(engine, run_id: str, dry: bool) -> RunContext:
    with engine.connect() as conn:
        settings = read_settings(conn)
    ctx = RunContext(
        run_id=run_id,
        run_type="manual",
        interval_start=dt.datetime(2026, 3, 20, 2, tzinfo=dt.UTC),
        interval_end=dt.datetime(2026, 3, 21, 2, tzinfo=dt.UTC),
        params={"dry_run": dry},
        settings_snapshot=settings_snapshot(settings),
    )
    ctx.__dict__["picsweb"] = ctx.__dict__["staging"] = engine  # one database, as in tests
    return ctx


def counts(engine, run_id: str) -> dict:
    with engine.connect() as conn:
        return pt.run_counts(conn, run_id)


def rejects(engine, run_id: str) -> list[tuple]:
    with engine.connect() as conn:
        found = pt.read_rejects(conn, run_id)
    return sorted(zip(found["stage"], found["source_id"], found["reason"], strict=True))


def audit(engine, run_id: str) -> pd.DataFrame:
    a = pt.sync_audit.c
    with engine.connect() as conn:
        frame = sqlframes.read_frame(
            conn,
            select(a.system, a.entity, a.entity_key, a.field, a.old_value, a.new_value).where(
                a.run_id == run_id
            ),
        )
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.rename(columns={"old_value": "old", "new_value": "new"})


def test_dry_run_loads_count_what_they_would_do_and_write_nothing_to_picsweb(engine):
    with engine.begin() as conn:
        conn.execute(sa.update(pw.onefile_settings).values(download_review_data=True))
    seed(engine, "dry")
    before = snapshot(engine)
    dry = context(engine, "dry", dry=True)

    with statements(engine) as seen, constructs(engine) as issued:
        assert load.load_qualifications(dry) == {
            "fields_changed": 3,
            "already_equal": 1,
            "conflicts": 2,
            "reviews_inserted": 0,
        }
        assert load.load_reviews(dry) == {
            "fields_changed": 2,
            "already_equal": 1,
            "conflicts": 0,
            "reviews_inserted": 2,
        }
    assert picsweb_writes(seen) == []
    assert_tsql(issued)  # every statement of the dry-run loads compiles for SQL Server
    assert_same(before, snapshot(engine))
    # Nothing in the PICSWeb-side work tables, no lock, no freshness mark, no audit.
    for table in (pt.sync_picsweb_work, pt.sync_review_insert_work, pt.sync_load_mark):
        assert rows_of(engine, table, "dry") == 0, table.name
    assert audit(engine, "dry").empty
    with engine.connect() as conn:
        assert conn.execute(select(sa.func.count()).select_from(pt.sync_lock)).scalar_one() == 0
    # The same counts and conflict rejects a real load records.
    assert counts(engine, "dry")["load_qualifications"]["fields_changed"] == 3
    assert [(stage, key) for stage, key, _ in rejects(engine, "dry")] == [
        ("load_qualifications", "1"),
        ("load_qualifications", "3"),
    ]
    assert all(r.startswith("conflict: ") for _, _, r in rejects(engine, "dry"))

    with engine.connect() as conn, constructs(engine) as issued:
        would = dry_run.would_change(conn, "dry")
    assert_tsql(issued)
    picsweb_updates = would[~would["entity_key"].str.startswith("new ")]
    assert picsweb_updates.values.tolist() == [
        ["picsweb", RV, "1", "attended", None, "Y"],
        ["picsweb", RV, "1", "end_time", "10:30:00", "11:00:00"],
        ["picsweb", TQ, "1", "elements_done", "10", "12"],
        ["picsweb", TQ, "1", "registration_date", "2025-09-01", "2025-10-01"],
        ["picsweb", TQ, "2", "elements_done", None, "4"],
    ]
    inserted = would[would["entity_key"].str.startswith("new ")]
    assert sorted(set(inserted["entity_key"])) == [
        "new (OneFile review 900777)",
        "new (OneFile review 900778)",
    ]
    fields_777 = inserted[inserted["entity_key"] == "new (OneFile review 900777)"]
    assert dict(zip(fields_777["field"], fields_777["new"], strict=True)) == {
        "trainee_id": "1",
        "review_type": "Normal",
        "scheduled_date": "2026-03-20",
        "start_time": "09:00:00",
        "officer_id": "1",
        "onefile_system_id": "900777",
    }
    assert inserted["old"].isna().all()

    # A retried dry-run load records the same, once.
    load.load_qualifications(dry)
    with engine.connect() as conn:
        assert dry_run.would_change(conn, "dry").equals(would)
    assert len(rejects(engine, "dry")) == 2

    # The real loads of the same change sets, after the dry run: refused by nothing the
    # dry run left, and they change exactly what the dry run said they would.
    seed(engine, "real")
    real = context(engine, "real", dry=False)
    assert load.load_qualifications(real) == counts(engine, "dry")["load_qualifications"]
    assert load.load_reviews(real) == counts(engine, "dry")["load_reviews"]
    made = audit(engine, "real")
    new_ids = snapshot(engine)[RV].dropna(subset=["onefile_system_id"])
    new_ids = dict(zip(new_ids["onefile_system_id"], new_ids["review_id"].map(str), strict=True))
    updates_made = made[~made["entity_key"].isin([new_ids[900777], new_ids[900778]])]
    assert sorted(map(tuple, updates_made.values.tolist())) == sorted(
        map(tuple, picsweb_updates.values.tolist())
    )
    # Each inserted review's audited fields are the ones the dry run listed for it.
    for onefile_id in (900777, 900778):
        got = made[made["entity_key"] == new_ids[onefile_id]]
        listed = would[would["entity_key"] == f"new (OneFile review {onefile_id})"]
        assert sorted(zip(got["field"], got["new"], strict=True)) == sorted(
            zip(listed["field"], listed["new"], strict=True)
        )
    assert rows_of(engine, pt.sync_load_mark, "real") == 2


def test_would_change_of_a_run_that_was_not_a_dry_run_is_empty(engine):
    seed(engine, "plain")
    with engine.connect() as conn:
        found = dry_run.would_change(conn, "plain")
    assert found.empty
    assert list(found.columns) == dry_run.WOULD_CHANGE_COLUMNS


def test_would_change_lists_onefile_sends_in_the_audit_shape(engine):
    aims = pd.DataFrame(
        {
            "entity": ["LearningAim", "LearningAim"],
            "entity_id": [500001, 500002],
            "field": ["RegistrationNumber", "TotalElements"],
            "old": [None, None],
            "new": ["REG-1", 40],
            "rule": ["fill_blank", "fill_blank"],
        }
    )
    uploads = pd.DataFrame(
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
    )
    with engine.begin() as conn:
        dry_run.record_aim_updates(conn, "dry", aims)
        dry_run.record_review_creates(conn, "dry", uploads)
    with engine.connect() as conn:
        found = dry_run.would_change(conn, "dry")
    assert found.values.tolist() == [
        ["onefile", "LearningAim", "500001", "RegistrationNumber", None, "REG-1"],
        ["onefile", "LearningAim", "500002", "TotalElements", None, "40"],
        ["onefile", "Review", "new (PICSWeb review 2)", "AssessorID", None, "5001"],
        ["onefile", "Review", "new (PICSWeb review 2)", "LearnerID", None, "100001"],
        ["onefile", "Review", "new (PICSWeb review 2)", "ScheduledFor", None,
         "2026-03-29T22:30:00Z"],
        ["onefile", "Review", "new (PICSWeb review 2)", "created_from_picsweb_review", None, "2"],
    ]  # fmt: skip
