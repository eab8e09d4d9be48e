"""The run history's UK day, marks and legend, and the run page's story: refusals with the
newer run they deferred to, a rerun's counts in all against its latest try, visits the sync
could not use and outbox rows still pending, each with what to do (over the generated
history on PostgreSQL, its story runs written by tests/sync_page/run_stories.py)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sync_page import run_story

from picsweb_sync.storage.project_tables import (
    project_metadata,
    sync_outbox,
    sync_run_count,
    sync_task_error,
)

HTML = {"Accept": "text/html"}
JS = Path(__file__).resolve().parents[2] / "plugins" / "sync_page" / "static" / "sync_page.js"


def _every_run(reader) -> dict[str, dict]:
    rows, cursor = {}, None
    while True:
        params = {"limit": 200, **({"before": cursor} if cursor else {})}
        data = reader.get("/onefile-sync/api/runs", params=params).json()
        rows.update({r["run_id"]: r for r in data["runs"]})
        cursor = data["next"]
        if cursor is None:
            return rows


def _detail(reader, run_id: str) -> dict:
    answer = reader.get(f"/onefile-sync/api/runs/{quote(run_id, safe='')}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _page(reader, run_id: str) -> str:
    answer = reader.get(f"/onefile-sync/runs/{quote(run_id, safe='')}", headers=HTML)
    assert answer.status_code == 200, answer.text
    return answer.text


# ----- the history -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("story", "marks", "title"),
    [
        ("rerun", ["retried"], "retried: load_reviews (2 tries)"),
        ("refused", ["refused"], "refused stale data: load_reviews"),
        ("recovered", ["recovered"], "recovered 2 create(s) of unknown outcome"),
        ("retried", ["retried"], "retried: push_learning_aims (2 tries)"),
        ("failed", [], None),  # one failed try, never retried
        ("newer", [], None),
        ("left_over", [], None),
    ],
)
def test_each_run_is_marked_by_what_happened_to_its_tasks(reader, history, story, marks, title):
    row = _every_run(reader)[getattr(history.stories, story)]
    assert [m["mark"] for m in row["marks"]] == marks
    if title:
        assert row["marks"][0]["title"] == title


def test_runs_without_a_story_have_no_mark(reader, history):
    stories = set(vars(history.stories).values())
    marked = [rid for rid, row in _every_run(reader).items() if row["marks"]]
    assert marked and set(marked) <= stories


def test_every_run_with_an_interval_shows_the_uk_day_it_covers(reader, history):
    rows = _every_run(reader)
    for run_id, summary in history.summaries.items():
        day = rows[run_id]["uk_day"]
        # The generated runs start at 02:00 UTC and cover the 24 hours before.
        assert day["day"] == (summary["interval_end"] - dt.timedelta(days=1)).date().isoformat()
    without = [r for rid, r in rows.items() if rid not in history.summaries]
    assert without and all(r["uk_day"] is None for r in without)


def test_the_history_page_shows_run_id_uk_day_marks_and_a_legend(reader, history):
    html = reader.get("/onefile-sync/", headers=HTML).text
    assert '<dl id="legend"' in html
    assert "<dt>x / y</dt>" in html and "fields changed / <b>y</b> reviews created" in html
    for mark in ("retried", "refused", "recovered"):
        assert f'<dt><span class="mark mark-{mark}">{mark}</span></dt>' in html
    # the newest run with a summary (the days come first, the twins after them)
    newest = next(r for r in reversed(history.runs[:400]) if r["run_id"] in history.summaries)
    assert f'<code class="run-id muted">{newest["run_id"]}</code>' in html
    label = (newest["started_at"] - dt.timedelta(days=1)).strftime("%a %d %b %Y")
    assert f">{label}</span></td>" in html


# ----- one run -------------------------------------------------------------------------------
def test_a_rerun_run_says_what_it_did_in_all_and_what_the_rerun_did(reader, history):
    rid = history.stories.rerun
    detail = _detail(reader, rid)
    assert detail["reruns"] == {"load_reviews": 2}
    rows = {r["key"]: r for r in detail["in_all_and_latest"]}
    assert (
        rows["picsweb_reviews_created"]["in_all"],
        rows["picsweb_reviews_created"]["latest"],
    ) == (1, 0)
    summary = json.loads(history.summaries[rid]["summary"])
    fields = rows["picsweb_fields_changed"]
    assert (
        fields["in_all"] - fields["latest"] == 2
        and fields["in_all"] == summary["picsweb_fields_changed"]
    )
    assert rows["onefile_fields_changed"]["latest"] is None  # not known per try: shown as –
    (stage,) = detail["tries"]
    assert stage["stage"] == "load_reviews"
    assert [t["counts"]["reviews_inserted"] for t in stage["tries"]] == [1, 0]

    html = _page(reader, rid)
    assert "Rerun: load_reviews (2 tries)" in html
    assert "<thead><tr><th></th><th>In all</th><th>Latest try</th></tr></thead>" in html
    assert "<tr><th>picsweb reviews created</th><td>1</td><td>0</td></tr>" in html
    assert '<table id="tries"' in html


def test_a_run_without_a_rerun_has_one_column_of_counts(reader, history):
    html = _page(reader, history.stories.newer)
    assert "Latest try" not in html and '<table id="summary"' in html


def test_a_refused_load_shows_its_reason_and_the_newer_run_it_deferred_to(reader, history):
    rid, newer = history.stories.refused, history.stories.newer
    (refusal,) = _detail(reader, rid)["refusals"]
    assert refusal["stage"] == "load_reviews" and refusal["kind"] == "stale"
    assert refusal["newer_run_id"] == newer
    assert refusal["reason"] == history.stories.refusal
    assert refusal["loaded_later_at"] is not None  # try 2 loaded, days later
    html = _page(reader, rid)
    assert "Loads that refused (1)" in html
    assert f'<a class="newer-run" href="../runs/{quote(newer, safe="")}">{newer}</a>' in html
    assert "A later try of load_reviews loaded at" in html
    assert "not loading: run " in html


def test_visits_not_used_and_outbox_rows_pending_say_what_to_do(reader, history):
    rid = history.stories.left_over
    detail = _detail(reader, rid)
    visits = {v["visit_id"]: v for v in detail["empty_visits"]}
    assert set(visits) == {812_345, None}
    assert "delete visit 812345" in visits[812_345]["what_to_do"]
    assert "look among learner 700004's visits on 2025-04-16" in visits[None]["what_to_do"]
    advice = {(o["kind"], o["target_id"]): o["what_to_do"] for o in detail["outbox_pending"]}
    assert (
        advice[("learning_aim_update", 500_001)]
        == run_story.OUTBOX_ADVICE[("learning_aim_update", "failed")]
    )
    assert advice[("review_create", 700_005)] == run_story.UNKNOWN_CREATE_ADVICE
    assert (
        advice[("review_create", 700_006)] == run_story.OUTBOX_ADVICE[("review_create", "pending")]
    )
    html = _page(reader, rid)
    assert "Visits made in OneFile and not used (2)" in html
    assert '<table id="outbox-pending"' in html and "links it, never creating it twice" in html


def test_a_run_with_nothing_left_over_says_so(reader, history):
    html = _page(reader, history.stories.newer)
    assert "Visits made in OneFile and not used (0)" in html
    assert "Loads that refused" not in html


# ----- rules ------------------------------------------------------------------------------
UTC = dt.UTC


@pytest.mark.parametrize(
    ("start", "end", "label", "span"),
    [
        # a scheduled run: 02:00 to 02:00 UK, in winter (UK = UTC)
        ((2026, 1, 14, 2), (2026, 1, 15, 2), "Wed 14 Jan 2026", "14 Jan 02:00 – 15 Jan 02:00 UK"),
        # in summer (UK = UTC+1): 01:00 UTC is 02:00 UK
        ((2026, 7, 1, 1), (2026, 7, 2, 1), "Wed 01 Jul 2026", "01 Jul 02:00 – 02 Jul 02:00 UK"),
        # the spring clock change: a 23-hour UK day
        ((2026, 3, 28, 2), (2026, 3, 29, 1), "Sat 28 Mar 2026", "28 Mar 02:00 – 29 Mar 02:00 UK"),
        # an interval of no length: the 24 hours ending at it
        ((2026, 1, 15, 2), (2026, 1, 15, 2), "Wed 14 Jan 2026", "14 Jan 02:00 – 15 Jan 02:00 UK"),
        (None, (2026, 1, 15, 2), "Wed 14 Jan 2026", "14 Jan 02:00 – 15 Jan 02:00 UK"),
    ],
)
def test_uk_day(start, end, label, span):
    def naive_utc(parts):
        return dt.datetime(*parts, tzinfo=UTC).replace(tzinfo=None)

    day = run_story.uk_day(start and naive_utc(start), naive_utc(end))
    assert (day["label"], day["span"]) == (label, span)


def test_no_interval_no_uk_day():
    assert run_story.uk_day(None, None) is None


@pytest.mark.parametrize(
    ("totals", "scale"),
    [
        ([400, 3, 5, 0, 4, 6], "log"),  # a first run of 400 changes, then a handful
        ([4, 3, 5, 0, 4], "linear"),
        ([60, 50, 55], "linear"),  # big, but all alike
        ([45, 1, 1, 1], "linear"),  # under 50: a linear axis reads fine
        ([50, 4, 5, 4], "log"),
        ([], "linear"),
        ([0, 0], "linear"),
    ],
)
def test_the_changes_chart_uses_a_log_axis_when_one_run_dwarfs_the_rest(totals, scale):
    node = shutil.which("node")
    assert node, "node runs the page's own chart code"
    script = (
        f"require({json.dumps(str(JS))});"
        f"console.log(JSON.stringify(globalThis.SyncPageChart.scale({json.dumps(totals)})));"
    )
    answer = json.loads(
        subprocess.run([node, "-e", script], capture_output=True, check=True).stdout
    )
    assert answer["type"] == scale
    if scale == "log":
        assert totals[answer["outlier"]] == max(totals)


def test_a_database_without_this_versions_tables_shows_no_marks_and_no_story(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    project_metadata.create_all(engine, tables=[sync_run_count, sync_task_error, sync_outbox])
    with engine.connect() as conn:
        rows = run_story.with_marks(
            conn,
            [{"run_id": "r", "outcome": "success", "interval_start": None, "interval_end": None}],
        )
        story = run_story.run_story(conn, "r", {})
    assert rows[0]["marks"] == [] and rows[0]["uk_day"] is None
    assert story["refusals"] == story["tries"] == story["empty_visits"] == []
    engine.dispose()
