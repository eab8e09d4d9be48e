"""The drift report in a run's summary, note and thresholds, on a real database (SQLite and
PostgreSQL): ``report_drift`` run through a RunContext over a small staged run (one OneFile
learner and aim, linked to PICSWeb's trainee 1 and qualification 1, whose progress differs),
then ``finish_run`` and ``check_thresholds`` as the DAG runs them after it (issue 22).

A difference the run planned and never wrote is the defect the report exists to catch
(**unexplained**): it fails the run at ``check_thresholds`` through ``max_unexplained``
(default 0; ``null`` turns it off). The same difference with a reason (the run never planned
it: changed after its merge read it) does not.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from picsweb_sync.rules.drift import REASONS
from picsweb_sync.run import note as run_note
from picsweb_sync.run import summary
from picsweb_sync.run.runtime import RunContext, settings_snapshot
from picsweb_sync.run.settings import read_settings
from picsweb_sync.stages import drift as drift_stage
from picsweb_sync.stages import start_finish
from picsweb_sync.storage import project_tables as pt

RUN = "scheduled__2026-03-21T02:00:00+00:00"
START = dt.datetime(2026, 3, 20, 2, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 21, 2, tzinfo=dt.UTC)
ELEMENTS_DONE = "unexplained differences 1 > max_unexplained 0"

# OneFile's side: learner 100001 (PICSWeb's trainee 1) and aim 500001 (qualification 1),
# every field as PICSWeb holds it but the elements done: 12 in OneFile, 10 in PICSWeb.
LEARNER = {
    "learner_id": 100001,
    "first_name": "Ana",
    "last_name": "Núñez",
    "email": None,
    "mis_id": "1",
    "uln": "1234567890",
    "default_assessor_id": None,
    "last_modified": None,
}
AIM = {
    "learning_aim_id": 500001,
    "learner_id": 100001,
    "code": "Q1",
    "title": None,
    "total_elements": 40,
    "elements_done": 12,
    "registration_number": "REG-1",
    "registration_date": dt.date(2025, 9, 1),
    "certificate_applied_date": None,
    "certificate_received_date": None,
}
ELEMENTS_CHANGE = pd.DataFrame(
    {
        "table": ["trainee_qualification"],
        "key": [1],
        "field": ["elements_done"],
        "old": pd.Series([10], dtype=object),
        "new": pd.Series([12], dtype=object),
        "rule": ["elements_from_onefile"],
    }
)


@pytest.fixture
def notes(monkeypatch) -> list[tuple[str, str, str]]:
    published: list[tuple[str, str, str]] = []
    monkeypatch.setattr(run_note, "publish", lambda *args: published.append(args) or True)
    return published


def context(engine, **params) -> RunContext:
    with engine.connect() as conn:
        settings = read_settings(conn)
    ctx = RunContext(
        run_id=RUN,
        run_type="scheduled",
        interval_start=START,
        interval_end=END,
        params=params,
        settings_snapshot=settings_snapshot(settings),
        dag_id="onefile_picsweb_sync",
    )
    ctx.__dict__["picsweb"] = ctx.__dict__["staging"] = engine  # one database, as in tests
    return ctx


def stage_run(engine, *, planned: bool) -> None:
    """The run's extracts as staged, and (``planned``) its merge's change of the elements
    done, which no load wrote: the defect of a load that drops a field."""
    with engine.begin() as conn:
        pt.replace_staging(conn, RUN, "learners", 11, pd.DataFrame([LEARNER]))
        pt.replace_staging(conn, RUN, "learning_aims", 11, pd.DataFrame([AIM]))
        if planned:
            pt.replace_change_set(conn, RUN, "picsweb_updates", ELEMENTS_CHANGE, "qualifications")


def drift_rows(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        stmt = sa.select(pt.sync_drift).where(pt.sync_drift.c.run_id == RUN)
        return pd.DataFrame(conn.execute(stmt.order_by(pt.sync_drift.c.drift_id)).mappings())


def elements_done(rows: pd.DataFrame) -> pd.Series:
    (row,) = rows[rows["field"] == "elements_done"].to_dict("records")
    return pd.Series(row)


def recorded(**left: int) -> dict[str, int]:
    """``report_drift``'s counts as it records them: every reason, 0 unless given."""
    return {f"drift_{reason}": left.get(reason, 0) for reason in REASONS}


def test_the_summary_counts_report_drift_s_latest_try_and_the_thresholds_read_it(engine, notes):
    """The summary, note and threshold from the stage's recorded counts alone."""
    ctx = context(engine)
    start_finish.start_run(ctx)
    with engine.begin() as conn:
        pt.record_counts(conn, RUN, "report_drift", recorded(unexplained=4, not_linked=1))
        pt.record_counts(conn, RUN, "report_drift", recorded(unexplained=2, pending_outbox=3))

    done = start_finish.finish_run(ctx)

    expected = dict.fromkeys(REASONS, 0) | {"unexplained": 2, "pending_outbox": 3}
    assert done["summary"]["drift"] == expected  # the latest try's, not both added up
    assert done["summary"]["reruns"] == {"report_drift": 2}
    assert "drift" not in done["summary"]["latest_try"]  # always the latest try's
    assert (
        "⚠️ drift: 2 unexplained (a defect of the sync), 5 differences left in all "
        in (notes[-1][2])
    )
    crossed = "unexplained differences 2 > max_unexplained 0"
    with pytest.raises(AirflowFailException, match=crossed):
        start_finish.check_thresholds(context(engine))
    with engine.connect() as conn:
        assert summary.read_run_summary(conn, RUN)["thresholds_crossed"] == [crossed]
    for limit in (None, 2, 5):  # off, at the limit, above it
        passed = start_finish.check_thresholds(context(engine, max_unexplained=limit))
        assert passed["thresholds_crossed"] == []
    with pytest.raises(AirflowFailException, match="max_unexplained 1"):
        start_finish.check_thresholds(context(engine, max_unexplained=1))


