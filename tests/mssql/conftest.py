"""The data-layer and end-to-end tests again, on a real SQL Server: ``make test-mssql`` with
``PICSWEB_TEST_MSSQL_URL=mssql+pymssql://sa:PASSWORD@HOST:1433/master`` (the demo profile's
SQL Server listens on localhost:1433). Without that URL they are collected and skipped.

The test modules here import the test functions of tests/data and tests/e2e, and this file
imports their folders' fixtures: only ``db_url`` and ``pg_url`` differ, each a fresh database
on the SQL Server (case-insensitive collation, as PICSWeb's), dropped after the test. Imported
tests that use no database ran already where they are defined and are left out here.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.data.conftest import empty_engine, engine  # noqa: F401  (fixtures, see below)
from tests.deploy.scripts import load
from tests.e2e.conftest import world  # noqa: F401  (a fixture, see below)

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
    server = sa.create_engine(sa.make_url(url).set(database="master"), isolation_level="AUTOCOMMIT")
    load("picsweb_demo").wait_for(server, timeout=60)
    yield server
    server.dispose()


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


# The fixtures of tests/conftest.py that give a database, all on SQL Server here ...
@pytest.fixture
def db_url(mssql_url: str) -> str:
    return mssql_url


@pytest.fixture
def pg_url(mssql_url: str) -> str:
    return mssql_url


# ... so the very fixtures of tests/data and tests/e2e imported above (tests/data's engines,
# tests/e2e's world), used here as they are, build their PICSWeb and the sync's tables on it.
