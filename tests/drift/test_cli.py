"""Issue 22, on demand: ``python -m picsweb_sync.drift`` and ``make drift``, the real command
in its own process, against the OneFile simulator over HTTP and a PICSWeb on PostgreSQL.

Before the sync's first run every difference has a reason (exit 0); a change the latest real
run planned and never wrote is unexplained (exit 1), whatever dry or running run came after
it; a OneFile row this read sets aside explains its difference as a reject; a connection
that cannot be read exits 2. In every case nothing is written: PostgreSQL's own row counters
do not move, no table appears, the simulator's call log holds reads only.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess

import pandas as pd
import pytest
import sqlalchemy as sa

from picsweb_sync.drift import reasons
from picsweb_sync.rules import drift
from picsweb_sync.run.drift_labels import what_to_do
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import connection_env
from tests.drift.conftest import run_drift
from tests.preflight.conftest import DB_PASSWORD, REPO, Pair, database_state, onefile_writes

REAL = "scheduled__2026-12-06T02:00:00+00:00"
DRY = "manual__2026-12-06T09:00:00+00:00"
RUNNING = "manual__2026-12-07T09:00:00+00:00"
NEVER_WRITTEN = "planned by this run, never written"


def _nothing_written(pair: Pair, before: dict) -> None:
    assert database_state(pair.picsweb) == before
    assert onefile_writes(pair.sim) == []
    assert pair.sim.data == pair.onefile_before
    assert pair.sim.calls, "the report did not call OneFile"


def test_before_the_first_run_every_difference_has_a_reason(pair: Pair):
    before = database_state(pair.picsweb)

    outcome = run_drift(pair.env, "--json")

    assert outcome.code == 0, outcome.stdout + outcome.stderr
    report = outcome.report
    assert report["result"] == "explained" and report["exit_code"] == 0
    assert list(report["counts"]) == list(drift.REASONS)
    assert report["counts"]["unexplained"] == 0
    assert report["differences"] == len(report["rows"]) == sum(report["counts"].values())
    assert {"not_linked", "units_attached", "rule_keeps_picsweb", "changed_since"} <= {
        reason for reason, n in report["counts"].items() if n
    }
    assert report["evidence_run"] is None
    assert report["onefile"]["organisations"] == [5740, 5741]
    assert report["onefile"]["rows"]["learners"] == 12
    first = report["rows"][0]
    assert set(first) == set(drift.COLUMNS)
    changed = [row for row in report["rows"] if row["reason"] == "changed_since"]
    assert {row["detail"] for row in changed} >= {"no run of the sync yet: the first run syncs it"}
    # Searches only, of each organisation: learners, the assessor roles, aims, reviews.
    searched = {
        (c.path.split("/")[1], c.body.get("OrganisationID"), c.body.get("Role"))
        for c in pair.sim.calls
        if "/Search/" in c.path and c.path != "/Organisation/Search"
    }
    assert searched == {
        (entity, organisation, role)
        for organisation in (5740, 5741)
        for entity, role in [("User", 1), ("User", 4), ("User", 5), ("User", 10)]
        + [("LearningAim", None), ("Review", None)]
    }
    assert report["onefile"]["calls"] == len(pair.sim.calls)
    _nothing_written(pair, before)


def test_the_text_says_the_result_then_counts_by_reason_and_field_then_rows(pair: Pair):
    outcome = run_drift(pair.env, "--limit", "2")

    assert outcome.code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert lines[0] == "OneFile <-> PICSWeb: what still differs (read-only; nothing was changed)"
    assert lines[1].startswith("Result: EXPLAINED (") and lines[1].endswith("exit code 0")
    at = lines.index("Differences by reason (unexplained first)")
    shown = [
        line.split()[0] for line in lines[at + 1 :] if line.startswith("  ") and line[2] != " "
    ]
    assert shown[: len(drift.REASONS)] == list(drift.REASONS)
    assert "Differences by field" in lines
    assert any(line.startswith("changed_since: ") and "(the first 2)" in line for line in lines)
    assert f"what to do: {what_to_do('changed_since')}" in outcome.stdout
    for secret in (DB_PASSWORD, pair.token):
        assert secret not in outcome.stdout + outcome.stderr


def _record_runs(pair: Pair, change: dict) -> None:
    """The latest real run planned ``change`` (a PICSWeb field) and never wrote it; a dry
    run after it and a run going now are not evidence."""
    pt.ensure_project_tables(pair.picsweb)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    runs = [
        (REAL, now - dt.timedelta(hours=3), now - dt.timedelta(hours=2), "success", False),
        (DRY, now - dt.timedelta(hours=1), now - dt.timedelta(minutes=50), "success", True),
        (RUNNING, now - dt.timedelta(minutes=5), None, "running", False),
    ]
    with pair.picsweb.begin() as conn:
        for run_id, started, ended, outcome, dry in runs:
            conn.execute(
                sa.insert(pt.sync_run).values(
                    run_id=run_id, started_at=started, ended_at=ended, outcome=outcome
                )
            )
            conn.execute(
                sa.insert(pt.sync_run_summary).values(
                    run_id=run_id,
                    dag_id="onefile_picsweb_sync",
                    run_type=run_id.split("__")[0],
                    dry_run=dry,
                    updated_at=started,
                )
            )
        planned = pd.DataFrame(
            {
                "table": ["trainee_qualification"],
                "key": [change["picsweb_key"]],
                "field": [change["field"]],
                "old": pd.Series([change["picsweb_value"]], dtype=object),
                "new": pd.Series([change["onefile_value"]], dtype=object),
                "rule": ["elements_from_onefile"],
            }
        )
        for run_id in (REAL, DRY):
            pt.replace_change_set(conn, run_id, "picsweb_updates", planned, "qualifications")


def test_a_change_the_last_real_run_planned_and_never_wrote_is_unexplained(pair: Pair):
    rows = run_drift(pair.env, "--json").report["rows"]
    change = next(
        row
        for row in rows
        if row["reason"] == "changed_since"
        and row["entity"] == "qualification"
        and row["field"] == "elements_done"
    )
    _record_runs(pair, change)
    before = database_state(pair.picsweb)
    pair.sim.reset_calls()

    outcome = run_drift(pair.env, "--json")

    assert outcome.code == 1, outcome.stdout + outcome.stderr
    report = outcome.report
    assert report["result"] == "unexplained" and report["exit_code"] == 1
    assert report["counts"]["unexplained"] == 1
    (flagged,) = [row for row in report["rows"] if row["reason"] == "unexplained"]
    assert flagged == {**change, "reason": "unexplained", "detail": NEVER_WRITTEN}
    assert report["rows"][0] == flagged  # unexplained first
    assert report["evidence_run"]["run_id"] == REAL
    assert report["running"] == RUNNING
    _nothing_written(pair, before)

    text = run_drift(pair.env)
    assert text.code == 1
    lines = text.stdout.splitlines()
    assert lines[1] == (
        f"Result: UNEXPLAINED (1 of {report['differences']} differences explained by no "
        "reason); exit code 1"
    )
    assert f"Evidence: the latest real run {REAL} (success, ended" in text.stdout
    at = lines.index("unexplained: 1")
    assert "elements_done" in lines[at + 2] and lines[at + 2].endswith(NEVER_WRITTEN)


def test_a_onefile_row_this_read_sets_aside_explains_its_difference(pair: Pair):
    """A PICSWeb review linked to a OneFile review whose AssessorID is not a number: the
    review is a reject of this read, and that is the reason of its row."""
    with pair.picsweb.connect() as conn:
        linked = set(
            conn.execute(
                sa.text("SELECT onefile_system_id FROM review WHERE onefile_system_id IS NOT NULL")
            ).scalars()
        )
    rows = run_drift(pair.env, "--json").report["rows"]
    compared = {row["onefile_id"] for row in rows if row["entity"] == "review"}
    review = next(r for r in pair.sim.data.reviews if r["ID"] in linked and r["ID"] in compared)
    review["AssessorID"] = "not a number"
    pair.onefile_before = copy.deepcopy(pair.sim.data)

    outcome = run_drift(pair.env, "--json")

    assert outcome.code == 0, outcome.stdout + outcome.stderr
    mine = [row for row in outcome.report["rows"] if row["onefile_id"] == review["ID"]]
    assert [row["reason"] for row in mine] == ["reject"]
    assert "AssessorID" in mine[0]["detail"]
    assert outcome.report["onefile"]["rejects"] == 1


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_a_connection_that_cannot_be_read_exits_2(pair: Pair, args):
    outcome = run_drift(pair.env, "--picsweb-conn-id", "no_such_connection", *args)
    assert outcome.code == 2
    assert "'no_such_connection' cannot be read" in outcome.stdout + outcome.stderr
    if args:
        assert outcome.report["result"] == "error"


def test_a_wrong_argument_is_a_usage_error(pair: Pair):
    assert run_drift(pair.env, "--days-before", "-1").code == 2
    assert run_drift(pair.env, "--no-such-option").code == 2


def test_the_csv_holds_every_row(pair: Pair, tmp_path):
    path = tmp_path / "drift.csv"
    outcome = run_drift(pair.env, "--json", "--csv", str(path))
    frame = pd.read_csv(path)
    assert list(frame.columns) == drift.COLUMNS
    assert len(frame) == len(outcome.report["rows"])


# ----- make drift and the README --------------------------------------------------------------
def test_each_reason_says_what_it_means_and_what_to_do():
    assert list(reasons.REASONS) == list(drift.REASONS)


def test_make_drift_runs_the_command_with_the_projects_airflow_home():
    done = subprocess.run(
        ["make", "-n", "-p", "drift", "DRIFT_ARGS=--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert ".venv/bin/python -m picsweb_sync.drift --json" in lines
    assert f"AIRFLOW_HOME := {REPO}/.airflow" in lines


def _readme_section() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("### What still differs: the drift report", 1)[1]
    return section.split("\n## ", 1)[0].split("\n### ", 1)[0]


def _readme_drift_commands() -> list[str]:
    """The commands of the README's drift section's command block, comments dropped."""
    block = _readme_section().split("```\n", 2)[1]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_names_the_drift_commands_this_module_runs():
    assert _readme_drift_commands() == [
        "make drift",
        'make drift DRIFT_ARGS="--json"',
        ".venv/bin/python -m picsweb_sync.drift --staging-conn-id staging_db --csv /tmp/drift.csv",
    ]


def test_the_readme_explains_each_reason_in_the_reports_order():
    rows = [line for line in _readme_section().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(drift.REASONS)
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), row


@pytest.mark.parametrize("command", _readme_drift_commands())
def test_each_readme_drift_command_does_what_the_readme_says(pair: Pair, pg_server, command):
    """Run as written, from the repository, with the DAG's connections in the environment:
    before the first run every difference has a reason (exit 0); ``--json`` prints only
    JSON; ``--staging-conn-id`` reads that database's runs; ``--csv`` writes every row."""
    staging_url = pg_server.create_database(f"{pair.picsweb.url.database}_drift_staging")
    pt.ensure_project_tables(sa.create_engine(staging_url))
    as_picsweb = connection_env(pair.sim.base_url, pair.token, staging_url)
    shell = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    env = {**shell, **pair.env, "AIRFLOW_CONN_STAGING_DB": as_picsweb["AIRFLOW_CONN_PICSWEB_DB"]}
    before = database_state(pair.picsweb)

    done = subprocess.run(
        command, shell=True, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stdout + done.stderr
    if "--json" in command:
        assert json.loads(done.stdout)["counts"]["unexplained"] == 0
    else:
        assert done.stdout.splitlines()[1].startswith("Result: EXPLAINED")
    if "--staging-conn-id" in command:
        assert "Evidence: no real run ended yet (the outbox only)" in done.stdout
        assert list(pd.read_csv("/tmp/drift.csv").columns) == drift.COLUMNS
    _nothing_written(pair, before)


def test_the_last_run_statements_compile_for_sql_server():
    from sqlalchemy.dialects import mssql

    from picsweb_sync.drift.last_run import latest_statement, running_statement

    for statement in (latest_statement(), running_statement()):
        text = str(statement.compile(dialect=mssql.dialect()))
        assert "TOP" in text and "LIMIT" not in text
