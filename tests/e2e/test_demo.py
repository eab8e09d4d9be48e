"""`make demo` runs this entry point: it must end green and print what changed."""

from __future__ import annotations

import re

from picsweb_sync import demo


def test_demo_runs_twice_and_reports_changes_and_rejects(airflow_db, tmp_path, capsys):
    assert demo.main(["--learners", "6", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^run 1 \S+: success$", out, re.M)
    assert re.search(r"^run 2 \S+: success", out, re.M)
    run1 = out.split("\nrun 2 ")[0]
    assert re.search(r"picsweb\s+trainee_qualification\s+\w+\s+\d+ changed", run1)
    assert re.search(r"onefile\s+LearningAim\s+\w+\s+\d+ changed", run1)
    # The deliberately malformed rows are set aside, with their reasons, and counted.
    assert re.search(r"reject\s+extract_learning_aims\s+.*not a whole number", run1)
    assert (tmp_path / "picsweb.sqlite").exists()
