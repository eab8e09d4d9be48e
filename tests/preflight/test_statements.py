"""The preflight's catalog statements for SQL Server, compiled with the mssql dialect (no SQL
Server runs here), and its reading of SQL Server collation names."""

from __future__ import annotations

import pytest

from picsweb_sync.preflight import collation, permissions
from picsweb_sync.preflight.collation import _mssql_loose
from tests.data.test_mssql_compile import NOT_TSQL, tsql


def _sql(statement) -> str:
    text = " ".join(tsql(statement).split())
    assert not [token for token in NOT_TSQL if token in text.upper()], text
    return text


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (None, "SELECT HAS_PERMS_BY_NAME('dbo.review', 'OBJECT', 'UPDATE') AS"),
        (
            "attended",
            "SELECT HAS_PERMS_BY_NAME('dbo.review', 'OBJECT', 'UPDATE', 'attended', 'COLUMN') AS",
        ),
    ],
)
def test_permissions_compile_as_has_perms_by_name(column, expected):
    statement = permissions.privilege_statement("mssql", "dbo.review", "UPDATE", column)
    assert _sql(statement).startswith(expected)


def test_creating_tables_needs_create_table_and_alter_on_the_schema():
    found = {what: _sql(statement) for what, statement in permissions.create_statements("mssql")}
    assert found["CREATE TABLE"].startswith(
        "SELECT HAS_PERMS_BY_NAME(NULL, 'DATABASE', 'CREATE TABLE')"
    )
    assert found["ALTER on the schema"].startswith(
        "SELECT HAS_PERMS_BY_NAME(SCHEMA_NAME(), 'SCHEMA', 'ALTER')"
    )


def test_collations_are_read_from_the_database_and_information_schema():
    database, per_column = collation.mssql_collation_statements(["review", "trainee"])
    assert _sql(database).startswith("SELECT DATABASEPROPERTYEX(DB_NAME(), 'Collation')")
    text = _sql(per_column)
    assert "FROM [INFORMATION_SCHEMA].[COLUMNS]" in text
    assert "[INFORMATION_SCHEMA].[COLUMNS].[TABLE_NAME] IN ('review', 'trainee')" in text
    assert "SCHEMA_NAME() = [INFORMATION_SCHEMA].[COLUMNS].[TABLE_SCHEMA]" in text


def test_sqlite_has_no_permission_statements():
    assert permissions.privilege_statement("sqlite", "main.review", "UPDATE") is None
    assert permissions.create_statements("sqlite") == []


@pytest.mark.parametrize(
    ("collation", "ignores_case"),
    [
        ("SQL_Latin1_General_CP1_CI_AS", True),  # SQL Server's usual default
        ("Latin1_General_100_CI_AS_SC_UTF8", True),
        ("Latin1_General_CI", True),
        ("Latin1_General_CS_AS", False),
        ("Latin1_General_100_BIN2", False),  # what ExactText compares with
        ("Latin1_General_BIN", False),
    ],
)
def test_sql_server_collation_names_say_whether_case_is_ignored(collation, ignores_case):
    assert _mssql_loose(collation) is ignores_case
