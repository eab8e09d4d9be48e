"""`make demo` runs this entry point: it must end green and print what changed."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from picsweb_sync.rules.drift import REASONS
from picsweb_sync.storage import project_tables as pt
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
    assert_every_difference_explained(tmp_path / "picsweb.sqlite")


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


def drift_by_run(db_file) -> dict[str, dict[str, int]]:
    """The demo's stored drift report: each run's differences by reason (every reason)."""
    engine = sa.create_engine(f"sqlite:///{db_file}")
    drift = pt.sync_drift.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(drift.run_id, drift.reason, sa.func.count()).group_by(
                    drift.run_id, drift.reason
                )
            ).all()
            runs = conn.execute(sa.select(pt.sync_run.c.run_id)).scalars().all()
    finally:
        engine.dispose()
    counts = {run_id: dict.fromkeys(REASONS, 0) for run_id in runs}
    for run_id, reason, n in rows:
        counts[run_id][reason] = n
    return counts


def assert_every_difference_explained(db_file) -> None:
    """After the demo's two runs, each run has a drift report and no difference in it is
    unexplained (issue 22); the counts by reason are printed for the record."""
    counts = drift_by_run(db_file)
    assert len(counts) == 2
    for run_id, by_reason in sorted(counts.items()):
        print(f"demo drift {run_id}: {by_reason}")
        assert by_reason["unexplained"] == 0, (run_id, by_reason)
    assert any(sum(by_reason.values()) for by_reason in counts.values())
