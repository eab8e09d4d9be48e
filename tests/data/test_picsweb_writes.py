"""Set-based, guarded writes to PICSWeb: apply_updates and insert_reviews."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError

from picsweb_sync.storage import picsweb_writes, sqlframes
from picsweb_sync.storage.picsweb_tables import metadata, primary_key, review, trainee_qualification
from picsweb_sync.storage.project_tables import sync_audit

from .conftest import LONG_TITLE, picsweb_rows

UPDATE_COLUMNS = ["table", "key", "field", "old", "new", "rule"]


def changes(*rows: tuple) -> pd.DataFrame:
    """A ``picsweb_updates`` change set from (table, key, field, old, new) tuples."""
    return pd.DataFrame([(*row, "test_rule") for row in rows], columns=UPDATE_COLUMNS)


def value(engine, table: str, key: int, field: str):
    target = metadata.tables[table]
    with engine.connect() as conn:
        return conn.execute(
            select(target.c[field]).where(primary_key(target) == key)
        ).scalar_one_or_none()


def audit_rows(engine) -> list[tuple]:
    a = sync_audit.c
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(
                    a.run_id, a.entity, a.entity_key, a.field, a.old_value, a.new_value
                ).order_by(a.audit_id)
            )
        ]


TQ, RV = "trainee_qualification", "review"
D = dt.date


@pytest.mark.parametrize(
    ("change", "outcome", "final"),
    [
        ((TQ, 1, "elements_done", 10, 12), "applied", 12),
        ((TQ, 2, "elements_done", None, 5), "applied", 5),
        ((TQ, 2, "certificate_applied_date", D(2026, 1, 31), None), "applied", None),
        ((TQ, 1, "registration_date", D(2025, 9, 1), D(2025, 9, 2)), "applied", D(2025, 9, 2)),
        ((TQ, 1, "title", LONG_TITLE, "Título ünïcode"), "applied", "Título ünïcode"),
        ((RV, 2, "start_time", dt.time(23, 30), dt.time(9, 0)), "applied", dt.time(9, 0)),
        ((RV, 2, "attended", None, "Y"), "applied", "Y"),
        ((TQ, 1, "total_elements", 40, 40), "unchanged", 40),
        ((TQ, 1, "elements_done", 8, 10), "unchanged", 10),
        ((TQ, 2, "elements_done", None, None), "unchanged", None),
        ((TQ, 1, "registration_number", "REG-0", "REG-2"), "conflict", "REG-1"),
        ((TQ, 2, "elements_done", 3, 5), "conflict", None),
        ((TQ, 2, "certificate_applied_date", None, D(2026, 2, 1)), "conflict", D(2026, 1, 31)),
        ((RV, 1, "onefile_system_id", None, 900002), "conflict", 900001),
        ((TQ, 99, "elements_done", None, 5), "missing", None),
    ],
    ids=[
        "int",
        "int-from-null",
        "date-to-null",
        "date",
        "text-unicode-over-200-char-title",
        "time",
        "char-from-null",
        "equal-values",
        "already-new",
        "null-to-null",
        "text-edited-since-merge",
        "null-but-merge-saw-value",
        "value-but-merge-saw-null",
        "bigint-edited-since-merge",
        "row-gone",
    ],
)
def test_each_change_is_applied_only_where_the_row_holds_the_old_value(
    engine, change, outcome, final
):
    table, key, field, old, new = change
    with engine.begin() as conn:
        result = picsweb_writes.apply_updates(conn, "run-1", changes(change))
    outcomes = {name: len(getattr(result, name)) for name in ("applied", "unchanged", "conflicts")}
    expected_in = {"applied": "applied", "unchanged": "unchanged"}.get(outcome, "conflicts")
    assert outcomes == {name: int(name == expected_in) for name in outcomes}
    assert pd.concat([result.applied, result.unchanged, result.conflicts])["outcome"].tolist() == [
        outcome
    ]
    if table != TQ or key != 99:
        assert value(engine, table, key, field) == final
    audited = [(table, str(key), field)] if outcome == "applied" else []
    assert [row[1:4] for row in audit_rows(engine)] == audited


def test_a_batch_applies_per_table_and_field_and_a_rerun_changes_nothing(engine):
    batch = changes(
        (TQ, 1, "elements_done", 10, 11),
        (TQ, 2, "elements_done", None, 0),
        (TQ, 1, "registration_number", "REG-1", "REG-9"),
        (TQ, 2, "registration_number", "stale", "REG-7"),
        (RV, 2, "actual_date", None, D(2026, 3, 29)),
        (RV, 2, "attended", None, "U"),
    )
    with engine.begin() as conn:
        first = picsweb_writes.apply_updates(conn, "run-1", batch)
    assert first.applied["key"].tolist() == [1, 2, 1, 2, 2]
    assert first.conflicts[["key", "field", "current"]].values.tolist() == [
        [2, "registration_number", None]
    ]
    assert audit_rows(engine) == [
        ("run-1", TQ, "1", "elements_done", "10", "11"),
        ("run-1", TQ, "2", "elements_done", None, "0"),
        ("run-1", TQ, "1", "registration_number", "REG-1", "REG-9"),
        ("run-1", RV, "2", "actual_date", None, "2026-03-29"),
        ("run-1", RV, "2", "attended", None, "U"),
    ]
    with engine.begin() as conn:  # the task retried after success
        again = picsweb_writes.apply_updates(conn, "run-1", batch)
    assert (len(again.applied), len(again.unchanged), len(again.conflicts)) == (0, 5, 1)
    assert len(audit_rows(engine)) == 5


def test_a_failure_mid_write_leaves_nothing_behind(engine):
    """The last change breaks NOT NULL after others were applied: all roll back."""
    batch = changes(
        (TQ, 1, "elements_done", 10, 11),
        (RV, 2, "attended", None, "Y"),
        (RV, 2, "scheduled_date", D(2026, 3, 29), None),
    )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        picsweb_writes.apply_updates(conn, "run-1", batch)
    assert value(engine, TQ, 1, "elements_done") == 10
    assert value(engine, RV, 2, "attended") is None
    assert audit_rows(engine) == []


def test_a_row_edited_between_check_and_update_aborts_the_whole_write(engine):
    """Another writer changes a row after classification: no silent overwrite, no audit."""

    def edit_after_classify(conn, clauseelement, *args):
        if getattr(clauseelement, "table", None) is not None and (
            clauseelement.table.name == "sync_picsweb_work" and clauseelement.is_update
        ):
            conn.execute(
                update(trainee_qualification)
                .where(trainee_qualification.c.tq_id == 1)
                .values(elements_done=15)
            )

    batch = changes((TQ, 2, "elements_done", None, 1), (TQ, 1, "elements_done", 10, 11))
    event.listen(engine, "after_execute", edit_after_classify)
    try:
        with (
            pytest.raises(picsweb_writes.ConcurrentChangeError, match="elements_done"),
            engine.begin() as c,
        ):
            picsweb_writes.apply_updates(c, "run-1", batch)
    finally:
        event.remove(engine, "after_execute", edit_after_classify)
    assert value(engine, TQ, 2, "elements_done") is None
    assert audit_rows(engine) == []


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (changes((TQ, 1, "no_such_column", 1, 2)), "not updatable"),
        (changes(("no_such_table", 1, "x", 1, 2)), "not updatable"),
        (changes((TQ, 1, "tq_id", 1, 2)), "not updatable"),
        (changes((TQ, 1, "elements_done", 10, 11), (TQ, 1, "elements_done", 10, 12)), "duplicate"),
    ],
    ids=["unknown-column", "unknown-table", "primary-key", "same-field-twice"],
)
def test_changes_outside_the_contract_are_refused(engine, batch, message):
    with pytest.raises(ValueError, match=message), engine.begin() as conn:
        picsweb_writes.apply_updates(conn, "run-1", batch)
    assert value(engine, TQ, 1, "elements_done") == 10


def test_two_runs_do_not_share_work_rows(engine):
    with engine.begin() as conn:
        picsweb_writes.apply_updates(conn, "run-1", changes((TQ, 1, "elements_done", 10, 11)))
        other = picsweb_writes.apply_updates(
            conn, "run-2", changes((TQ, 2, "elements_done", None, 3))
        )
    assert other.applied["key"].tolist() == [2]
    assert [row[0] for row in audit_rows(engine)] == ["run-1", "run-2"]


# ----- review inserts ---------------------------------------------------------------------------
def review_inserts(*system_ids: int) -> pd.DataFrame:
    rows = [
        {
            "trainee_id": 1,
            "review_type": "Normal",
            "scheduled_date": D(2026, 3, 30),
            "start_time": dt.time(10, 30) if n % 2 else None,
            "end_time": None,
            "officer_id": 1 if n % 2 else None,
            "attended": "Y" if n % 2 else "U",
            "actual_date": D(2026, 3, 30) if n % 2 else None,
            "trainee_signed_date": None,
            "onefile_system_id": system_id,
        }
        for n, system_id in enumerate(system_ids)
    ]
    return pd.DataFrame(rows).astype({"officer_id": "Int64"})


def review_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(review)).scalar_one()


def test_new_reviews_are_inserted_once_and_return_their_generated_keys(engine):
    existing = picsweb_rows()["review"][0]["onefile_system_id"]
    inserts = review_inserts(900101, 900102, existing)
    with engine.begin() as conn:
        keys = picsweb_writes.insert_reviews(conn, "run-1", inserts)
    assert keys["onefile_system_id"].tolist() == [existing, 900101, 900102]
    assert keys["inserted"].tolist() == [False, True, True]
    new_ids = keys["review_id"].tolist()[1:]
    assert keys["review_id"].iloc[0] == 1 and min(new_ids) > 2  # generated after loaded keys
    with engine.connect() as conn:
        stored = sqlframes.read_frame(
            conn,
            select(*(c for c in review.c if c.name != "review_id"))
            .where(review.c.onefile_system_id.in_([900101, 900102]))
            .order_by(review.c.onefile_system_id),
        )
    expected = inserts.iloc[[0, 1]].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    audited = audit_rows(engine)
    assert {row[2] for row in audited} == {str(i) for i in new_ids}
    assert ("run-1", "review", str(new_ids[1]), "start_time", None, "10:30:00") in audited

    with engine.begin() as conn:  # retried after success
        again = picsweb_writes.insert_reviews(conn, "run-1", inserts)
    assert again["review_id"].tolist() == keys["review_id"].tolist()
    assert not again["inserted"].any()
    assert review_count(engine) == 4
    assert len(audit_rows(engine)) == len(audited)


@pytest.mark.parametrize(
    "system_ids", [(900101, 900101), (900101, None)], ids=["duplicate", "missing"]
)
def test_review_inserts_need_distinct_onefile_ids(engine, system_ids):
    inserts = review_inserts(*system_ids).astype({"onefile_system_id": "Int64"})
    with pytest.raises(ValueError, match="onefile_system_id"), engine.begin() as conn:
        picsweb_writes.insert_reviews(conn, "run-1", inserts)
    assert review_count(engine) == 2


def test_a_failed_review_insert_leaves_nothing_behind(engine):
    inserts = review_inserts(900101, 900102).astype({"scheduled_date": object})
    inserts.loc[1, "scheduled_date"] = None  # NOT NULL in PICSWeb
    with pytest.raises(IntegrityError), engine.begin() as conn:
        picsweb_writes.insert_reviews(conn, "run-1", inserts)
    assert review_count(engine) == 2
    assert audit_rows(engine) == []
