"""Each PICSWeb row the sync writes remembers the OneFile data it came from
(``sync_row_basis``), and a write of older OneFile data over it is refused, row by row,
in the write's own transaction (issue 18): on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from picsweb_sync.storage import picsweb_writes
from picsweb_sync.storage.project_tables import record_row_bases, sync_row_basis
from picsweb_sync.storage.sqlframes import read_frame

from .test_picsweb_writes import RV, TQ, changes, value

# Naive UTC, the project's convention for its own timestamps.
T = dt.datetime(2026, 3, 29, 1, 0)  # noqa: DTZ001 (the night of the UK clock change)
HOUR = dt.timedelta(hours=1)
AUTUMN = dt.datetime(2026, 10, 25, 0, 30)  # noqa: DTZ001 (naive UTC: 01:30 BST)


def bases(engine) -> dict[tuple[str, int], tuple[dt.datetime, str]]:
    with engine.connect() as conn:
        frame = read_frame(conn, select(sync_row_basis))
    return {
        (t, int(k)): (b.to_pydatetime(), r)
        for t, k, b, r in zip(
            frame["table_name"],
            frame["entity_key"],
            frame["basis_at"],
            frame["run_id"],
            strict=True,
        )
    }


@pytest.mark.parametrize(
    ("first_basis", "second_basis", "second_outcome"),
    [
        (T, T - HOUR, "stale"),  # older data over a newer write: refused
        (T, T, "applied"),  # the same data (a retry, the same run's rerun)
        (T, T + HOUR, "applied"),  # newer data
        (T, T - dt.timedelta(microseconds=1), "stale"),  # to the microsecond
        (AUTUMN, AUTUMN + HOUR, "applied"),  # 01:30 BST, then 01:30 GMT
    ],
    ids=["older", "same", "newer", "a-microsecond-older", "across-the-autumn-change"],
)
def test_a_write_of_older_onefile_data_over_a_row_is_refused(
    engine, first_basis, second_basis, second_outcome
):
    with engine.begin() as conn:
        first = picsweb_writes.apply_updates(
            conn, "run-new", changes((TQ, 1, "elements_done", 10, 12)), basis_at=first_basis
        )
    assert len(first.applied) == 1
    with engine.begin() as conn:
        second = picsweb_writes.apply_updates(
            conn, "run-old", changes((TQ, 1, "elements_done", 12, 5)), basis_at=second_basis
        )
    if second_outcome == "stale":
        assert second.stale[["key", "field", "newer_run"]].values.tolist() == [
            [1, "elements_done", "run-new"]
        ]
        assert second.stale["newer_at"].iloc[0] == pd.Timestamp(first_basis)
        assert len(second.applied) == 0
        assert value(engine, TQ, 1, "elements_done") == 12
        assert bases(engine)[(TQ, 1)] == (first_basis, "run-new")
    else:
        assert second.stale.empty and len(second.applied) == 1
        assert value(engine, TQ, 1, "elements_done") == 5
        assert bases(engine)[(TQ, 1)] == (second_basis, "run-old")


def test_only_the_stale_rows_of_a_change_set_are_refused(engine):
    with engine.begin() as conn:
        picsweb_writes.apply_updates(
            conn, "run-new", changes((RV, 2, "attended", None, "Y")), basis_at=T
        )
    batch = changes(
        (RV, 2, "attended", "Y", "U"),  # row 2 holds newer data: refused
        (RV, 2, "actual_date", None, dt.date(2026, 3, 1)),  # same row: refused too
        (TQ, 1, "elements_done", 10, 11),  # another row: applied
    )
    with engine.begin() as conn:
        result = picsweb_writes.apply_updates(conn, "run-old", batch, basis_at=T - HOUR)
    assert result.stale[["table", "key", "field"]].values.tolist() == [
        [RV, 2, "attended"],
        [RV, 2, "actual_date"],
    ]
    assert result.applied[["table", "key"]].values.tolist() == [[TQ, 1]]
    assert value(engine, RV, 2, "attended") == "Y"
    assert value(engine, TQ, 1, "elements_done") == 11


def test_each_change_may_carry_its_own_basis(engine):
    """A reflection of reviews created at different moments: one basis per change."""
    with engine.begin() as conn:
        picsweb_writes.apply_updates(
            conn, "run-2", changes((RV, 2, "attended", None, "Y")), basis_at=T
        )
    batch = changes((RV, 2, "attended", "Y", "U"), (RV, 1, "attended", None, "U")).assign(
        basis_at=[T - HOUR, T + HOUR]
    )
    with engine.begin() as conn:
        result = picsweb_writes.apply_updates(conn, "run-1", batch)
    assert result.stale["key"].tolist() == [2]
    assert bases(engine)[(RV, 1)] == (T + HOUR, "run-1")


def test_a_change_without_a_basis_among_changes_with_one_is_an_error(engine):
    batch = changes((RV, 2, "attended", None, "Y")).assign(basis_at=[None])
    with pytest.raises(ValueError, match="without a basis"), engine.begin() as conn:
        picsweb_writes.apply_updates(conn, "run-1", batch)


def test_rows_found_equal_record_the_basis_too_and_a_conflict_does_not(engine):
    batch = changes((TQ, 1, "total_elements", 40, 40), (TQ, 2, "elements_done", 3, 5))
    with engine.begin() as conn:
        result = picsweb_writes.apply_updates(conn, "run-1", batch, basis_at=T)
    assert (len(result.unchanged), len(result.conflicts)) == (1, 1)
    assert set(bases(engine)) == {(TQ, 1)}


def test_a_newer_basis_committed_meanwhile_is_never_overwritten(engine):
    """Two writers that both judged a row fresh: the second's record of an older basis
    fails on the row's key, so its whole transaction rolls back."""
    with engine.begin() as conn:
        record_row_bases(
            conn, "run-new", pd.DataFrame({"table_name": [TQ], "entity_key": [1], "basis_at": [T]})
        )
    older = pd.DataFrame({"table_name": [TQ], "entity_key": [1], "basis_at": [T - HOUR]})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        record_row_bases(conn, "run-old", older)
    assert bases(engine)[(TQ, 1)] == (T, "run-new")


