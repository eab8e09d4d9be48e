"""The throwaway PostgreSQL server the tests share (tests/support/postgres.py): what the
other tests rely on it for."""

from __future__ import annotations

import os
import pwd

import psutil
import pytest
import sqlalchemy as sa

from tests.support.postgres import SERVER_OS_USER


def _scalar(url: str, sql: str):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar_one()
    finally:
        engine.dispose()


def test_each_test_gets_its_own_empty_database(db_url):
    engine = sa.create_engine(db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (x INTEGER)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (41)"))
            assert conn.execute(sa.text("SELECT x + 1 FROM probe")).scalar_one() == 42
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("listen_addresses", "127.0.0.1"),
        ("server_encoding", "UTF8"),
    ],
)
def test_the_server_runs_with_the_fast_settings(pg_server, setting, value):
    assert _scalar(pg_server.url(), f"SHOW {setting}") == value


def test_the_server_never_runs_as_root(pg_server):
    """PostgreSQL refuses root: run as root, the tests' server runs as ``postgres``."""
    backend = psutil.Process(_scalar(pg_server.url(), "SELECT pg_backend_pid()"))
    expected = SERVER_OS_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert backend.username() == expected


def test_databases_are_created_replaced_copied_and_dropped(pg_server):
    first = pg_server.create_database("contract_probe")
    engine = sa.create_engine(first)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO probe VALUES (7), (8)")
    engine.dispose()

    copy = pg_server.create_database("contract_copy", template="contract_probe")
    assert _scalar(copy, "SELECT sum(x) FROM probe") == 15

    again = pg_server.create_database("contract_probe")
    assert again == first
    assert _scalar(again, "SELECT count(*) FROM pg_tables WHERE tablename = 'probe'") == 0

    held = sa.create_engine(copy)  # a session left open does not stop the drop
    with held.connect() as conn:
        pg_server.drop_database("contract_copy")
        pg_server.drop_database("contract_copy")  # gone already: nothing to do
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql("SELECT 1")
    held.dispose()
    left = (
        "SELECT array_agg(datname) FROM pg_database"
        " WHERE datname IN ('contract_probe', 'contract_copy')"
    )
    assert _scalar(pg_server.url(), left) == ["contract_probe"]


def test_the_plugins_client_fixture_gets_a_fresh_database_on_the_same_server(postgresql, pg_server):
    assert postgresql.info.port == pg_server.port
    with postgresql.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (0,)
