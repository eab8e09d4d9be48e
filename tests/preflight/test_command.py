"""Issue 13: ``python -m picsweb_sync.preflight``, the real command in its own process,
against the OneFile simulator over HTTP and a PICSWeb on PostgreSQL.

A matching pair passes; each way a provider's systems can differ from what the sync
assumes is reported at its level (and nothing else blocks), and in every case nothing is
written in either system: PostgreSQL's own row counters do not move, no table appears,
the simulator's call log holds reads only and its data is as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from picsweb_sync.storage import project_tables
from sync_demo.dag_runs import connection_env
from tests.preflight.conftest import (
    DB_PASSWORD,
    REPO,
    Pair,
    database_state,
    onefile_writes,
    run_preflight,
)

OK, WARNING, BLOCKING = "ok", "warning", "blocking"
# Checks a matching pair passes: one of each kind the issue names.
MATCHING = {
    "picsweb.connect": OK,
    "picsweb.table.review": OK,
    "picsweb.table.trainee_qualification": OK,
    "picsweb.key.review.review_id": OK,
    "picsweb.settings": OK,
    "picsweb.settings.organisation_ids": OK,
    "picsweb.collation": OK,
    "picsweb.grants.trainee_qualification": OK,
    "picsweb.grants.review": OK,
    "staging.tables": OK,
    "onefile.auth": OK,
    "onefile.organisations": OK,
    "onefile.field.learning_aims.CertificateReceivedDate": OK,
    "onefile.field.reviews.ScheduledFor": OK,
    "onefile.rejects.learning_aims": OK,
    "onefile.paging.learners": OK,
    "onefile.rate_limit": OK,
    "first_run.learners": OK,
    "first_run.qualifications": OK,
}


def _rename_certificate_received_date(pair: Pair) -> None:
    pair.sim.faults.rename_field("LearningAim", "CertificateReceivedDate", "CertificateReceivedOn")


def _role_without_update(pair: Pair) -> None:
    """A login that may read everything and create tables, but not update qualifications."""
    role = f"sync_no_update_{pair.picsweb.url.database}"
    pair.execute(
        f"CREATE ROLE {role} LOGIN",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT UPDATE ON review, onefile_settings TO {role}",
        f"GRANT INSERT ON review TO {role}",
        f"GRANT CREATE ON SCHEMA public TO {role}",
    )
    pair.connect_as(role)


def _case_insensitive_collation(pair: Pair) -> None:
    pair.execute(
        "CREATE COLLATION case_insensitive "
        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
        "ALTER TABLE trainee_qualification ALTER COLUMN registration_number "
        "TYPE varchar(50) COLLATE case_insensitive",
        "ALTER TABLE review ALTER COLUMN review_type TYPE varchar(20) COLLATE case_insensitive",
    )


def _refused_token(pair: Pair) -> None:
    pair.sim.customer_token = "another-customers-token"


@dataclass(frozen=True)
class Case:
    name: str
    spoil: Callable[[Pair], None]
    expected: dict[str, str]
    exit_code: int
    finding_mentions: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("matching pair", lambda pair: None, MATCHING, 0),
    Case(
        "renamed OneFile field",
        _rename_certificate_received_date,
        {"onefile.field.learning_aims.CertificateReceivedDate": BLOCKING},
        1,
        {"onefile.field.learning_aims.CertificateReceivedDate": "CertificateReceivedOn"},
    ),
    Case(
        "missing PICSWeb column",
        lambda pair: pair.execute("ALTER TABLE review DROP COLUMN trainee_signed_date"),
        {"picsweb.column.review.trainee_signed_date": BLOCKING, "picsweb.table.review": OK},
        1,
        {"picsweb.column.review.trainee_signed_date": "missing"},
    ),
    Case(
        "too-short PICSWeb column",
        lambda pair: pair.execute(
            "ALTER TABLE trainee_qualification ALTER COLUMN registration_number TYPE varchar(20)"
        ),
        {"picsweb.column.trainee_qualification.registration_number": BLOCKING},
        1,
        {"picsweb.column.trainee_qualification.registration_number": "VARCHAR(20)"},
    ),
    Case(
        "missing grant",
        _role_without_update,
        {
            "picsweb.grants.trainee_qualification": BLOCKING,
            "picsweb.grants.review": OK,
            "staging.tables": OK,
        },
        1,
        {"picsweb.grants.trainee_qualification": "missing UPDATE"},
    ),
    Case(
        "bad settings row",
        lambda pair: pair.execute("UPDATE onefile_settings SET organisation_ids = '5740, x'"),
        {"picsweb.settings": BLOCKING, "picsweb.settings.organisation_ids": BLOCKING},
        1,
        {"picsweb.settings": "organisation_ids"},
    ),
    Case(
        "case-insensitive collation",
        _case_insensitive_collation,
        {"picsweb.collation": WARNING},
        0,
        {"picsweb.collation": "trainee_qualification.registration_number (case_insensitive"},
    ),
    Case(
        "refused customer token",
        _refused_token,
        {"onefile.auth": BLOCKING},
        1,
        {"onefile.auth": "HTTP 401"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_mismatch_is_reported_at_its_level_and_nothing_is_written(pair: Pair, case: Case):
    case.spoil(pair)
    before = database_state(pair.picsweb)
    pair.sim.reset_calls()

    outcome = run_preflight(pair.env, "--json")

    assert outcome.code == case.exit_code, outcome.stdout + outcome.stderr
    levels = outcome.levels
    assert {check: levels.get(check) for check in case.expected} == case.expected
    expected_blocking = {check for check, level in case.expected.items() if level == BLOCKING}
    assert {check for check, level in levels.items() if level == BLOCKING} == expected_blocking
    assert outcome.report["result"] == max(levels.values(), key=[OK, WARNING, BLOCKING].index)
    for check_id, text in case.finding_mentions.items():
        assert text in outcome.check(check_id)["finding"], outcome.check(check_id)
    for check in outcome.report["checks"]:  # every check says what to do
        assert check["advice"].strip(), check
    # Nothing written anywhere: no row touched, no table made, OneFile only read.
    assert database_state(pair.picsweb) == before
    assert onefile_writes(pair.sim) == []
    assert pair.sim.data == pair.onefile_before
    assert pair.sim.calls, "the preflight did not call OneFile"
    # No secret in anything the command printed.
    for secret in (DB_PASSWORD, pair.token):
        assert secret not in outcome.stdout + outcome.stderr


def test_a_matching_pair_reads_one_page_of_each_search_for_each_organisation(pair: Pair):
    outcome = run_preflight(pair.env, "--json")
    assert outcome.code == 0
    searched = {
        (c.path.split("/")[1], c.body.get("OrganisationID"), c.body.get("Role"))
        for c in pair.sim.calls
        if "/Search/1/" in c.path
    }
    expected = {
        (entity, organisation, role)
        for organisation in (5740, 5741)
        for entity, role in [
            ("User", 1),
            ("User", 4),
            ("User", 5),
            ("User", 10),
            ("LearningAim", None),
            ("Review", None),
        ]
    }
    assert searched == expected
    counted = outcome.check("onefile.calls")["details"]["calls"]
    assert counted == len(pair.sim.calls)


def test_the_default_output_is_a_table_saying_what_to_do(pair: Pair):
    pair.execute(
        "ALTER TABLE trainee_qualification ALTER COLUMN registration_number TYPE varchar(20)"
    )
    outcome = run_preflight(pair.env)
    assert outcome.code == 1
    lines = outcome.stdout.splitlines()
    assert lines[1].startswith("Result: BLOCKING (1 blocking")
    at = lines.index("BLOCKING  column trainee_qualification.registration_number")
    block = " ".join(line.strip() for line in lines[at + 1 : at + 8])
    assert "VARCHAR(20), shorter than the definition's VARCHAR(50)" in block
    assert "what to do: widen the column to 50, or set its length to 20" in block
    assert "OK        OneFile authentication" in lines
    assert DB_PASSWORD not in outcome.stdout + outcome.stderr


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_a_connection_that_cannot_be_read_exits_2(pair: Pair, args):
    outcome = run_preflight(pair.env, "--onefile-conn-id", "no_such_connection", *args)
    assert outcome.code == 2
    shown = outcome.stdout + outcome.stderr
    assert "'no_such_connection' cannot be read" in shown
    if args:
        assert outcome.report["result"] == "error"


def test_a_wrong_argument_is_a_usage_error(pair: Pair):
    assert run_preflight(pair.env, "--no-such-option").code == 2


def test_make_preflight_runs_the_command_with_the_projects_airflow_home():
    done = subprocess.run(
        ["make", "-n", "-p", "preflight", "PREFLIGHT_ARGS=--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert ".venv/bin/python -m picsweb_sync.preflight --json" in lines
    assert f"AIRFLOW_HOME := {REPO}/.airflow" in lines


def test_a_staging_database_of_its_own_is_checked_too(pair: Pair, pg_server):
    """The sync's tables there exist (an earlier version made them) but one lacks a column
    the sync writes; the PICSWeb database keeps only its work tables, still to be made."""
    staging_url = pg_server.create_database(f"{pair.picsweb.url.database}_staging")
    staging = sa.create_engine(staging_url)
    project_tables.ensure_project_tables(staging)
    with staging.begin() as conn:
        conn.execute(sa.text("ALTER TABLE sync_outbox DROP COLUMN last_error"))
    before = database_state(staging)
    as_picsweb = connection_env(pair.sim.base_url, pair.token, staging_url)
    env = {**pair.env, "AIRFLOW_CONN_STAGING_DB": as_picsweb["AIRFLOW_CONN_PICSWEB_DB"]}

    outcome = run_preflight(env, "--json", "--staging-conn-id", "staging_db")

    assert outcome.code == 1
    levels = outcome.levels
    assert {c for c, level in levels.items() if level == BLOCKING} == {
        "staging.column.sync_outbox.last_error"
    }
    assert levels["staging.tables"] == OK
    assert levels["picsweb.own.tables"] == OK  # the work tables: missing, may be created
    assert "sync_picsweb_work" in outcome.check("picsweb.own.tables")["finding"]
    assert database_state(staging) == before
    staging.dispose()


def test_the_proof_of_no_writes_sees_a_write_even_a_rolled_back_one(pair: Pair):
    before = database_state(pair.picsweb)
    with pair.picsweb.connect() as conn:
        conn.execute(sa.text("UPDATE onefile_settings SET visit_type = visit_type"))
        conn.rollback()
    after = database_state(pair.picsweb)
    assert after["operations"]["onefile_settings"] != before["operations"]["onefile_settings"]
    pair.execute("CREATE TABLE sync_new (x int)")
    assert database_state(pair.picsweb)["tables"] != after["tables"]


def _readme_preflight_commands() -> list[str]:
    """The commands of the README's *Before the first run* block, comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Before the first run: `make preflight`", 1)[1]
    block = section.split("```\n", 2)[1]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_names_the_preflight_commands_this_module_runs():
    assert _readme_preflight_commands() == [
        "make preflight",
        'make preflight PREFLIGHT_ARGS="--json"',
        ".venv/bin/python -m picsweb_sync.preflight --staging-conn-id staging_db --no-onefile",
    ]


