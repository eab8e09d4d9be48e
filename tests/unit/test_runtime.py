"""RunContext from Airflow's own objects: the run type, the task label, errors kept for
the run record."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from airflow.sdk.api.datamodels._generated import DagRun, DagRunType

from picsweb_sync.run.runtime import RunContext, error_text, run_type_value
from picsweb_sync.run.window import RunMode
from picsweb_sync.stages.start_finish import failure_summary

START = datetime(2026, 3, 19, 2, 0, tzinfo=UTC)
END = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)


def _dag_run(run_type: DagRunType) -> DagRun:
    """The Task SDK's own DagRun model, as a task's context holds it."""
    return DagRun(
        dag_id="onefile_picsweb_sync",
        run_id=f"{run_type.value}__2026-03-19T02:00:00+00:00",
        logical_date=START,
        data_interval_start=START,
        data_interval_end=END,
        run_after=END,
        start_date=END,
        end_date=None,
        partition_key=None,
        clear_number=0,
        run_type=run_type,
        state="running",
        conf={},
        consumed_asset_events=[],
    )


@pytest.mark.parametrize(
    ("run_type", "mode"),
    [
        (DagRunType.BACKFILL, RunMode.REVIEWS_ONLY),
        (DagRunType.SCHEDULED, RunMode.FULL),
        (DagRunType.MANUAL, RunMode.FULL),
        (DagRunType.ASSET_TRIGGERED, RunMode.FULL),
    ],
)
def test_the_run_type_airflow_gives_a_task_decides_the_plan(run_type, mode):
    """Inside a task the run type is an enum whose str() is 'DagRunType.BACKFILL': a
    backfill run must still be recognised as one (it once never was)."""
    dag_run = _dag_run(run_type)
    context = {
        "dag_run": dag_run,
        "data_interval_start": START,
        "data_interval_end": END,
        "params": {},
    }
    ctx = RunContext.from_airflow(context)
    assert ctx.run_type == run_type.value
    assert ctx.plan.mode is mode
    if mode is RunMode.REVIEWS_ONLY:  # its own day only
        assert (ctx.plan.review_from, ctx.plan.review_to) == (START, END)


@pytest.mark.parametrize(
    ("given", "want"),
    [
        (DagRunType.BACKFILL, "backfill"),
        ("backfill", "backfill"),
        ("scheduled", "scheduled"),
        (None, "manual"),
    ],
)
def test_run_type_value(given, want):
    assert run_type_value(given) == want


class _TI:
    task_id = "extract_reviews"
    map_index = 1
    try_number = 3

    def xcom_pull(self, task_ids):
        return {"settings": None}


def test_a_mapped_task_is_labelled_with_its_map_index_and_try():
    context = {"dag_run": _dag_run(DagRunType.SCHEDULED), "ti": _TI(), "params": {}}
    ctx = RunContext.from_airflow(context)
    assert (ctx.task_label, ctx.try_number) == ("extract_reviews[1]", 3)


def test_an_error_text_masks_registered_secrets_and_is_bounded():
    from airflow.sdk.log import mask_secret

    mask_secret("s3cr3t-customer-token")
    text = error_text(RuntimeError("login with s3cr3t-customer-token failed " + "x" * 9000))
    assert "s3cr3t-customer-token" not in text
    assert text.startswith("RuntimeError: login with ***")
    assert len(text) <= 4000


@pytest.mark.parametrize(
    ("failed", "errors", "want"),
    [
        # one task, two tries: the last try's error
        (
            ["load_reviews"],
            [("load_reviews", 2, "ValueError: second"), ("load_reviews", 1, "ValueError: first")],
            ["load_reviews (try 2): ValueError: second"],
        ),
        # a mapped task named by Airflow as task_<index>, recorded with its organisation
        (
            ["extract_reviews_1"],
            [("extract_reviews[1] (organisation_id=5740)", 1, "OneFileApiError: HTTP 500")],
            ["extract_reviews[1] (organisation_id=5740) (try 1): OneFileApiError: HTTP 500"],
        ),
        # a killed task recorded nothing: still named
        (
            ["push_reviews"],
            [],
            ["push_reviews: failed with no error recorded (see the task's log)"],
        ),
        # nothing known at all
        ([], [], ["a task failed (no error recorded; see the task logs)"]),
    ],
    ids=["last-try", "mapped", "killed", "unknown"],
)
def test_failure_summary(failed, errors, want):
    frame = pd.DataFrame(errors, columns=["task", "try_number", "error"])
    assert failure_summary(failed, frame).split("\n") == want
