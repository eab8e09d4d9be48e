"""Shared fixtures: a throwaway PostgreSQL server, fresh databases, an isolated Airflow home."""

from __future__ import annotations

import itertools
import os
import tempfile

import pytest

# Airflow reads its configuration at import time: isolate it before anything imports it.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="picsweb-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

from tests.support.pgserver import PgServer, start_pg_server  # noqa: E402

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    server = start_pg_server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """URL of a fresh, empty PostgreSQL database for one test."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'picsweb.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str:
    """Runs a test once on SQLite and once on the real PostgreSQL server."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")
