"""docs/own-airflow.md is what the tests' Airflow runs: every command of the page is one the
harness runs (a component, the migration, the pool), each process gets the connections the
page gives it and no more, and the tests' own settings replace none of the page's.

No Airflow is started here (the harness is only asked what it would run); the real-scheduler
tests of this folder then start Airflow exactly so and prove it works.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.airflow.commands import airflow_commands
from tests.support import own_airflow
from tests.support.airflow_server import AirflowServer
from tests.support.airflow_settings import harness_settings, worker_test_args

DOC = own_airflow.DOC
COMPONENT_STEPS = ("api-server", "scheduler", "dag-processor")
# Run by the harness itself (start(): `airflow db migrate`) or by test_runbook_commands.
CLI_STEPS = {"migrate": "AirflowServer.start", "pool": "test_runbook_commands"}
# Who needs which connection (the table of section 4; docker-compose.yaml agrees, see
# tests/deploy/test_compose.py).
CONNECTIONS = {
    "api-server": {"PICSWEB_DB"},
    "scheduler": set(),
    "dag-processor": {"PICSWEB_DB", "SYNC_ALERTS_SMTP"},
    "worker-1": {"ONEFILE_API", "PICSWEB_DB", "AIRFLOW_API"},
    "worker-2": {"ONEFILE_API", "PICSWEB_DB", "AIRFLOW_API"},
}
TEST_CONNECTIONS = {
    "AIRFLOW_CONN_ONEFILE_API": '{"conn_type": "http", "host": "http://x/api/v2.1", '
    '"password": "customer-token-value"}',
    "AIRFLOW_CONN_PICSWEB_DB": "postgresql://sync:db-password-value@db.example/picsweb",
    "AIRFLOW_CONN_SYNC_ALERTS_SMTP": "smtp://mail.example:25",
}


@pytest.fixture
def server(tmp_path) -> AirflowServer:
    made = AirflowServer(
        home=tmp_path / "home",
        metadata_url="postgresql://airflow:metadata-password@db.example/airflow",
        secrets_dir=tmp_path / "secrets",
        extra_env=TEST_CONNECTIONS,
    )
    made._write_connections()  # what start() does before it starts anything
    return made


def _connections(env) -> set[str]:
    return {k.removeprefix("AIRFLOW_CONN_") for k in env if k.startswith("AIRFLOW_CONN_")}


def test_every_command_of_the_page_is_one_the_harness_runs(server):
    documented = [c.argv for c in airflow_commands(DOC.read_text(encoding="utf-8"), DOC.name)]
    runs = {c.name: list(c.argv) for c in server.components()}
    harness = [
        ["airflow", *runs[name]] for name in COMPONENT_STEPS if name in runs
    ]  # the worker's command is the page's plus the tests' own options
    worker = runs["worker-1"]
    extra = list(worker_test_args("worker-1", server))
    assert worker[len(worker) - len(extra) :] == extra
    harness.append(["airflow", *worker[: len(worker) - len(extra)]])
    harness += [own_airflow.block(step).commands[0] for step in CLI_STEPS]
    assert sorted(documented) == sorted(harness)
    tagged = {step for step, b in own_airflow.blocks().items() if b.commands}
    assert tagged == {*COMPONENT_STEPS, "worker", *CLI_STEPS}
    # Every command of the page stands in a tagged block the tests read.
    assert len(documented) == sum(len(b.commands) for b in own_airflow.blocks().values())


def test_the_site_block_names_every_value_the_tests_give(server):
    assert own_airflow.block("site").assigned == list(server.site)


def test_each_process_gets_the_connections_the_page_gives_it_and_no_more(server):
    for component in server.components():
        env = {**server.component_env, **component.env}
        assert _connections(env) == CONNECTIONS[component.name], component.name
    # A typed `airflow dags test` runs tasks: the tasks' connections.
    assert _connections(server.env) == CONNECTIONS["worker-1"]
    # The note connection is the page's: the sync-notes user, the api-server's URL.
    note = server.env["AIRFLOW_CONN_AIRFLOW_API"]
    assert '"login": "sync-notes"' in note and server.password("sync-notes") in note
    assert server.base_url in note


def test_with_the_local_executor_the_scheduler_gets_the_tasks_connections(tmp_path):
    local = AirflowServer(
        home=tmp_path / "home",
        metadata_url="postgresql://a:b@c/d",
        secrets_dir=tmp_path / "secrets",
        extra_env=TEST_CONNECTIONS,
        executor="LocalExecutor",
    )
    local._write_connections()
    found = {c.name: _connections(c.env) for c in local.components()}
    assert found == {
        "api-server": {"PICSWEB_DB"},
        "scheduler": CONNECTIONS["worker-1"],
        "dag-processor": CONNECTIONS["dag-processor"],
    }


def test_every_process_shares_the_pages_settings_and_the_tests_replace_none(server):
    page = server.step_env("settings")
    given = server.component_env
    ours = harness_settings(server)
    replaced = {k for k in ours if k in page and page[k] != ours[k]}
    assert replaced == {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"}
    # ... which the tests extend with their viewer, keeping the page's users and roles.
    key = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
    assert set(page[key].split(",")) < set(given[key].split(","))
    for key in set(page) - replaced:
        assert given[key] == page[key], key
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len(given[key]) >= 40, key
    assert given["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{server.base_url}/execution/"
    assert given["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == server.metadata_url


def test_the_secret_files_are_private_and_outside_the_home(server):
    files = sorted(p for p in server.secrets_dir.iterdir())
    names = {p.name for p in files}
    assert {"fernet_key", "jwt_secret", "api_secret_key", "passwords.json"} <= names
    assert {"onefile_api", "picsweb_db", "airflow_api", "metadata_db"} <= names
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert server.home not in server.secrets_dir.parents
    # Running the page's secrets block again keeps every secret (copies stay valid).
    before = {p.name: p.read_text() for p in files}
    server.step_env("secrets")
    assert {p.name: p.read_text() for p in files} == before


@pytest.mark.parametrize("page", ["README.md", "docs/deployment.md"])
def test_the_page_is_linked(page):
    text = (Path(own_airflow.REPO) / page).read_text(encoding="utf-8")
    assert "own-airflow.md" in text, f"{page} does not link docs/own-airflow.md"
