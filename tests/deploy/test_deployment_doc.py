"""docs/deployment.md: every command it gives runs in a service the compose file has, every
``airflow`` command parses with Airflow's own CLI parser, and the data team's commands are
there as the README gives them, run inside the containers."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.deploy.scripts import REPO

DOC = (REPO / "docs" / "deployment.md").read_text()
SERVICES = set(yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"])
_EXEC = re.compile(r"docker compose (?:exec|run --rm) ([a-z-]+) (airflow|python) ([^`\n]*)")


def _commands() -> list[tuple[str, str, list[str]]]:
    """(service, program, argv) of each ``docker compose exec|run --rm SERVICE ...``."""
    joined = DOC.replace("\\\n", " ")
    return [(m[1], m[2], shlex.split(m[3])) for m in _EXEC.finditer(joined)]


def test_every_command_runs_in_a_service_of_the_compose_file():
    commands = _commands()
    assert len(commands) >= 10
    for service, _, _ in commands:
        assert service in SERVICES


@pytest.mark.parametrize(
    "argv",
    [argv for _, program, argv in _commands() if program == "airflow" and argv != ["..."]],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_airflow_command_parses(argv):
    from airflow.cli.cli_parser import get_parser

    values = [a.replace("<run id>", "manual__x").replace("<customer token>", "t") for a in argv]
    args = get_parser().parse_args(values)
    assert callable(args.func)


@pytest.mark.parametrize(
    "command",
    [
        "airflow backfill create --dag-id onefile_picsweb_sync --from-date 2026-03-01 "
        "--to-date 2026-03-31T23:59 --reprocess-behavior completed --max-active-runs 1",
        "airflow tasks clear onefile_picsweb_sync -t push_reviews -s 2026-03-20 "
        "-e 2026-03-20T23:59 -y",
        'airflow pools set onefile_api 1 "OneFile API rate limit"',
        "airflow dags unpause onefile_picsweb_sync",
    ],
)
def test_the_data_teams_commands_are_there_as_the_readme_gives_them(command):
    assert command in DOC
    if command.startswith(("airflow backfill", "airflow tasks clear", "airflow dags unpause")):
        assert f"docker compose exec airflow-scheduler {command}" in DOC


def test_the_scripts_it_runs_exist():
    for path in re.findall(r"/opt/airflow/(deploy/[a-z_]+\.py)", DOC):
        assert (REPO / path).exists(), path
    makefile = (REPO / "Makefile").read_text()
    for target in ("test", "deploy-config", "test-mssql"):
        assert f"make {target}" in DOC
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_it_covers_what_a_deployment_needs():
    for heading in (
        "## Build and start",
        "## The demo profile",
        "## Connections",
        "## The pool",
        "## Scaling the workers",
        "## Upgrading Airflow",
        "## The data team's commands",
    ):
        assert heading in DOC
    for phrase in (
        "cp .env.example .env",
        "docker compose build",
        "docker compose up -d",
        "docker compose --profile demo up",
        "--scale airflow-worker=3",
        "mssql://user:password@host:1433/picsweb",
        "sync_run.failure",
        "airflow db migrate",
    ):
        assert phrase in DOC, phrase
