"""A load refuses when another run already loaded OneFile data extracted later over an
overlapping window (table-driven, on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import time_machine

from picsweb_sync.run import freshness
from picsweb_sync.storage import project_tables as pt

T0 = dt.datetime(2026, 3, 20, 2, 0, tzinfo=dt.UTC).replace(tzinfo=None)  # naive UTC
DAY = dt.timedelta(days=1)


@pytest.fixture
def staging(empty_engine):
    pt.ensure_project_tables(empty_engine)
    return empty_engine


def _basis(extracted_days: float, window: tuple[float, float] | None = None) -> freshness.Basis:
    if window is None:
        return freshness.Basis(T0 + extracted_days * DAY)
    return freshness.Basis(T0 + extracted_days * DAY, T0 + window[0] * DAY, T0 + window[1] * DAY)


@pytest.mark.parametrize(
    ("other", "mine", "stage", "refused"),
    [
        # qualifications: any later extraction wins, windows do not apply
        (_basis(1), _basis(0), freshness.QUALIFICATIONS, True),
        (_basis(0), _basis(1), freshness.QUALIFICATIONS, False),
        (_basis(1), _basis(1), freshness.QUALIFICATIONS, False),  # same instant: not newer
        # reviews: later extraction over an overlapping window
        (_basis(1, (-30, 31)), _basis(0, (-30, 31)), freshness.REVIEWS, True),
        (_basis(1, (0, 1)), _basis(0, (-30, 31)), freshness.REVIEWS, True),  # inside
        (_basis(1, (-60, -30)), _basis(0, (-30, 31)), freshness.REVIEWS, False),  # touching
        (_basis(1, (40, 41)), _basis(0, (-30, 31)), freshness.REVIEWS, False),  # disjoint
        (_basis(-1, (-30, 31)), _basis(0, (-30, 31)), freshness.REVIEWS, False),  # older
        # a backfill made today for last year is as fresh as anything
        (_basis(0, (-30, 31)), _basis(5, (-300, -299)), freshness.REVIEWS, False),
    ],
)
def test_newer_load(staging, other, mine, stage, refused):
    with staging.begin() as conn:
        freshness.record_load(conn, "other", stage, other)
        freshness.record_load(conn, "other-stage", "elsewhere", _basis(99))  # never compared
        newer = freshness.newer_load(conn, "mine", stage, mine)
    assert (newer is not None) == refused
    if refused:
        assert newer.run_id == "other"


def test_a_run_never_refuses_itself_and_a_rerun_replaces_its_mark(staging):
    with staging.begin() as conn:
        freshness.record_load(conn, "run-1", freshness.REVIEWS, _basis(0, (0, 1)))
        freshness.record_load(conn, "run-1", freshness.REVIEWS, _basis(2, (0, 1)))
        assert freshness.newer_load(conn, "run-1", freshness.REVIEWS, _basis(1, (0, 1))) is None
        newer = freshness.newer_load(conn, "run-2", freshness.REVIEWS, _basis(1, (0, 1)))
    assert newer is not None and newer.extracted_at == T0 + 2 * DAY


def _naive(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC).replace(tzinfo=None)


def test_extracted_at_is_the_oldest_staged_partition_of_the_stage(staging):
    frame = pd.DataFrame({"review_id": [1], "scheduled_for": [T0]})
    with (
        time_machine.travel(dt.datetime(2026, 3, 21, 9, 0, tzinfo=dt.UTC), tick=False),
        staging.begin() as c,
    ):
        pt.replace_staging(c, "run-1", "reviews", 11, frame)
    with (
        time_machine.travel(dt.datetime(2026, 3, 21, 9, 5, tzinfo=dt.UTC), tick=False),
        staging.begin() as c,
    ):
        pt.replace_staging(c, "run-1", "assessors", 11, pd.DataFrame({"assessor_id": [5]}))
        pt.replace_staging(c, "run-2", "reviews", 11, frame)
    with staging.connect() as conn:
        assert freshness.extracted_at(conn, "run-1", freshness.REVIEWS) == _naive(2026, 3, 21, 9, 0)
        assert freshness.extracted_at(conn, "run-1", freshness.QUALIFICATIONS) is None
        assert freshness.extracted_at(conn, "run-2", freshness.REVIEWS) == _naive(2026, 3, 21, 9, 5)


def test_the_refusal_says_which_run_and_how_to_redo(staging):
    newer = freshness.Newer("scheduled__2026-03-21", T0 + DAY, T0 + DAY)
    text = freshness.refusal(newer, _basis(0), "reviews", "load_reviews")
    assert "scheduled__2026-03-21" in text
    assert "airflow tasks clear onefile_picsweb_sync -t extract_ -d" in text
