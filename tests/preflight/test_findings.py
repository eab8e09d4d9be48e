"""Levels, exit codes, the table and the JSON of a preflight report; secrets blanked out."""

from __future__ import annotations

import json

import pytest

from picsweb_sync.preflight.findings import Check, Level, Redactor, Report


def _check(check_id: str, level: Level, advice: str = "nothing to do") -> Check:
    return Check(check_id, level, f"title of {check_id}", f"finding of {check_id}", advice)


@pytest.mark.parametrize(
    ("levels", "result", "exit_code"),
    [
        ([], "ok", 0),
        ([Level.OK, Level.OK], "ok", 0),
        ([Level.OK, Level.WARNING], "warning", 0),  # warnings never fail a pipeline
        ([Level.WARNING, Level.BLOCKING, Level.OK], "blocking", 1),
        ([Level.BLOCKING], "blocking", 1),
    ],
)
def test_the_worst_level_decides_the_result_and_the_exit_code(levels, result, exit_code):
    report = Report([_check(f"a.{i}", level) for i, level in enumerate(levels)])
    assert (str(report.level), report.exit_code) == (result, exit_code)
    shown = json.loads(report.as_json())
    assert (shown["result"], shown["exit_code"]) == (result, exit_code)
    assert shown["counts"] == {
        name: sum(str(level) == name for level in levels) for name in ("ok", "warning", "blocking")
    }


def test_the_table_puts_each_areas_worst_first_and_says_what_to_do():
    report = Report(
        [
            _check("picsweb.table.officer", Level.OK),
            _check("picsweb.column.review.x", Level.BLOCKING, "add the column x"),
            _check("onefile.auth", Level.OK),
            _check("onefile.field.reviews.ID", Level.WARNING, "look at the rows"),
        ]
    )
    lines = report.as_table(width=80).splitlines()
    assert lines[0] == "Result: BLOCKING (1 blocking, 1 warning, 2 ok); exit code 1"
    titles = [line for line in lines if line[:9].strip() in ("OK", "WARNING", "BLOCKING")]
    assert titles == [
        "BLOCKING  title of picsweb.column.review.x",
        "OK        title of picsweb.table.officer",
        "WARNING   title of onefile.field.reviews.ID",
        "OK        title of onefile.auth",
    ]
    assert "          what to do: add the column x" in lines
    assert "          what to do: look at the rows" in lines
    assert not any("nothing to do" in line for line in lines)  # ok checks stay short


def test_long_findings_wrap_under_their_check():
    long = "word " * 60
    report = Report([Check("a.b", Level.WARNING, "t", long.strip(), long.strip())])
    lines = report.as_table(width=60).splitlines()
    body = [line for line in lines if line.startswith("          ")]
    assert len(body) > 4 and all(len(line) <= 60 for line in body)


def test_the_redactor_blanks_every_secret_in_every_text():
    redact = Redactor(["s3cret-password", None, "", "tok-123456"])
    check = Check(
        "picsweb.connect",
        Level.BLOCKING,
        "db s3cret-password",
        "login failed for s3cret-password (token tok-123456)",
        "check tok-123456",
        {"url": "postgresql://u:s3cret-password@h/db"},
    )
    shown = Report([check]).redacted(redact).as_json()
    assert "s3cret-password" not in shown and "tok-123456" not in shown
    assert shown.count("***") == 5
