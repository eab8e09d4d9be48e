"""The sync's own tables (``sync_*``) where it keeps them: each either exists with the
columns the sync writes or can be created (the sync creates missing tables itself, never
alters one), and the login may read, insert, update and delete in them.

Checked in the staging database and, when staging is elsewhere, in the PICSWeb database
for the work tables and audit kept there; read-only (:mod:`.read_only`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.permissions import (
    create_statements,
    holds,
    qualified_name,
    sqlite_file_check,
)
from picsweb_sync.preflight.read_only import connected_check, error_text, read_only
from picsweb_sync.preflight.schema import reflect, table_checks
from picsweb_sync.storage import project_tables

OWN_DEFINITIONS = "include/picsweb_sync/storage/project_tables/"


def own_tables_checks(
    engine: Engine,
    description: str,
    tables: tuple[sa.Table, ...] | None = None,
    *,
    prefix: str = "staging",
    title: str = "staging database (the sync's own tables)",
) -> list[Check]:
    """The sync's ``sync_*`` tables where it keeps them: each either exists with the
    columns the sync writes, or can be created (the sync creates missing tables itself,
    never alters one), and the connection may read, insert, update and delete in them."""
    wanted = tables if tables is not None else tuple(project_tables.project_metadata.sorted_tables)
    try:
        with read_only(engine) as conn:
            checks = [connected_check(f"{prefix}.connect", title, conn, description)]
            found = reflect(conn, wanted)
            missing = [t.name for t in wanted if found[t.name] is None]
            present = [t for t in wanted if found[t.name] is not None]
            for table in present:
                checks += [
                    c
                    for c in table_checks(
                        conn,
                        table,
                        found[table.name],
                        prefix=prefix,
                        where=OWN_DEFINITIONS,
                        written=frozenset(c.name for c in table.columns),
                    )
                    if c.level is not Level.OK
                ]
            checks.append(_own_tables_check(conn, prefix, missing, present))
    except SQLAlchemyError as exc:
        return [
            Check(
                f"{prefix}.connect",
                Level.BLOCKING,
                title,
                f"{description}: {error_text(exc)}",
                "check the connection's host, port, database, login and password",
            )
        ]
    return checks


def _own_tables_check(
    conn: Connection, prefix: str, missing: list[str], present: list[sa.Table]
) -> Check:
    dialect = conn.dialect.name
    problems: list[str] = []
    if dialect == "sqlite":
        file_check = sqlite_file_check(conn, f"{prefix}.tables", True)
        if file_check.level is Level.BLOCKING:
            problems.append(file_check.finding)
    elif dialect in ("postgresql", "mssql"):
        if missing:
            for what, statement in create_statements(dialect):
                if not conn.execute(statement).scalar():
                    problems.append(f"no {what} to create the {len(missing)} missing tables")
        for table in present:
            qualified = qualified_name(conn, table.name)
            lacking = [
                p
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE")
                if not holds(conn, qualified, p, ())
            ]
            if lacking:
                problems.append(f"{table.name}: no {', '.join(lacking)}")
    state = f"{len(present)} of {len(present) + len(missing)} exist" + (
        f"; the first run creates {', '.join(missing)}" if missing else ""
    )
    if problems:
        return Check(
            f"{prefix}.tables",
            Level.BLOCKING,
            "the sync's own tables",
            f"{state}; {'; '.join(problems)}",
            "let the connection's login create tables in its default schema (or create "
            "them once as an owner: they are in include/picsweb_sync/storage/project_tables/), and read, insert, "
            "update and delete in them",
            {"missing": missing, "problems": problems},
        )
    return Check(
        f"{prefix}.tables",
        Level.OK,
        "the sync's own tables",
        state + ("; the login may create them" if missing and dialect != "sqlite" else ""),
        details={"missing": missing},
    )