def test_inserted_reviews_record_their_basis(engine):
    inserts = pd.DataFrame(
        {
            "trainee_id": [1],
            "review_type": ["Normal"],
            "scheduled_date": [dt.date(2026, 3, 30)],
            "start_time": [dt.time(9, 0)],
            "end_time": [None],
            "officer_id": [None],
            "attended": ["U"],
            "actual_date": [None],
            "trainee_signed_date": [None],
            "onefile_system_id": [777001],
        }
    )
    with engine.begin() as conn:
        keys = picsweb_writes.insert_reviews(conn, "run-1", inserts, basis_at=T)
    (review_id,) = keys["review_id"]
    assert bases(engine)[(RV, int(review_id))] == (T, "run-1")
    with engine.begin() as conn:
        stale = picsweb_writes.apply_updates(
            conn, "run-0", changes((RV, int(review_id), "attended", "U", "Y")), basis_at=T - HOUR
        )
    assert len(stale.stale) == 1


def test_a_dry_run_classifies_a_stale_change_as_the_real_write_would(engine):
    with engine.begin() as conn:
        picsweb_writes.apply_updates(
            conn, "run-new", changes((TQ, 1, "elements_done", 10, 12)), basis_at=T
        )
    batch = changes((TQ, 1, "elements_done", 12, 5), (TQ, 2, "elements_done", None, 4))
    with engine.connect() as conn:
        preview = picsweb_writes.classify_updates(conn, batch, basis_at=T - HOUR)
    with engine.begin() as conn:
        real = picsweb_writes.apply_updates(conn, "run-old", batch, basis_at=T - HOUR)
    for result in (preview, real):
        assert result.stale[["key", "newer_run"]].values.tolist() == [[1, "run-new"]]
        assert result.applied["key"].tolist() == [2]
