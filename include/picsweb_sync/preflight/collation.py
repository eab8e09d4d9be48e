"""How the database compares the text columns the sync uses: exactly (binary,
deterministic, case-sensitive) or not, read from PostgreSQL's, SQL Server's or SQLite's
catalog, and what that means for the sync (:data:`EXACT_COMPARISON_ADVICE`).

Catalog reads only, on the checks' read-only connection (:mod:`.read_only`).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.schema import FoundTable, kind_of
from picsweb_sync.storage import picsweb_tables as pw

EXACT_COMPARISON_ADVICE = (
    "nothing blocks the sync: it never relies on the database's collation. Its merge "
    "compares in Python, and its guarded writes compare through ExactText (SQL Server: "
    "COLLATE Latin1_General_100_BIN2 with a sentinel, so trailing spaces count; "
    'PostgreSQL: COLLATE "C"), so ab1 and AB1 are different values to it. What it means for '
    "you: a OneFile value that differs from PICSWeb's only in case (or trailing spaces) is "
    "written, OneFile winning, and audited, although PICSWeb's own screens and queries show "
    "the two as equal; a PICSWeb edit that only changes the case between a run's merge and "
    "its load is reported as a conflict, not overwritten. Qualification codes and officer "
    "emails are matched ignoring case on purpose, whatever the collation"
)


def text_columns() -> list[tuple[str, str]]:
    """(table, column) of every text column of the PICSWeb definitions."""
    return [
        (table.name, column.name)
        for table in pw.metadata.sorted_tables
        for column in table.columns
        if kind_of(column.type) == "text"
    ]


def mssql_collation_statements(tables: list[str]) -> tuple[sa.Select, sa.Select]:
    """SQL Server: the database's default collation, and each column's."""
    columns = sa.table(
        "COLUMNS",
        sa.column("TABLE_SCHEMA"),
        sa.column("TABLE_NAME"),
        sa.column("COLUMN_NAME"),
        sa.column("COLLATION_NAME"),
        schema="INFORMATION_SCHEMA",
    )
    database = sa.select(sa.func.DATABASEPROPERTYEX(sa.func.DB_NAME(), "Collation"))
    per_column = sa.select(
        columns.c.TABLE_NAME, columns.c.COLUMN_NAME, columns.c.COLLATION_NAME
    ).where(
        sa.func.SCHEMA_NAME() == columns.c.TABLE_SCHEMA,
        columns.c.TABLE_NAME.in_(tables),
        columns.c.COLLATION_NAME.is_not(None),
    )
    return database, per_column


_PG_COLUMN_COLLATIONS = sa.text(
    "SELECT c.relname, a.attname, co.collname, co.collisdeterministic "
    "FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation "
    "WHERE n.nspname = current_schema() AND c.relname IN :tables "
    "AND a.attnum > 0 AND NOT a.attisdropped"
).bindparams(sa.bindparam("tables", expanding=True))
_PG_DATABASE_COLLATION = sa.text(
    "SELECT datcollate FROM pg_catalog.pg_database WHERE datname = current_database()"
)


def collation_checks(conn: Connection, found: dict[str, FoundTable | None]) -> list[Check]:
    """How the database compares the text columns the sync uses: case-sensitively and
    exactly (binary, deterministic), or not. See :data:`EXACT_COMPARISON_ADVICE`."""
    wanted = [(t, c) for t, c in text_columns() if found.get(t) and c in found[t].columns]
    tables = sorted({t for t, _ in wanted})
    dialect = conn.dialect.name
    if not tables:
        return []
    loose: list[str] = []
    if dialect == "postgresql":
        default = conn.execute(_PG_DATABASE_COLLATION).scalar_one()
        rows = conn.execute(_PG_COLUMN_COLLATIONS, {"tables": tables}).all()
        names = {(t, c): (name, deterministic) for t, c, name, deterministic in rows}
        loose = [
            f"{t}.{c} ({names[(t, c)][0]}, nondeterministic)"
            for t, c in wanted
            if (t, c) in names and not names[(t, c)][1]
        ]
        basis = f"database default {default}"
    elif dialect == "mssql":
        database, per_column = mssql_collation_statements(tables)
        default = conn.execute(database).scalar_one()
        rows = conn.execute(per_column).all()
        names = {(t, c): name for t, c, name in rows}
        loose = [
            f"{t}.{c} ({names[(t, c)]})"
            for t, c in wanted
            if (t, c) in names and _mssql_loose(names[(t, c)])
        ]
        basis = f"database default {default}" + (
            ", case-insensitive" if _mssql_loose(str(default)) else ""
        )
    elif dialect == "sqlite":
        master = sa.table("sqlite_master", sa.column("name"), sa.column("sql"))
        rows = conn.execute(sa.select(master.c.name, master.c.sql).where(master.c.name.in_(tables)))
        loose = [
            f"{name} (COLLATE {kind})"
            for name, sql in rows
            for kind in sorted(set(re.findall(r"COLLATE\s+(NOCASE|RTRIM)", sql or "", re.I)))
        ]
        basis = "SQLite compares text as BINARY unless a column says otherwise"
    else:
        return [
            Check(
                "picsweb.collation",
                Level.WARNING,
                "text collation",
                f"not checked on {dialect}",
                EXACT_COMPARISON_ADVICE,
            )
        ]
    if loose:
        return [
            Check(
                "picsweb.collation",
                Level.WARNING,
                "text collation",
                f"case-insensitive or nondeterministic: {', '.join(loose)}; {basis}",
                EXACT_COMPARISON_ADVICE,
                {"columns": loose, "basis": basis},
            )
        ]
    return [
        Check(
            "picsweb.collation",
            Level.OK,
            "text collation",
            f"the {len(wanted)} text columns the sync uses compare exactly ({basis})",
            "nothing to do: the sync compares exactly whatever the collation",
            {"basis": basis},
        )
    ]


def _mssql_loose(collation: str) -> bool:
    """A SQL Server collation that ignores case (``..._CI_AS``); binary ones never do."""
    upper = collation.upper()
    return "_BIN" not in upper and ("_CI_" in upper or upper.endswith("_CI"))
