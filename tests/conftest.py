"""Shared fixtures: a throwaway PostgreSQL server, fresh databases, an isolated Airflow home."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its configuration at import time: give the tests their own throwaway
# Airflow home (never the demo's .airflow/) before anything imports Airflow.
_REPO = Path(__file__).resolve().parents[1]
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="picsweb-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(_REPO / "plugins")
# Retried tasks run again at once inside dag.test() instead of waiting five minutes.
os.environ["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "0"

from pytest_postgresql.executors import PostgreSQLExecutor  # noqa: E402

from tests.support.postgres import PgServer, postgres_server  # noqa: E402

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def postgresql_proc() -> Iterator[PostgreSQLExecutor]:
    """The throwaway PostgreSQL server, started once per session (tests/support/postgres.py).

    Replaces pytest-postgresql's fixture of this name, which cannot start a server as root,
    and makes the template its ``postgresql`` fixture clones, so that one works too."""
    with postgres_server() as server:
        server.create_database(server.executor.template_dbname)
        yield server.executor


@pytest.fixture(scope="session")
def pg_server(postgresql_proc: PostgreSQLExecutor) -> PgServer:
    return PgServer(postgresql_proc)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for one test, dropped after it."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'picsweb.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str:
    """Runs a test once on SQLite and once on the real PostgreSQL server."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated Airflow metadata DB (SQLite) in the tests' own Airflow home."""
    home = os.environ["AIRFLOW_HOME"]
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return home
