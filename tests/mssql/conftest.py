"""The data-layer and end-to-end tests again, on a real SQL Server: ``make test-mssql`` with
``PICSWEB_TEST_MSSQL_URL=mssql+pymssql://sa:PASSWORD@HOST:1433/master`` (the demo profile's
SQL Server listens on localhost:1433). Without that URL they are collected and skipped.

The test modules here import the test functions of tests/data and tests/e2e; the fixtures
below give them what tests/conftest.py, tests/data/conftest.py and tests/e2e/conftest.py give
them there, with each database a fresh one on the SQL Server (case-insensitive collation, as
PICSWeb's), dropped after the test. Imported tests that use no database ran already where
they are defined and are left out here.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
import sqlalchemy as sa

from onefile_simulator import OneFileSimulator, generate_dataset
from picsweb_sync.db import engine_for_url
from picsweb_sync.demo import connection_env
from picsweb_sync.demo_db import create_picsweb_tables, load_picsweb_rows
from picsweb_sync.project_tables import ensure_project_tables
from tests.data.conftest import picsweb_rows
from tests.deploy.scripts import load
from tests.e2e.conftest import FAST_HOOK, World

URL_VARIABLE = "PICSWEB_TEST_MSSQL_URL"
COLLATION_VARIABLE = "PICSWEB_TEST_MSSQL_COLLATION"
KEEP_VARIABLE = "PICSWEB_TEST_MSSQL_KEEP"
SKIP_REASON = (
    f"{URL_VARIABLE} is not set: give a SQL Server to run these, e.g. "
    f"{URL_VARIABLE}=mssql+pymssql://sa:PASSWORD@localhost:1433/master make test-mssql"
)
HERE = Path(__file__).resolve().parent
_databases = itertools.count(1)


def server_url() -> str | None:
    return os.environ.get(URL_VARIABLE) or None


def database_name(n: int) -> str:
    return f"picsweb_test_{os.getpid()}_{n}"


def pytest_collection_modifyitems(config, items):
    """Only for the items of this folder: leave out imported tests that use no database (they
    ran where they are defined), and skip the rest when no SQL Server is given."""
    left_out, kept = [], []
    for item in items:
        if HERE not in Path(item.path).resolve().parents:
            kept.append(item)
            continue
        uses_server = "mssql_url" in getattr(item, "fixturenames", ())
        function = getattr(item, "function", None)
        imported = function is not None and not function.__module__.startswith("tests.mssql")
        if imported and not uses_server:
            left_out.append(item)
            continue
        if uses_server and not server_url():
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="session")
def mssql_server() -> Iterator[sa.Engine]:
    """The SQL Server of ``PICSWEB_TEST_MSSQL_URL`` (its ``master``), in autocommit."""
    url = server_url()
    if not url:
        pytest.skip(SKIP_REASON)
    engine = sa.create_engine(sa.make_url(url).set(database="master"), isolation_level="AUTOCOMMIT")
    load("picsweb_demo").wait_for(engine, timeout=60)
    yield engine
    engine.dispose()


@pytest.fixture
def mssql_url(mssql_server: sa.Engine) -> Iterator[str]:
    """URL of a fresh, empty database on the SQL Server for one test (dropped after it, unless
    ``PICSWEB_TEST_MSSQL_KEEP`` is set)."""
    demo = load("picsweb_demo")
    name = database_name(next(_databases))
    collation = os.environ.get(COLLATION_VARIABLE) or demo.DEFAULT_COLLATION
    with mssql_server.connect() as conn:
        conn.exec_driver_sql(demo.drop_database_sql(name))
        conn.exec_driver_sql(demo.create_database_sql(name, collation))
    yield sa.make_url(server_url()).set(database=name).render_as_string(hide_password=False)
    if not os.environ.get(KEEP_VARIABLE):
        with mssql_server.connect() as conn:
            conn.exec_driver_sql(demo.drop_database_sql(name))


# tests/conftest.py's database fixtures, all on SQL Server here.
@pytest.fixture
def db_url(mssql_url: str) -> str:
    return mssql_url


@pytest.fixture
def pg_url(mssql_url: str) -> str:
    return mssql_url


# tests/data/conftest.py's.
@pytest.fixture
def empty_engine(mssql_url: str) -> Iterator[sa.Engine]:
    engine = engine_for_url(mssql_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: sa.Engine) -> sa.Engine:
    create_picsweb_tables(empty_engine)
    load_picsweb_rows(empty_engine, picsweb_rows())
    ensure_project_tables(empty_engine)
    return empty_engine


# tests/e2e/conftest.py's world, its PICSWeb on SQL Server.
@pytest.fixture
def world(mssql_url, airflow_db, monkeypatch) -> Iterator[World]:
    dataset = generate_dataset(seed=11, organisations=2, learners=12)
    original = copy.deepcopy(dataset)
    engine = sa.create_engine(mssql_url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, dataset.picsweb)
    sim = OneFileSimulator(dataset.onefile)
    sim.start()
    env = connection_env(sim.base_url, sim.customer_token, mssql_url, FAST_HOOK)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield World(
        dataset=dataset,
        original=original,
        picsweb=engine,
        sim=sim,
        when=datetime.combine(dataset.today, time(2, 0), tzinfo=UTC),
    )
    sim.stop()
    engine.dispose()
