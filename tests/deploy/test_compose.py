"""docker-compose.yaml: validated offline by ``docker-compose config`` (Debian's package) for
the default and the demo profiles, and checked for the shape of
Airflow's Celery deployment: every service, health checks, restart policies, a scalable
worker, the project image, secrets only from the environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.scripts import REPO, load

COMPOSE = REPO / "docker-compose.yaml"
DEV_OVERRIDE = REPO / "deploy" / "docker-compose.dev.yaml"
ENV_EXAMPLE = REPO / ".env.example"

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}
CORE_SERVICES = {"postgres", "redis", *AIRFLOW_SERVICES}
DEMO_SERVICES = {
    "sqlserver",
    "picsweb-postgres",
    "picsweb-demo-init",
    "onefile-simulator",
    "demo-trigger",
}
# The profiles of each demo service: SQL Server's demo, or the same with PICSWeb on PostgreSQL.
DEMO_PROFILES = {
    "sqlserver": ["demo"],
    "picsweb-postgres": ["demo-postgres"],
    "picsweb-demo-init": ["demo", "demo-postgres"],
    "onefile-simulator": ["demo", "demo-postgres"],
    "demo-trigger": ["demo", "demo-postgres"],
}
ONE_SHOT = {"airflow-init", "picsweb-demo-init", "demo-trigger", "airflow-cli"}
SECRETS = {
    "AIRFLOW_DB_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "SYNC_NOTE_PASSWORD",
    "ONEFILE_CUSTOMER_TOKEN",
    "PICSWEB_DB_PASSWORD",
    "MSSQL_SA_PASSWORD",
    "PICSWEB_DEMO_POSTGRES_PASSWORD",
}


# ----- docker-compose config ------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_command() -> list[str]:
    """``docker-compose`` (Debian's v1 CLI), else the ``docker compose`` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip(
        "docker-compose is not installed and could not be: `make deploy-check-tools` "
        "(deploy/ensure-docker-compose.sh) installs Debian's docker-compose package"
    )


