"""Without a SQL Server the tests here only skip, so their wiring is proved from pytest's
plan: given a URL, every imported test would get its databases from ``mssql_url`` (a fresh
database on that server), and none from the PostgreSQL server or SQLite of the other folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.mssql.conftest import URL_VARIABLE

HERE = Path(__file__).resolve().parent


def test_with_a_url_every_database_is_a_fresh_one_on_the_sql_server():
    env = {**os.environ, URL_VARIABLE: "mssql+pymssql://sa:unused@nowhere:1433/master"}
    modules = [
        "test_data_bounded_lookups.py",
        "test_data_exact_comparison.py",
        "test_data_sqlframes.py",
        "test_e2e_failures.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--setup-plan", "-q", "-p", "no:cacheprovider"]
        + [str(HERE / m) for m in modules],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE.parents[1],
        timeout=300,
    )
    plan = done.stdout
    assert done.returncode == 0, plan[-3000:] + done.stderr[-3000:]
    assert "SKIPPED" not in plan
    assert "mssql_url (fixtures used: mssql_server)" in plan
    assert "pg_url (fixtures used: mssql_url)" in plan
    assert "db_url (fixtures used: mssql_url)" in plan
    assert "empty_engine (fixtures used: db_url)" in plan
    assert "world (fixtures used: airflow_db, monkeypatch, pg_url)" in plan
    assert "ci_engine (fixtures used: mssql_url)" in plan
    for elsewhere in ("pg_server", "sqlite_url"):
        assert elsewhere not in plan
    tests = [line for line in plan.splitlines() if "::test_" in line]
    assert len(tests) > 20
    assert all("mssql_url" in line for line in tests), [t for t in tests if "mssql_url" not in t]