@pytest.mark.parametrize("command", _readme_preflight_commands())
def test_each_readme_preflight_command_does_what_the_readme_says(pair: Pair, pg_server, command):
    """Run as written, from the repository, with the DAG's connections in the environment:
    a matching pair passes (exit 0); ``--json`` prints only JSON (a pipeline parses it);
    ``--no-onefile`` makes no OneFile call; ``--staging-conn-id`` checks that database."""
    staging_url = pg_server.create_database(f"{pair.picsweb.url.database}_readme_staging")
    as_picsweb = connection_env(pair.sim.base_url, pair.token, staging_url)
    # as typed at a shell: not a sub-make of `make test` (which would print "Entering directory")
    shell = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    env = {
        **shell,
        **pair.env,
        "AIRFLOW_CONN_STAGING_DB": as_picsweb["AIRFLOW_CONN_PICSWEB_DB"],
    }
    before = database_state(pair.picsweb)
    calls_before = len(pair.sim.calls)

    done = subprocess.run(
        command, shell=True, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stdout + done.stderr
    if "--json" in command:
        report = json.loads(done.stdout)
        assert report["result"] in {"ok", "warning"}
    else:
        assert any(line.startswith("Result: ") for line in done.stdout.splitlines())
    onefile_calls = len(pair.sim.calls) - calls_before
    if "--no-onefile" in command:
        assert onefile_calls == 0
        # the same command as JSON names what it checked: the staging database's own tables
        as_json = subprocess.run(
            [*command.split(), "--json"], cwd=REPO, env=env, capture_output=True, text=True
        )
        checked = {c["id"] for c in json.loads(as_json.stdout)["checks"]}
        assert "staging.tables" in checked
        assert not any(c.startswith("onefile.") for c in checked)
    else:
        assert onefile_calls > 0
    assert database_state(pair.picsweb) == before
    assert pair.token not in done.stdout + done.stderr
