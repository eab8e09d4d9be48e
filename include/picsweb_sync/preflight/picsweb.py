"""The database checks: PICSWeb's tables, settings, collation and permissions, the sync's
own tables, and what a first run would touch, all read-only.

Read-only for real, not by promise: every check runs in one transaction that is rolled
back, declared ``READ ONLY`` on PostgreSQL (which then refuses any write), and issues only
``SELECT`` statements and catalog reads (SQLAlchemy's inspector; PostgreSQL's
``has_table_privilege`` and friends; SQL Server's ``HAS_PERMS_BY_NAME`` and
``INFORMATION_SCHEMA``). Every statement also compiles for SQL Server
(tests/preflight/test_statements.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.schema import (
    INSERTED,
    WRITTEN,
    FoundTable,
    kind_of,
    reflect,
    table_checks,
)
from picsweb_sync.rules import reviews as review_rules
from picsweb_sync.run.settings import (
    SettingsError,
    SyncSettings,
    parse_organisation_ids,
    parse_settings,
)
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables
from picsweb_sync.storage.sqlframes import read_frame

PICSWEB_DEFINITIONS = "include/picsweb_sync/storage/picsweb_tables.py"
OWN_DEFINITIONS = "include/picsweb_sync/storage/project_tables/"
WRITE_PRIVILEGES = ("UPDATE", "INSERT", "DELETE")


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is always rolled back; on PostgreSQL declared
    ``READ ONLY`` first, so the server itself refuses any write."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            yield conn
        finally:
            transaction.rollback()


def error_text(exc: BaseException) -> str:
    """A database error's own first line (the driver's message, not SQLAlchemy's wrapping
    with the statement and a link)."""
    original = getattr(exc, "orig", None) or exc
    lines = [line for line in str(original).strip().splitlines() if line.strip()]
    return f"{type(original).__name__}: {lines[0] if lines else ''}"


# ----- what the checks found, for later checks ------------------------------------------------
@dataclass
class PicswebFacts:
    """What the PICSWeb checks read, for the first-run counts: the tables that fit, the
    settings, and the frames the rules work on."""

    fits: set[str] = field(default_factory=set)
    settings: SyncSettings | None = None
    organisation_ids: tuple[int, ...] = ()
    environment: str | None = None
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)


# ----- PICSWeb ------------------------------------------------------------------------------
def picsweb_checks(
    engine: Engine, description: str, *, writes: bool = True, read_frames: bool = False
) -> tuple[list[Check], PicswebFacts]:
    """Connection, tables, settings, collation and permissions of the PICSWeb database.

    ``writes=False`` (a dry run) judges what the sync only writes as a warning, not as
    blocking; ``read_frames`` also reads the tables the first-run counts need.
    """
    facts = PicswebFacts()
    try:
        with read_only(engine) as conn:
            checks = [_connected("picsweb.connect", "PICSWeb database", conn, description)]
            tables = pw.metadata.sorted_tables
            found = reflect(conn, tables)
            for table in tables:
                table_level = table_checks(
                    conn,
                    table,
                    found[table.name],
                    prefix="picsweb",
                    where=PICSWEB_DEFINITIONS,
                    written=WRITTEN.get(table.name, frozenset()) if writes else frozenset(),
                    inserted=table.name in INSERTED and writes,
                )
                checks += table_level
                if all(c.level is not Level.BLOCKING for c in table_level):
                    facts.fits.add(table.name)
            checks += settings_checks(conn, facts)
            checks += collation_checks(conn, found)
            checks += grant_checks(conn, found, writes=writes)
            if read_frames:
                facts.frames = _frames(conn, facts.fits)
    except SQLAlchemyError as exc:
        return [
            Check(
                "picsweb.connect",
                Level.BLOCKING,
                "PICSWeb database",
                f"{description}: {error_text(exc)}",
                "check the connection's host, port, database, login and password, and that "
                "this machine may reach the server",
            )
        ], facts
    return checks, facts


def _connected(check_id: str, title: str, conn: Connection, description: str) -> Check:
    version = ".".join(str(part) for part in (conn.dialect.server_version_info or ())[:2])
    return Check(
        check_id,
        Level.OK,
        title,
        f"{description}; {conn.dialect.name} {version}".rstrip(),
        details={"dialect": conn.dialect.name, "version": version},
    )


# ----- settings -----------------------------------------------------------------------------
def settings_checks(conn: Connection, facts: PicswebFacts) -> list[Check]:
    """The OneFile Settings row: present once, valid (``parse_settings``, as ``start_run``
    reads it), and its organisation IDs."""
    if "onefile_settings" not in facts.fits:
        return [
            Check(
                "picsweb.settings",
                Level.WARNING,
                "OneFile Settings row",
                "not read: the table onefile_settings does not fit (see above)",
                "fix the table first, then run the preflight again",
            )
        ]
    rows = conn.execute(sa.select(pw.onefile_settings)).mappings().all()
    if len(rows) != 1:
        return [
            Check(
                "picsweb.settings",
                Level.BLOCKING,
                "OneFile Settings row",
                f"onefile_settings holds {len(rows)} rows; the sync needs exactly one",
                "fill in PICSWeb's OneFile Settings screen once (one row, settings_id 1)",
                {"rows": len(rows)},
            )
        ]
    row = rows[0]
    facts.environment = row["environment"]
    checks = [_organisations_check(row["organisation_ids"], facts)]
    try:
        settings = parse_settings(row)
    except SettingsError as exc:
        checks.insert(
            0,
            Check(
                "picsweb.settings",
                Level.BLOCKING,
                "OneFile Settings row",
                str(exc),
                "correct it on PICSWeb's OneFile Settings screen: every run stops at "
                "start_run until it is valid",
            ),
        )
        return checks
    facts.settings = settings
    shown = (
        f"integration {'on' if settings.integration_enabled else 'off'}, environment "
        f"{settings.environment}, upload review data "
        f"{'on' if settings.upload_review_data else 'off'}, download review data "
        f"{'on' if settings.download_review_data else 'off'}, visit type "
        f"{settings.visit_type} (VisitTypeID {settings.visit_type_id})"
    )
    if not settings.integration_enabled:
        check = Check(
            "picsweb.settings",
            Level.WARNING,
            "OneFile Settings row",
            f"valid; {shown}: every run ends at once, syncing nothing",
            "switch the integration on in PICSWeb's OneFile Settings when the team is ready",
        )
    else:
        check = Check("picsweb.settings", Level.OK, "OneFile Settings row", f"valid; {shown}")
    checks.insert(0, check)
    return checks


def _organisations_check(text: Any, facts: PicswebFacts) -> Check:
    try:
        ids = parse_organisation_ids(text)
    except SettingsError as exc:
        return Check(
            "picsweb.settings.organisation_ids",
            Level.BLOCKING,
            "organisation IDs",
            str(exc),
            "list the OneFile organisation (centre) IDs to sync, comma-separated, e.g. "
            "'5740, 5741'",
        )
    facts.organisation_ids = ids
    if not ids:
        return Check(
            "picsweb.settings.organisation_ids",
            Level.WARNING,
            "organisation IDs",
            "blank: no organisation would be synced",
            "list the OneFile organisation (centre) IDs to sync, comma-separated",
        )
    return Check(
        "picsweb.settings.organisation_ids",
        Level.OK,
        "organisation IDs",
        ", ".join(str(i) for i in ids),
        details={"organisation_ids": list(ids)},
    )


# ----- collation ----------------------------------------------------------------------------
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


# ----- permissions --------------------------------------------------------------------------
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


def _holds(conn: Connection, qualified: str, privilege: str, columns: tuple[str, ...]) -> bool:
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
        return [_sqlite_file_check(conn, "picsweb.grants", writes)]
    if conn.dialect.name not in ("postgresql", "mssql"):
        return []
    checks = []
    for name, table in found.items():
        if table is None:
            continue
        qualified = qualified_name(conn, name)
        needed = needed_privileges(name)
        missing = [p for p, cols in needed.items() if not _holds(conn, qualified, p, cols)]
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


def _sqlite_file_check(conn: Connection, check_id: str, writes: bool) -> Check:
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


# ----- the sync's own tables -----------------------------------------------------------------
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
            checks = [_connected(f"{prefix}.connect", title, conn, description)]
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
        file_check = _sqlite_file_check(conn, f"{prefix}.tables", True)
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
                if not _holds(conn, qualified, p, ())
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


# ----- what a first run would touch ------------------------------------------------------------
def _frames(conn: Connection, fits: set[str]) -> dict[str, pd.DataFrame]:
    """The rows the merges read, as they read them (only tables that fit)."""
    frames: dict[str, pd.DataFrame] = {}
    review = pw.review
    statements = {
        "trainee": sa.select(pw.trainee),
        "trainee_qualification": sa.select(pw.trainee_qualification),
        "officer": sa.select(pw.officer),
        # plan_review_uploads reads the reviews not yet in OneFile, the same way
        "review": sa.select(review).where(review.c.onefile_system_id.is_(None)),
    }
    for name, statement in statements.items():
        if name in fits:
            frames[name] = read_frame(conn, statement)
    return frames


def upload_counts(frames: dict[str, pd.DataFrame]) -> dict[str, int] | None:
    """Rule 5 over PICSWeb as it is: how many reviews are eligible for upload, and how many
    of those have no officer with a OneFile ID (rejects every run until fixed), by the
    rule's own functions."""
    if not {"review", "trainee", "officer"} <= set(frames):
        return None
    candidates = frames["review"].merge(
        frames["trainee"][["trainee_id", "onefile_learner_id", "main_officer_id"]],
        on="trainee_id",
        how="left",
    )
    not_eligible = review_rules.review_upload_eligibility(candidates)
    eligible = candidates[not_eligible.isna()]
    assessors = review_rules.assessor_for_upload(eligible, frames["officer"])
    return {
        "reviews_eligible": len(eligible),
        "reviews_without_onefile_officer": int(assessors.isna().sum()),
    }
