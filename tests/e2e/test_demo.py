"""`make demo` runs this entry point: it must end green and print what changed."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sync_demo import cli


def test_demo_runs_twice_and_reports_changes_and_rejects(airflow_db, tmp_path, capsys):
    before = datetime.now(ZoneInfo("Europe/London")).date()
    assert cli.main(["--learners", "6", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^run 1 \S+: success$", out, re.M)
    assert re.search(r"^run 2 \S+: success", out, re.M)
    run1 = out.split("\nrun 2 ")[0]
    assert re.search(r"picsweb\s+trainee_qualification\s+\w+\s+\d+ changed", run1)
    assert re.search(r"onefile\s+LearningAim\s+\w+\s+\d+ changed", run1)
    # The deliberately malformed rows are set aside, with their reasons, and counted.
    assert re.search(r"reject\s+extract_learning_aims\s+.*not a whole number", run1)
    assert (tmp_path / "picsweb.sqlite").exists()
    # The data follow today's UK date, so the run for today finds OneFile reviews in its
    # window (a run whose window misses them downloads none, and meets no malformed one).
    (day,) = re.findall(r"^Demo data: .* reviews scheduled around (\S+) ", out, re.M)
    assert day in {before.isoformat(), datetime.now(ZoneInfo("Europe/London")).date().isoformat()}
    assert_reviews_downloaded(run1)


def test_demo_for_a_given_day_runs_for_that_day(airflow_db, tmp_path, capsys):
    argv = ["--learners", "4", "--data-dir", str(tmp_path), "--today", "2026-07-15"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "reviews scheduled around 2026-07-15" in out
    assert re.search(r"^run 1 \S+: success$", out, re.M)
    # The runs have that day's logical date, so its reviews are inside their window.
    assert_reviews_downloaded(out.split("\nrun 2 ")[0])


def assert_reviews_downloaded(run: str) -> None:
    assert re.search(r"picsweb\s+review\s+scheduled_date\s+\d+ changed", run)
    assert re.search(r"picsweb\s+review\s+trainee_id\s+\d+ changed", run)  # new reviews
    assert re.search(r"reject\s+extract_reviews\s+ID: missing", run)
