"""What every ``sync_*`` table shares: the metadata they are created from, the column types
that behave the same on SQL Server, PostgreSQL and SQLite, the run partition, and the
project's timestamps (naive UTC, like the parsed OneFile frames).

Every table that holds one run's data is keyed by ``run_id`` (the Airflow run id), so a
retried task replaces exactly its own rows and two runs never see each other's. Those tables
carry ``created_at`` (naive UTC, set on insert) so ``retention.purge`` can drop them after
a retention period.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UnicodeText,
    select,
)
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

project_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Unbounded: OneFile documents no string lengths, and staging must hold whatever it sends
# (a value too long for its PICSWeb column is a reject, decided when parsing, not an
# overflow here). NVARCHAR(max) on SQL Server, since OneFile text is Unicode.
TEXT = UnicodeText()
# Instants keep their microseconds on SQL Server too (DATETIME rounds to 1/300 s).
INSTANT = DateTime().with_variant(mssql.DATETIME2(), "mssql")
# Generated surrogate keys: SQLite only autoincrements an INTEGER PRIMARY KEY.
SURROGATE = BigInteger().with_variant(Integer(), "sqlite")
# Seconds since 1970 (UTC) on the database's own clock (:class:`database_epoch`), double
# precision everywhere: microseconds at today's epoch. For times that processes on
# different machines compare with each other (the call budget, the writers' locks).
EPOCH = Float(precision=53)


class database_epoch(FunctionElement):  # noqa: N801 (a SQL function, named like one)
    """The database server's clock, in seconds since 1970 (UTC), read when the statement
    runs (not when its transaction began: a claim may wait for a row lock first).

    The one clock that every worker shares, whatever its own clock says: the call budget
    and the writers' locks stamp and compare their times with it, never with ``utcnow()``.
    One construct per dialect, here only."""

    type = EPOCH
    inherit_cache = True
    name = "database_epoch"


@compiles(database_epoch)
def _epoch_unknown(element: database_epoch, compiler: Any, **kw: Any) -> str:
    raise CompileError(f"no database clock for the {compiler.dialect.name} dialect")


@compiles(database_epoch, "postgresql")
def _epoch_postgresql(element: database_epoch, compiler: Any, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(database_epoch, "mssql")
def _epoch_mssql(element: database_epoch, compiler: Any, **kw: Any) -> str:
    return "(CAST(DATEDIFF_BIG(MICROSECOND, '19700101', SYSUTCDATETIME()) AS FLOAT) / 1000000.0)"


@compiles(database_epoch, "sqlite")
def _epoch_sqlite(element: database_epoch, compiler: Any, **kw: Any) -> str:
    # julianday('now') has millisecond resolution; 2440587.5 is 1970-01-01T00:00Z.
    return "((julianday('now') - 2440587.5) * 86400.0)"


def epoch_instant(seconds: float | None) -> dt.datetime | None:
    """Seconds since 1970 (an :data:`EPOCH` value) as naive UTC, for messages."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def database_now(bind: Engine | Connection) -> dt.datetime:
    """The database server's clock now, as naive UTC (``bind``: an engine or connection).

    For times that workers on different machines compare, such as when OneFile data was
    read (``freshness``): one clock for every worker, whatever each one's own says."""
    stmt = select(database_epoch())
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return epoch_instant(conn.execute(stmt).scalar_one())
    return epoch_instant(bind.execute(stmt).scalar_one())


def utcnow() -> dt.datetime:
    """Now as naive UTC, the project's convention for its own timestamps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def stamp(when: dt.datetime | None) -> dt.datetime:
    """``when`` (aware, or naive UTC) as naive UTC; now when not given."""
    if when is None:
        return utcnow()
    return when if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)


def run_id_column() -> Column:
    return Column("run_id", String(250), nullable=False)


def created_at_column() -> Column:
    return Column("created_at", INSTANT, nullable=False, default=utcnow)


def partitioned(name: str, *columns: Column, by: tuple[str, ...] = ("run_id",)) -> Table:
    """A table of per-run rows: ``run_id`` first, ``created_at`` last, indexed by partition."""
    table = Table(name, project_metadata, run_id_column(), *columns, created_at_column())
    Index(None, *(table.c[col] for col in by))
    return table


def as_objects(series: pd.Series) -> pd.Series:
    """Plain Python objects, ``None`` for missing (the change sets' ``old``/``new`` form)."""
    values = series.astype(object)
    return values.where(series.notna(), None)
