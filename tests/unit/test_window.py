from datetime import UTC, datetime

import pytest

from picsweb_sync.run.window import RunMode, SyncPlan, plan_run

START = datetime(2026, 3, 28, tzinfo=UTC)
END = datetime(2026, 3, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("run_type", "mode", "before", "after", "want_mode", "want_from", "want_to"),
    [
        (
            "scheduled",
            "auto",
            30,
            14,
            RunMode.FULL,
            datetime(2026, 2, 26, tzinfo=UTC),
            datetime(2026, 4, 12, tzinfo=UTC),
        ),
        ("manual", "auto", 0, 0, RunMode.FULL, START, END),
        ("backfill", "auto", 30, 14, RunMode.REVIEWS_ONLY, START, END),
        (
            "backfill",
            "full",
            1,
            1,
            RunMode.FULL,
            datetime(2026, 3, 27, tzinfo=UTC),
            datetime(2026, 3, 30, tzinfo=UTC),
        ),
        ("scheduled", "reviews_only", 30, 14, RunMode.REVIEWS_ONLY, START, END),
    ],
    ids=[
        "scheduled-window",
        "manual-zero-days",
        "backfill-interval-only",
        "backfill-forced-full",
        "forced-reviews-only",
    ],
)
def test_plan_run(run_type, mode, before, after, want_mode, want_from, want_to):
    plan = plan_run(
        run_type=run_type,
        interval_start=START,
        interval_end=END,
        days_before=before,
        days_after=after,
        mode=mode,
    )
    assert (plan.mode, plan.review_from, plan.review_to) == (want_mode, want_from, want_to)
    assert plan.does_qualifications is (want_mode is RunMode.FULL)
    assert plan.does_uploads is (want_mode is RunMode.FULL)


def test_plan_round_trips_through_xcom():
    plan = plan_run(
        run_type="scheduled", interval_start=START, interval_end=END, days_before=2, days_after=3
    )
    assert SyncPlan.from_xcom(plan.as_xcom()) == plan


@pytest.mark.parametrize(
    ("before", "after", "start", "end", "mode"),
    [
        (-1, 0, START, END, "auto"),
        (0, -1, START, END, "auto"),
        (0, 0, END, START, "auto"),
        (0, 0, START, END, "sideways"),
    ],
    ids=["negative-before", "negative-after", "reversed-interval", "unknown-mode"],
)
def test_plan_run_rejects_bad_input(before, after, start, end, mode):
    with pytest.raises(ValueError):
        plan_run(
            run_type="scheduled",
            interval_start=start,
            interval_end=end,
            days_before=before,
            days_after=after,
            mode=mode,
        )
