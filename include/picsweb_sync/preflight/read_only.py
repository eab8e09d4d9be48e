"""How every database check connects: in a read-only transaction that is always rolled
back, with a driver error said in its own words, and the "connected" check each database's
checks begin with.

Read-only for real, not by promise: every check runs in one transaction that is rolled
back, declared ``READ ONLY`` on PostgreSQL (which then refuses any write), and issues only
``SELECT`` statements and catalog reads (SQLAlchemy's inspector; PostgreSQL's
``has_table_privilege`` and friends; SQL Server's ``HAS_PERMS_BY_NAME`` and
``INFORMATION_SCHEMA``). Every statement also compiles for SQL Server
(tests/preflight/test_statements.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from picsweb_sync.preflight.findings import Check, Level


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


def connected_check(check_id: str, title: str, conn: Connection, description: str) -> Check:
    version = ".".join(str(part) for part in (conn.dialect.server_version_info or ())[:2])
    return Check(
        check_id,
        Level.OK,
        title,
        f"{description}; {conn.dialect.name} {version}".rstrip(),
        details={"dialect": conn.dialect.name, "version": version},
    )