def env_values(text: str) -> dict[str, str]:
    return {
        m["key"]: m["value"]
        for m in re.finditer(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$", text, re.M)
    }


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    """A .env made from .env.example by deploy/new_env.py (as docs/deployment.md says)."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(load("new_env").filled(ENV_EXAMPLE.read_text()))
    return path


def compose_config(
    command: list[str],
    env_file: Path,
    *args: str,
    files: tuple[Path, ...] = (COMPOSE,),
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    # Only the .env file speaks: none of the caller's variables leak into the interpolation.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    env.update(extra_env or {})
    selected = [part for f in files for part in ("-f", str(f))]
    return subprocess.run(
        [*command, *selected, "--env-file", str(env_file), *args, "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def rendered(compose_command, env_file) -> dict:
    done = compose_config(compose_command, env_file)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_default_profile_validates(rendered):
    assert set(rendered["services"]) >= CORE_SERVICES


@pytest.mark.parametrize("profile", ["demo", "demo-postgres"])
def test_the_demo_profile_validates(compose_command, env_file, profile):
    done = compose_config(compose_command, env_file, "--profile", profile)
    assert done.returncode == 0, done.stderr
    services = set(yaml.safe_load(done.stdout)["services"])
    profiled = {name for name, profiles in DEMO_PROFILES.items() if profile in profiles}
    assert services >= CORE_SERVICES | profiled


def test_the_postgres_demo_points_the_picsweb_connection_at_its_server(compose_command, tmp_path):
    from airflow.models.connection import Connection

    env_file = tmp_path / ".env"
    env_file.write_text(
        load("new_env").filled(ENV_EXAMPLE.read_text(), load("new_env").POSTGRES_PICSWEB)
    )
    done = compose_config(compose_command, env_file, "--profile", "demo-postgres")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    picsweb = Connection.from_json(
        services["airflow-worker"]["environment"]["AIRFLOW_CONN_PICSWEB_DB"], conn_id="picsweb_db"
    )
    assert (picsweb.conn_type, picsweb.host, picsweb.port) == ("postgres", "picsweb-postgres", 5432)
    init = services["picsweb-demo-init"]["environment"]
    assert init["PICSWEB_DB_CONN_TYPE"] == "postgres"
    assert (
        init["DEMO_POSTGRES_PASSWORD"]
        == services["picsweb-postgres"]["environment"]["POSTGRES_PASSWORD"]
    )


def test_the_development_override_validates_and_mounts_the_code(compose_command, env_file):
    done = compose_config(compose_command, env_file, files=(COMPOSE, DEV_OVERRIDE))
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        mounts = {str(v).split(":")[1] for v in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/include", "/opt/airflow/plugins"} <= mounts
        assert "/opt/airflow/logs" in mounts, name


@pytest.mark.parametrize(
    "variable",
    [
        "AIRFLOW_DB_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "ONEFILE_API_URL",
        "ONEFILE_CUSTOMER_TOKEN",
        "PICSWEB_DB_HOST",
        "PICSWEB_DB_NAME",
        "PICSWEB_DB_LOGIN",
        "PICSWEB_DB_PASSWORD",
    ],
)
def test_a_missing_required_setting_stops_compose_naming_it(
    compose_command, env_file, tmp_path, variable
):
    without = "\n".join(
        line for line in env_file.read_text().splitlines() if not line.startswith(f"{variable}=")
    )
    partial = tmp_path / ".env"
    partial.write_text(without + "\n")
    done = compose_config(compose_command, partial)
    assert done.returncode != 0
    assert f"set {variable} in .env" in done.stderr


def test_the_demo_only_secret_is_not_required_without_the_profile(
    compose_command, env_file, tmp_path
):
    partial = tmp_path / ".env"
    partial.write_text(
        "\n".join(
            line
            for line in env_file.read_text().splitlines()
            if not line.startswith("MSSQL_SA_PASSWORD=")
        )
    )
    done = compose_config(compose_command, partial)
    assert done.returncode == 0, done.stderr


def test_the_sync_connections_are_valid_airflow_connections(rendered, env_file):
    from airflow.models.connection import Connection

    from picsweb_sync.storage.engines import url_for_connection

    values = env_values(env_file.read_text())
    environment = rendered["services"]["airflow-worker"]["environment"]
    onefile = Connection.from_json(environment["AIRFLOW_CONN_ONEFILE_API"], conn_id="onefile_api")
    assert onefile.conn_type == "http"
    assert onefile.host == values["ONEFILE_API_URL"] == "http://onefile-simulator:8099/api/v2.1"
    assert onefile.password == values["ONEFILE_CUSTOMER_TOKEN"]
    picsweb = Connection.from_json(environment["AIRFLOW_CONN_PICSWEB_DB"], conn_id="picsweb_db")
    url = url_for_connection(
        picsweb.conn_type,
        picsweb.host,
        picsweb.port,
        picsweb.login,
        picsweb.password,
        picsweb.schema,
    )
    assert url.drivername == "mssql+pymssql"
    assert (url.host, url.port, url.database) == ("sqlserver", 1433, "picsweb")
    assert (url.username, url.password) == ("picsweb_sync", values["PICSWEB_DB_PASSWORD"])


def test_only_the_processes_that_run_tasks_get_the_connections(rendered):
    for name, service in rendered["services"].items():
        has = "AIRFLOW_CONN_ONEFILE_API" in (service.get("environment") or {})
        assert has == (name == "airflow-worker"), name


def connections_of(service: dict) -> set[str]:
    return {k for k in service.get("environment") or {} if k.startswith("AIRFLOW_CONN_")}


def test_each_process_gets_only_the_connections_it_uses(rendered):
    services = rendered["services"]
    expected = {
        # tasks: OneFile, PICSWeb (and the sync's tables), the REST API login for run notes
        "airflow-worker": {"ONEFILE_API", "PICSWEB_DB", "AIRFLOW_API"},
        # the sync page plugin reads the run history and audit from the sync's tables
        "airflow-apiserver": {"PICSWEB_DB"},
        # the DAG's on_failure_callback (alerts) runs here and reads the failed run's record
        "airflow-dag-processor": {"PICSWEB_DB", "SYNC_ALERTS_SMTP"},
        "airflow-scheduler": set(),
        "airflow-triggerer": set(),
        "airflow-init": set(),
    }
    for name, conn_ids in expected.items():
        assert connections_of(services[name]) == {f"AIRFLOW_CONN_{c}" for c in conn_ids}, name


def test_run_notes_log_in_as_the_sync_user_airflow_init_creates(rendered, env_file):
    from airflow.models.connection import Connection

    values = env_values(env_file.read_text())
    worker = rendered["services"]["airflow-worker"]["environment"]
    api = Connection.from_json(worker["AIRFLOW_CONN_AIRFLOW_API"], conn_id="airflow_api")
    assert (api.conn_type, api.host) == ("http", "http://airflow-apiserver:8080")
    assert (api.login, api.password) == ("sync-notes", values["SYNC_NOTE_PASSWORD"])
    init = rendered["services"]["airflow-init"]["environment"]
    assert (init["SYNC_NOTE_USERNAME"], init["SYNC_NOTE_PASSWORD"]) == (api.login, api.password)
    fab = (REPO / "deploy" / "airflow-init.sh").read_text().split("*FabAuthManager)")[1]
    user = fab.split(";;")[0].split("--role Admin")[1]
    assert '--username "${SYNC_NOTE_USERNAME:-sync-notes}"' in user
    assert "--role User" in user  # FAB's User may edit DAG runs (the note), not administer


def test_alerts_are_off_until_the_smtp_connection_is_given(compose_command, env_file, monkeypatch):
    from airflow.models.connection import Connection
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend

    def smtp_connection(extra_env: dict[str, str]) -> Connection | None:
        done = compose_config(compose_command, env_file, extra_env=extra_env)
        assert done.returncode == 0, done.stderr
        environment = yaml.safe_load(done.stdout)["services"]["airflow-dag-processor"]
        value = environment["environment"]["AIRFLOW_CONN_SYNC_ALERTS_SMTP"]
        monkeypatch.setenv("AIRFLOW_CONN_SYNC_ALERTS_SMTP", value)
        return EnvironmentVariablesBackend().get_connection("sync_alerts_smtp")

    assert smtp_connection({}) is None  # empty: Airflow finds no such connection
    given = {
        "conn_type": "smtp",
        "host": "smtp.example.org",
        "port": 587,
        "login": "alerts",
        "password": "s3cret",
        "extra": {"to": "data-team@example.org", "from_email": "airflow@example.org"},
    }
    smtp = smtp_connection({"SYNC_ALERTS_SMTP_CONN": json.dumps(given)})
    assert (smtp.conn_type, smtp.host, smtp.port, smtp.password) == (
        "smtp",
        "smtp.example.org",
        587,
        "s3cret",
    )
    assert smtp.extra_dejson["to"] == "data-team@example.org"


def test_links_in_notes_and_mails_use_the_base_url(rendered):
    for name in AIRFLOW_SERVICES:
        environment = rendered["services"][name]["environment"]
        assert environment["AIRFLOW__API__BASE_URL"] == "http://localhost:8080", name


def test_every_airflow_service_shares_the_secrets(rendered, env_file):
    values = env_values(env_file.read_text())
    for name in AIRFLOW_SERVICES:
        environment = rendered["services"][name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert environment["AIRFLOW__CORE__FERNET_KEY"] == values["AIRFLOW_FERNET_KEY"]
        assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == values["AIRFLOW_JWT_SECRET"]
        assert environment["AIRFLOW__API__SECRET_KEY"] == values["AIRFLOW_API_SECRET_KEY"]
        db_url = environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert db_url.endswith(f":{values['AIRFLOW_DB_PASSWORD']}@postgres/airflow")
        assert environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in environment


# ----- the file's shape -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_of_the_celery_layout_is_there(compose):
    services = compose["services"]
    assert set(services) >= CORE_SERVICES | DEMO_SERVICES
    for name in DEMO_SERVICES:
        assert services[name]["profiles"] == DEMO_PROFILES[name], name
    for name in CORE_SERVICES:
        assert "profiles" not in services[name], name


def test_long_running_services_have_health_checks_and_restart_policies(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
            continue
        assert service.get("restart") in ("always", "unless-stopped"), name
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no health check"
        assert check.get("interval") and check.get("retries"), name


def test_the_services_wait_for_what_they_need(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["redis"]["condition"] == "service_healthy", name
        assert needs["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == {
        "condition": "service_healthy"
    }
    # It waits for its server itself (SQL Server or PostgreSQL, whichever profile runs).
    assert "depends_on" not in services["picsweb-demo-init"]
    simulator_needs = services["onefile-simulator"]["depends_on"]
    assert simulator_needs["picsweb-demo-init"]["condition"] == "service_completed_successfully"
    trigger_needs = services["demo-trigger"]["depends_on"]
    assert trigger_needs["onefile-simulator"]["condition"] == "service_healthy"
    assert trigger_needs["airflow-scheduler"]["condition"] == "service_healthy"


def test_no_core_service_depends_on_a_demo_service(compose):
    for name in CORE_SERVICES:
        assert not set(compose["services"][name].get("depends_on", {})) & DEMO_SERVICES, name


def test_the_worker_scales(compose):
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker
    assert "ports" not in worker  # a host port would collide between replicas
    assert "hostname" not in worker
    assert worker["command"] == "celery worker"


def test_every_project_service_runs_the_image_built_from_the_dockerfile(compose):
    services = compose["services"]
    project = AIRFLOW_SERVICES | {"airflow-cli", "picsweb-demo-init", "onefile-simulator"}
    images = set()
    for name in project | {"demo-trigger"}:
        service = services[name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        images.add(service["image"])
    assert len(images) == 1  # one image, built once, run by all


def test_the_init_service_migrates_creates_the_admin_and_the_pool(compose):
    init = compose["services"]["airflow-init"]
    assert init["command"] == ["bash", "/opt/airflow/deploy/airflow-init.sh"]
    script = (REPO / "deploy" / "airflow-init.sh").read_text()
    assert "airflow db migrate" in script
    assert "airflow users create" in script and "--role Admin" in script
    assert 'airflow pools set onefile_api 1 "OneFile API rate limit"' in script


def test_the_demo_points_at_sql_server_2022_and_the_simulator(compose):
    services = compose["services"]
    sqlserver = services["sqlserver"]
    assert sqlserver["image"] == "mcr.microsoft.com/mssql/server:2022-latest"
    assert sqlserver["environment"]["ACCEPT_EULA"] == "Y"
    assert sqlserver["environment"]["MSSQL_SA_PASSWORD"].startswith("${MSSQL_SA_PASSWORD")
    simulator = services["onefile-simulator"]["command"]
    assert simulator[:3] == ["python", "/opt/airflow/deploy/picsweb_demo.py", "serve-onefile"]
    assert simulator[simulator.index("--host") + 1] == "0.0.0.0"
    port = simulator[simulator.index("--port") + 1]
    example = env_values(ENV_EXAMPLE.read_text())
    assert example["ONEFILE_API_URL"] == f"http://onefile-simulator:{port}/api/v2.1"
    assert example["PICSWEB_DB_HOST"] == "sqlserver"
    assert services["picsweb-demo-init"]["environment"]["DEMO_MSSQL_HOST"] == "sqlserver"


# ----- secrets --------------------------------------------------------------------------------
DEPLOYMENT_FILES = [
    COMPOSE,
    REPO / "Dockerfile",
    ENV_EXAMPLE,
    DEV_OVERRIDE,
    REPO / "deploy" / "airflow-init.sh",
]
_SECRET_NAME = re.compile(
    r"""(?ix) ["']? [a-z_]* (passw(or)?d|secret|token|fernet|api_key|secret_key) [a-z_]* ["']?
        \s* [:=] \s* (?P<value>[^\s,}]*)"""
)
_VARIABLE = re.compile(r"\$?\$\{[^}]*\}|\$\$?[A-Za-z_][A-Za-z0-9_]*")
_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s/]*)@")
_LONG_RANDOM = re.compile(r"(?<![A-Za-z0-9+/_.-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/_.-])")


def secret_findings(text: str) -> list[str]:
    """Lines that give a password, token, key or secret (or a URL's password) a value that is
    not a variable, or hold a long random-looking string."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        where = f"{number}: {line.strip()}"
        plain = _VARIABLE.sub("VAR", line)  # ${X}, ${X:?msg}, $${X} (expanded in the container)
        for match in _SECRET_NAME.finditer(plain):
            value = match["value"].strip("'\"")
            if value and not value.startswith(("VAR", "--")):
                found.append(f"a secret written in the file: {where}")
        for password in _URL_PASSWORD.findall(plain):
            if password not in ("", "VAR"):
                found.append(f"a password written in a URL: {where}")
        for token in _LONG_RANDOM.findall(plain):
            if "/" not in token and "_" not in token.strip("_"):
                found.append(f"looks like a key or token: {where}")
    return found


@pytest.mark.parametrize(
    "line",
    [
        "  MSSQL_SA_PASSWORD: Str0ng-Passw0rd",
        '  AIRFLOW__CORE__FERNET_KEY: "abc"',
        "AIRFLOW_JWT_SECRET=hunter2",
        '  AIRFLOW_CONN_X: \'{"conn_type": "http", "password": "t0ken"}\'',
        "  SQL_ALCHEMY_CONN: postgresql://airflow:airflow@postgres/airflow",
        "  X: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ],
)
def test_the_secret_scan_finds_written_secrets(line):
    assert secret_findings(line)


@pytest.mark.parametrize("path", DEPLOYMENT_FILES, ids=lambda p: p.name)
def test_no_secret_is_written_in_the_deployment_files(path):
    assert secret_findings(path.read_text()) == []


def test_env_example_names_every_secret_with_no_value(compose):
    example = env_values(ENV_EXAMPLE.read_text())
    assert example.keys() >= SECRETS
    assert {name: example[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    optional = set(re.findall(r"\$\{([A-Z0-9_]+):-", COMPOSE.read_text()))
    assert required <= example.keys(), required - example.keys()
    commented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    assert optional <= example.keys() | commented, optional - example.keys() - commented


def test_each_secret_says_how_to_make_it():
    text = ENV_EXAMPLE.read_text()
    for name in SECRETS - {"ONEFILE_CUSTOMER_TOKEN"}:
        block = text.split(f"\n{name}=")[0].rsplit("\n\n", 1)[-1]
        assert "python3 -c" in block, f"{name}: no recipe above it"
    assert "OneFile" in text.split("\nONEFILE_CUSTOMER_TOKEN=")[0].rsplit("\n\n", 1)[-1]


def test_the_generated_env_fills_every_secret_safely(env_file):
    values = env_values(env_file.read_text())
    for name in SECRETS:
        assert len(values[name]) >= 16, name
        assert not set(values[name]) & set("\"\\$'` #"), name  # JSON, URL and shell safe
    from cryptography.fernet import Fernet

    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # a valid key
    for name in ("MSSQL_SA_PASSWORD", "PICSWEB_DB_PASSWORD"):
        value = values[name]
        kinds = [any(c.isupper() for c in value), any(c.islower() for c in value)]
        kinds += [any(c.isdigit() for c in value), any(not c.isalnum() for c in value)]
        assert sum(kinds) >= 3, name  # SQL Server's password policy
    again = env_values(load("new_env").filled(ENV_EXAMPLE.read_text()))
    assert all(again[name] != values[name] for name in SECRETS)  # fresh every time


def test_the_connection_json_stays_valid_with_generated_secrets(rendered):
    environment = rendered["services"]["airflow-worker"]["environment"]
    for name in ("AIRFLOW_CONN_ONEFILE_API", "AIRFLOW_CONN_PICSWEB_DB"):
        assert json.loads(environment[name])["password"]


def test_docker_ignores_secrets_and_local_state():
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for entry in (".env", ".venv", ".git", ".airflow", "demo-data"):
        assert entry in ignored
    assert "!.env.example" in ignored
