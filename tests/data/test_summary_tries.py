"""A run's summary after reruns, on a real database (SQLite and PostgreSQL): every try's
counts are kept (``sync_run_try_count``), the summary says what the run did in all and,
under ``latest_try``, what each task's latest try did; a run recorded before tries were
kept counts its latest counts as its one try."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from picsweb_sync.run.note_text import summary_text
from picsweb_sync.run.summary import run_summary
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables.run_record import count_tries, sync_run_try_count

RUN = "manual__2026-03-20T09:00:00+00:00"

CASES = [
    pytest.param(
        {"load_reviews": [{"reviews_inserted": 1, "fields_changed": 2}, {"reviews_inserted": 0}]},
        False,
        {"picsweb_reviews_created": 1, "picsweb_fields_changed": 2},
        {"picsweb_reviews_created": 0, "picsweb_fields_changed": 0},
        id="a load created a review, its rerun nothing: 1 in all, 0 by the rerun",
    ),
    pytest.param(
        {"load_qualifications": [{"fields_changed": 3}, {"fields_changed": 4}]},
        False,
        {"picsweb_fields_changed": 7},
        {"picsweb_fields_changed": 4},
        id="each try's writes add up",
    ),
    pytest.param(
        {"push_reviews": [{"fields_reflected": 2, "sent": 2}, {"fields_reflected": 1, "sent": 1}]},
        False,
        {"picsweb_fields_changed": 3},
        {"picsweb_fields_changed": 1, "onefile_reviews_created": 1},
        id="reflected fields add up; the latest try's creates are its sent",
    ),
    pytest.param(
        {
            "extract_learners[11]": [{"staged": 10}, {"staged": 12}],
            "extract_learners[12]": [{"staged": 5}],
        },
        False,
        {"learners_extracted": 17},
        {"learners_extracted": 17},
        id="a rerun extract replaces its staging: the latest try's rows",
    ),
    pytest.param(
        {"load_reviews": [{"conflicts": 3, "fields_changed": 1}, {"conflicts": 1}]},
        False,
        {"conflicts": 1, "picsweb_fields_changed": 1},
        {"conflicts": 1, "picsweb_fields_changed": 0},
        id="conflicts are re-found by the rerun: the latest try's",
    ),
    pytest.param(
        {"load_qualifications": [{"fields_changed": 5}, {"fields_changed": 5}]},
        True,
        {"picsweb_fields_changed": 5},
        {"picsweb_fields_changed": 5},
        id="a dry run's tries only previewed: never added up",
    ),
]


def _record(engine, tries) -> None:
    with engine.begin() as conn:
        pt.start_run(conn, RUN)
        rounds = max(len(t) for t in tries.values())
        for n in range(rounds):  # try 1 of every stage, then the reruns
            for stage, counts in tries.items():
                if n < len(counts):
                    pt.record_counts(conn, RUN, stage, counts[n])


@pytest.mark.parametrize(("tries", "dry", "in_all", "latest"), CASES)
def test_the_summary_says_what_the_run_did_in_all_and_what_its_rerun_did(
    engine, tries, dry, in_all, latest
):
    _record(engine, tries)
    with engine.connect() as conn:
        summary = run_summary(conn, RUN, dry_run=dry)
        kept = count_tries(conn, RUN)
    assert kept == tries
    assert {key: summary[key] for key in in_all} == in_all
    rerun = {task.split("[")[0]: len(t) for task, t in tries.items() if len(t) > 1}
    assert summary["reruns"] == rerun
    assert {key: summary["latest_try"][key] for key in latest} == latest
    assert summary["latest_try"]["onefile_fields_changed"] is None  # pushes count rows


def test_a_run_tried_once_has_no_rerun_keys_and_the_same_note(engine):
    _record(engine, {"load_reviews": [{"reviews_inserted": 2}]})
    with engine.connect() as conn:
        summary = run_summary(conn, RUN)
    assert "reruns" not in summary and "latest_try" not in summary
    assert summary["picsweb_reviews_created"] == 2
    assert "rerun" not in summary_text(summary, "success", "/x")


def test_the_note_of_a_rerun_run_says_its_counts_are_in_all(engine):
    _record(engine, {"load_reviews": [{"reviews_inserted": 1}, {"reviews_inserted": 0}]})
    with engine.connect() as conn:
        note = summary_text(run_summary(conn, RUN), "success", "/x")
    assert "1 review created" in note
    assert (
        "in all; rerun of load_reviews (2 tries): PICSWeb 0 fields changed, 0 reviews created "
        "by the latest try"
    ) in note


def test_a_run_recorded_before_tries_were_kept_counts_its_latest_counts_once(engine):
    with engine.begin() as conn:
        pt.start_run(conn, RUN)
        pt.record_counts(conn, RUN, "load_reviews", {"reviews_inserted": 3})
        conn.execute(sa.delete(sync_run_try_count))  # as an earlier version left it
        summary = run_summary(conn, RUN)
        assert count_tries(conn, RUN) == {"load_reviews": [{"reviews_inserted": 3}]}
    assert summary["picsweb_reviews_created"] == 3 and "reruns" not in summary
