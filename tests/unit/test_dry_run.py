"""``dry_run.as_loaded``: PICSWeb rows as the real load would leave them, for a dry run's
push to re-check against (the real push runs after its load)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from picsweb_sync.run import dry_run

TQ = "trainee_qualification"


def quals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tq_id": pd.Series([1, 2, 3], dtype="Int64"),
            "onefile_learning_aim_id": pd.Series([None, 700, None], dtype="Int64"),
            "registration_number": pd.Series(["A-1", None, "C-3"], dtype="string"),
            "registration_date": pd.Series([None, dt.date(2025, 1, 1), None], dtype=object),
        }
    )


def change(table: str, key: int, field: str, new) -> dict:
    return {"table": table, "key": key, "field": field, "old": None, "new": new, "rule": "r"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param([], {}, id="no-change-leaves-rows-as-they-are"),
        pytest.param([change(TQ, 1, "onefile_learning_aim_id", 900)],
                     {(1, "onefile_learning_aim_id"): 900}, id="link-made-by-the-load"),
        pytest.param([change(TQ, 2, "registration_date", dt.date(2026, 3, 1))],
                     {(2, "registration_date"): dt.date(2026, 3, 1)}, id="date"),
        pytest.param([change(TQ, 3, "registration_number", None)],
                     {(3, "registration_number"): None}, id="to-null"),
        pytest.param([change(TQ, 1, "registration_number", "B"),
                      change(TQ, 1, "onefile_learning_aim_id", 5)],
                     {(1, "registration_number"): "B", (1, "onefile_learning_aim_id"): 5},
                     id="two-fields-of-one-row"),
        pytest.param([change("review", 1, "registration_number", "X")], {},
                     id="another-tables-change-ignored"),
        pytest.param([change(TQ, 99, "registration_number", "X")], {},
                     id="row-not-read-ignored"),
    ],
)  # fmt: skip
def test_as_loaded_writes_each_change_of_the_table_over_its_row(changes, expected):
    would_apply = pd.DataFrame(changes, columns=["table", "key", "field", "old", "new", "rule"])
    before = quals()
    after = dry_run.as_loaded(before, would_apply, TQ, "tq_id")
    pd.testing.assert_frame_equal(before, quals())  # the input is not modified
    assert list(after.columns) == list(before.columns)
    assert after["tq_id"].tolist() == [1, 2, 3]
    for row in range(3):
        for field in before.columns:
            want = expected.get((row + 1, field), before.at[row, field])
            got = after.at[row, field]
            if want is None or want is pd.NA:
                assert pd.isna(got), (row, field, got)
            else:
                assert got == want, (row, field, got)
