"""What a run's summary and page say after a data team's reruns, end to end (the real DAG
through ``dag.test()``, the simulator over HTTP, PICSWeb on PostgreSQL): a load cleared
and rerun after it created reviews, and an old run's load that refused stale data.

Clearing a task makes Airflow run its body again for the old run; here the body is run
with the old run's context (``World.cleared``), as in test_reruns.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowSkipException
from sync_page import queries

from picsweb_sync.run.summary import read_run_summary
from picsweb_sync.stages import load
from picsweb_sync.stages import start_finish as report
from picsweb_sync.storage.project_tables.run_record import sync_load_refusal
from sync_demo.dag_runs import run_dag


def _summary(world, run_id: str) -> dict:
    with world.picsweb.connect() as conn:
        return read_run_summary(conn, run_id)["summary"]


def test_a_rerun_load_leaves_the_summary_saying_what_the_run_did_in_all(world):
    first = world.run()
    assert str(first.state) == "success"
    before = _summary(world, first.run_id)
    created = before["picsweb_reviews_created"]
    assert created > 0 and "reruns" not in before and "latest_try" not in before

    cleared = world.cleared(first, "load_reviews")
    assert load.load_reviews(cleared)["reviews_inserted"] == 0  # already in PICSWeb
    report.finish_run(cleared)

    after = _summary(world, first.run_id)
    assert after["picsweb_reviews_created"] == created  # in all: the first try's included
    assert after["picsweb_fields_changed"] == before["picsweb_fields_changed"]
    assert after["reruns"] == {"load_reviews": 2}
    assert after["latest_try"]["picsweb_reviews_created"] == 0  # what the rerun did
    # What the rerun did not touch is the same either way.
    assert after["latest_try"]["learners_extracted"] == after["learners_extracted"]

    with world.picsweb.connect() as conn:
        detail = queries.run_detail(conn, first.run_id)
    rows = {r["key"]: r for r in detail["in_all_and_latest"]}
    assert (
        rows["picsweb_reviews_created"]["in_all"],
        rows["picsweb_reviews_created"]["latest"],
    ) == (
        created,
        0,
    )
    (tries,) = [s for s in detail["tries"] if s["stage"] == "load_reviews"]
    assert [t["counts"]["reviews_inserted"] for t in tries["tries"]] == [created, 0]


def test_an_old_runs_refused_load_is_kept_with_its_reason_and_the_newer_run(world):
    first = world.run()
    second = run_dag(logical_date=world.when + dt.timedelta(hours=1))
    assert str(first.state) == str(second.state) == "success"

    cleared = world.cleared(first, "load_reviews", try_number=2)
    with pytest.raises(AirflowSkipException) as refused:
        load.load_reviews(cleared)

    with world.picsweb.connect() as conn:
        (row,) = conn.execute(
            sa.select(sync_load_refusal).where(sync_load_refusal.c.run_id == first.run_id)
        ).all()
        detail = queries.run_detail(conn, first.run_id)
        history = queries.run_history(conn, limit=10)
    assert (row.stage, row.kind, row.try_number) == ("load_reviews", "stale", 2)
    assert row.newer_run_id == second.run_id
    assert row.reason == str(refused.value)  # the log's last line, word for word
    assert row.newer_extracted_at > row.extracted_at
    (shown,) = detail["refusals"]
    assert shown["newer_run_id"] == second.run_id and shown["loaded_later_at"] is None
    marks = {r["run_id"]: [m["mark"] for m in r["marks"]] for r in history.rows}
    assert marks == {first.run_id: ["refused"], second.run_id: []}