def test_a_planned_change_never_written_is_unexplained_and_fails_the_run(engine, notes):
    ctx = context(engine)
    start_finish.start_run(ctx)
    stage_run(engine, planned=True)

    counts = drift_stage.report_drift(ctx)
    done = start_finish.finish_run(ctx)

    rows = drift_rows(engine)
    row = elements_done(rows)
    assert (row["reason"], row["onefile_value"], row["picsweb_value"]) == (
        "unexplained",
        "12",
        "10",
    )
    assert (row["learner_id"], row["picsweb_key"], row["onefile_id"]) == (100001, 1, 500001)
    by_reason = rows["reason"].value_counts().to_dict()
    assert counts == {f"drift_{r}": by_reason.get(r, 0) for r in REASONS}
    # The summary carries the counts by reason, every reason, in the report's order.
    assert done["summary"]["drift"] == {r: by_reason.get(r, 0) for r in REASONS}
    assert list(done["summary"]["drift"]) == list(REASONS)
    with engine.connect() as conn:
        assert summary.read_run_summary(conn, RUN)["summary"]["drift"]["unexplained"] == 1
    assert "⚠️ drift: 1 unexplained (a defect of the sync)" in notes[-1][2]

    # check_thresholds: the default max_unexplained 0 fails the run; null turns it off.
    with pytest.raises(AirflowFailException, match=ELEMENTS_DONE):
        start_finish.check_thresholds(context(engine))
    with engine.connect() as conn:
        stored = summary.read_run_summary(conn, RUN)
        outcome = conn.execute(
            sa.select(pt.sync_run.c.outcome).where(pt.sync_run.c.run_id == RUN)
        ).scalar_one()
    assert stored["thresholds_crossed"] == [ELEMENTS_DONE] and outcome == "failed"
    assert notes[-1][2].startswith(f"⚠️ thresholds crossed: {ELEMENTS_DONE}")
    off = start_finish.check_thresholds(context(engine, max_unexplained=None))
    assert off["thresholds_crossed"] == []
    with pytest.raises(AirflowFailException):
        start_finish.check_thresholds(context(engine, max_unexplained=0))
    assert start_finish.check_thresholds(context(engine, max_unexplained=1))["summary"]["drift"]


def test_the_same_difference_with_a_reason_passes_the_thresholds(engine, notes):
    """Not in the run's change set: PICSWeb or OneFile changed after the merge read it."""
    ctx = context(engine)
    start_finish.start_run(ctx)
    stage_run(engine, planned=False)

    drift_stage.report_drift(ctx)
    done = start_finish.finish_run(ctx)

    rows = drift_rows(engine)
    assert elements_done(rows)["reason"] == "changed_since"
    assert "unexplained" not in set(rows["reason"])
    assert done["summary"]["drift"]["unexplained"] == 0
    assert done["summary"]["drift"]["changed_since"] >= 1
    assert start_finish.check_thresholds(context(engine))["thresholds_crossed"] == []
    assert "0 unexplained" in notes[-1][2]


def test_a_rerun_of_the_report_counts_its_latest_try(engine, notes):
    """A cleared report_drift reports again from the state of then; the summary counts
    what it found last, and names the rerun."""
    ctx = context(engine)
    start_finish.start_run(ctx)
    stage_run(engine, planned=True)
    drift_stage.report_drift(ctx)
    with engine.begin() as conn:  # the load's write, made since (e.g. by a cleared load)
        conn.execute(sa.text("UPDATE trainee_qualification SET elements_done = 12 WHERE tq_id = 1"))
    drift_stage.report_drift(ctx)

    done = start_finish.finish_run(ctx)

    assert done["summary"]["drift"]["unexplained"] == 0
    assert done["summary"]["reruns"] == {"report_drift": 2}
    assert "elements_done" not in set(drift_rows(engine)["field"])


def test_a_dry_run_makes_no_drift_report_and_its_summary_says_none(engine, notes):
    from airflow.sdk.exceptions import AirflowSkipException

    ctx = context(engine, dry_run=True)
    start_finish.start_run(ctx)
    stage_run(engine, planned=True)
    with pytest.raises(AirflowSkipException):
        drift_stage.report_drift(ctx)
    done = start_finish.finish_run(ctx)
    assert "drift" not in done["summary"]
    assert drift_rows(engine).empty
    assert start_finish.check_thresholds(context(engine, dry_run=True))["thresholds_crossed"] == []
