"""How Airflow 3.3 names and dates the runs of one UK day, as README's *Review window and
backfills* says: every run covers a UK day, 02:00 to 02:00; a scheduled or backfill run's
logical date is the day's **start**, a manual run's (UI, REST) the day's **end**; every run
id ends with the moment the run may start (``scheduled__``/``backfill__`` the day's end,
``manual__`` the moment it was triggered). So ``tasks clear -s/-e``, which compares logical
dates, finds the scheduled run of a day one day before the manual run of the same day.
And unpausing makes the latest whole day's scheduled run at once (``catchup=False``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.airflow.world import DAILY_RUN_DAY, at_0200_london

BACKFILL_DAY = date(2026, 6, 8)  # no other test's day


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.airflow_server
def test_a_rest_trigger_covers_the_uk_day_ending_at_its_logical_date(airflow_world, daily_run):
    run = airflow_world.airflow.dag_run(airflow_world.dag_id, daily_run)
    end = at_0200_london(DAILY_RUN_DAY)
    assert _instant(run["logical_date"]) == end
    assert (_instant(run["data_interval_start"]), _instant(run["data_interval_end"])) == (
        at_0200_london(DAILY_RUN_DAY - timedelta(days=1)),
        end,
    )
    assert run["run_type"] == "manual" and daily_run.startswith("manual__")
    # Named after the moment it was triggered, not after its day.
    assert _instant(daily_run.removeprefix("manual__")) > end


@pytest.mark.airflow_server
def test_a_backfill_run_is_dated_by_its_days_start_and_named_by_its_end(airflow_world, request):
    world, airflow = airflow_world, airflow_world.airflow
    airflow.wait_for_backfill_done(world.dag_id)
    request.getfixturevalue("finished_daily_run")  # pausing must not stall a running run
    airflow.set_paused(world.dag_id, True)
    try:
        day = BACKFILL_DAY.isoformat()
        airflow.cli(
            "backfill",
            "create",
            "--dag-id",
            world.dag_id,
            "--from-date",
            day,
            "--to-date",
            f"{day}T23:59",
        )
        backfill = airflow.latest_backfill(world.dag_id)
        try:
            (row,) = airflow.backfill_runs(backfill["id"])
            run = airflow.dag_run(world.dag_id, row["run_id"])
        finally:
            airflow.cancel_backfill(backfill["id"])
    finally:
        airflow.set_paused(world.dag_id, False)
    start, end = at_0200_london(BACKFILL_DAY), at_0200_london(BACKFILL_DAY + timedelta(days=1))
    assert _instant(run["logical_date"]) == start
    assert (_instant(run["data_interval_start"]), _instant(run["data_interval_end"])) == (
        start,
        end,
    )
    assert run["dag_run_id"] == f"backfill__{end.astimezone(UTC).isoformat()}"


def test_unpausing_makes_the_latest_whole_days_scheduled_run_at_once():
    """What the scheduler asks the DAG's timetable when the DAG is unpaused (no run yet):
    the UK day that ended at the latest 02:00, due already; named after that 02:00."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction
    from airflow.utils.types import DagRunType

    from sync_demo.dag_runs import DAG_ID, REPO

    dag = DagBag(dag_folder=str(REPO / "dags")).dags[DAG_ID]
    assert dag.catchup is False
    # The timetable as the scheduler holds it (serialized by the dag-processor).
    timetable = decode_timetable(encode_timetable(dag.timetable))
    now = datetime.now(UTC)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup),
    )
    start, end = info.data_interval
    assert end <= now < end + timedelta(days=1, hours=1)  # the latest 02:00 UK time
    assert end.in_timezone("Europe/London").hour == 2
    assert start == end.in_timezone("Europe/London").subtract(days=1)  # one UK day
    assert info.logical_date == start and info.run_after == end <= now  # due: runs at once
    run_id = timetable.generate_run_id(
        run_type=DagRunType.SCHEDULED, run_after=info.run_after, data_interval=info.data_interval
    )
    assert run_id == f"scheduled__{end.isoformat()}"
