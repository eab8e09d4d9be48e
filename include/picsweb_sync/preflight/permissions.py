"""What the connection's login may do: the privileges the sync needs on each PICSWeb table
(read everywhere, update the columns it writes, insert reviews) and on its own tables, as
PostgreSQL's ``has_*_privilege`` and SQL Server's ``HAS_PERMS_BY_NAME`` answer, or, on
SQLite (no grants), whether the file may be written.

Catalog reads only, on the checks' read-only connection (:mod:`.read_only`).
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.schema import INSERTED, WRITTEN, FoundTable

WRITE_PRIVILEGES = ("UPDATE", "INSERT", "DELETE")


def qualified_name(conn: Connection, table: str) -> str:
    """``schema.table`` as the database quotes it, in the connection's default schema."""
    schema = sa.inspect(conn).default_schema_name
    return conn.dialect.identifier_preparer.format_table(sa.table(table, schema=schema))


def privilege_statement(
    dialect: str, qualified: str, privilege: str, column: str | None = None
) -> sa.Select | None:
    """Whether the connection's user holds ``privilege`` on a table (or one column of it):
    PostgreSQL's ``has_table_privilege``/``has_column_privilege``, SQL Server's
    ``HAS_PERMS_BY_NAME``; ``None`` where the database has no permissions (SQLite)."""
    f = sa.func
    if dialect == "postgresql":
        if column is None:
            return sa.select(f.has_table_privilege(qualified, privilege))
        return sa.select(f.has_column_privilege(qualified, column, privilege))
    if dialect == "mssql":
        if column is None:
            return sa.select(f.HAS_PERMS_BY_NAME(qualified, "OBJECT", privilege))
        return sa.select(f.HAS_PERMS_BY_NAME(qualified, "OBJECT", privilege, column, "COLUMN"))
    return None


def create_statements(dialect: str) -> list[tuple[str, sa.Select]]:
    """What creating a table in the default schema takes: PostgreSQL ``CREATE`` on the
    schema; SQL Server ``CREATE TABLE`` in the database and ``ALTER`` on the schema."""
    f = sa.func
    if dialect == "postgresql":
        return [
            (
                "CREATE on the schema",
                sa.select(f.has_schema_privilege(f.current_schema(), "CREATE")),
            )
        ]
    if dialect == "mssql":
        return [
            ("CREATE TABLE", sa.select(f.HAS_PERMS_BY_NAME(sa.null(), "DATABASE", "CREATE TABLE"))),
            (
                "ALTER on the schema",
                sa.select(f.HAS_PERMS_BY_NAME(f.SCHEMA_NAME(), "SCHEMA", "ALTER")),
            ),
        ]
    return []


def holds(conn: Connection, qualified: str, privilege: str, columns: tuple[str, ...]) -> bool:
    """The privilege on the table, or else on each of ``columns`` (column-level grants)."""
    dialect = conn.dialect.name
    if conn.execute(privilege_statement(dialect, qualified, privilege)).scalar():
        return True
    if not columns:
        return False
    return all(
        conn.execute(privilege_statement(dialect, qualified, privilege, column)).scalar()
        for column in columns
    )


def needed_privileges(table: str) -> dict[str, tuple[str, ...]]:
    """privilege -> the columns it is needed on (``()``: the whole table)."""
    needed: dict[str, tuple[str, ...]] = {"SELECT": ()}
    if table in WRITTEN:
        needed["UPDATE"] = tuple(sorted(WRITTEN[table]))
    if table in INSERTED:
        needed["INSERT"] = INSERTED[table]
    return needed


def grant_checks(
    conn: Connection, found: dict[str, FoundTable | None], *, writes: bool = True
) -> list[Check]:
    """Read on every PICSWeb table, update where the sync writes, insert into ``review``."""
    if conn.dialect.name == "sqlite":
        return [sqlite_file_check(conn, "picsweb.grants", writes)]
    if conn.dialect.name not in ("postgresql", "mssql"):
        return []
    checks = []
    for name, table in found.items():
        if table is None:
            continue
        qualified = qualified_name(conn, name)
        needed = needed_privileges(name)
        missing = [p for p, cols in needed.items() if not holds(conn, qualified, p, cols)]
        held = [p for p in needed if p not in missing]
        blocking = [p for p in missing if writes or p not in WRITE_PRIVILEGES]
        level = Level.BLOCKING if blocking else Level.WARNING if missing else Level.OK
        finding = f"{', '.join(held) or 'nothing'} held"
        if missing:
            finding += f"; missing {', '.join(missing)}"
            if not writes and not blocking:
                finding += " (a dry run does not write)"
        checks.append(
            Check(
                f"picsweb.grants.{name}",
                level,
                f"permissions on {name}",
                finding,
                "nothing to do"
                if not missing
                else f"GRANT {', '.join(missing)} ON {qualified} TO the connection's login "
                "(column-level grants on the columns the sync writes are enough)",
                {"needed": list(needed), "missing": missing},
            )
        )
    return checks


def sqlite_file_check(conn: Connection, check_id: str, writes: bool) -> Check:
    """SQLite has no permissions: the file (and its folder, for the journal) must be
    writable by whoever runs the tasks."""
    path = conn.engine.url.database or ""
    writable = (
        bool(path)
        and os.access(path, os.W_OK)
        and os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    )
    level = Level.OK if writable or not writes else Level.BLOCKING
    return Check(
        check_id,
        level,
        "permissions (SQLite file)",
        f"{path} is {'writable' if writable else 'not writable'} here (SQLite has no grants)",
        "nothing to do"
        if writable
        else "let the user running the tasks write the file and its folder",
    )
