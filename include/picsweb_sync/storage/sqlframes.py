"""DataFrames in and out of SQL tables, typed by the table definitions rather than by pandas.

pandas guesses types from values, so a column with one NULL turns integers into floats and
missing text into NaN, which a driver then writes as ``'nan'`` or ``1.0``. These helpers
convert by the SQLAlchemy column type instead, so every database sees ints, strings,
``date``/``time``/``datetime`` objects and NULL, and every frame read back has the
project's dtypes (``Int64``, ``string``, ``datetime64[us]``, ``date`` objects).

Every write of many rows goes through :func:`bulk_insert`, the one place that picks each
database's own bulk form (``COPY`` on PostgreSQL, multi-row ``INSERT`` batches within SQL
Server's limits, ``executemany`` on SQLite): a statement per row costs a round trip and
SQLAlchemy's per-row parameter handling, which made the loads about 50 times slower than
the database's floor (issue 12).

Also the bounded lookups (:func:`select_in_chunks`): a lookup by an ID list of any length
as statements with ``IN`` lists of at most :data:`MAX_IN_LIST` IDs.

The bottom of the data layer: no project knowledge, no import of another ``picsweb_sync``
module, so the table modules (``project_tables``, ``picsweb_tables``) and the PICSWeb
writes (``picsweb_writes``) all build on it (tests/unit/test_layering.py).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, Table, delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Delete, Insert
from sqlalchemy.types import TypeEngine

# SQL type -> how its values travel; ``datetime`` must be checked before ``date``.
_KINDS: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "text",
    dt.datetime: "datetime",
    dt.date: "date",
    dt.time: "time",
}
_NULLABLE_DTYPES = {"int": "Int64", "float": "Float64", "bool": "boolean", "text": "string"}


def value_kind(sql_type: TypeEngine) -> str:
    """``int``, ``float``, ``bool``, ``text``, ``date``, ``time`` or ``datetime`` for a SQL type."""
    try:
        return _KINDS[sql_type.python_type]
    except (KeyError, NotImplementedError) as exc:
        raise TypeError(f"no DataFrame conversion for SQL type {sql_type!r}") from exc


def _naive_utc(values: pd.Series) -> pd.Series:
    """Datetimes as naive UTC; ISO text only, so a UK ``05/01/2024`` is never read as 1 May."""
    stamps = pd.to_datetime(values, format="ISO8601")
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps


def _typed(series: pd.Series, sql_type: TypeEngine) -> tuple[str, pd.Series]:
    """The column's kind and its values in the dtype that kind travels in: nullable
    ``Int64``/``Float64``/``boolean``/``string``, ``datetime.date`` objects, naive-UTC
    datetimes, or (time) the objects as they are."""
    kind = value_kind(sql_type)
    if kind in _NULLABLE_DTYPES:
        return kind, series.astype(_NULLABLE_DTYPES[kind])
    if kind == "date":
        return kind, _naive_utc(series).dt.date
    if kind == "datetime":
        return kind, _naive_utc(series)
    return kind, series  # time: pandas has no time dtype, the objects already are datetime.time


def python_values(series: pd.Series, sql_type: TypeEngine) -> list[Any]:
    """The column as plain Python values of ``sql_type``, every kind of missing as ``None``."""
    kind, values = _typed(series, sql_type)
    if kind == "datetime":
        values = values.dt.to_pydatetime()
    return values.astype(object).where(values.notna(), None).tolist()


def to_records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """Rows of ``frame`` as parameter dicts for ``insert(table)``, converted per column type.

    Columns of ``frame`` that ``table`` lacks are an error, not silently dropped: a typo
    would otherwise lose data without a trace.
    """
    _refuse_unknown_columns(frame, table)
    names = list(frame.columns)
    columns = [python_values(frame[name], table.c[name].type) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def frame_column(values: list[Any], sql_type: TypeEngine) -> pd.Series:
    """Values read from the database as a Series with the project's dtype for ``sql_type``."""
    kind = value_kind(sql_type)
    if kind in _NULLABLE_DTYPES:
        return pd.Series(values, dtype=_NULLABLE_DTYPES[kind])
    if kind == "datetime":
        return pd.Series(values, dtype="datetime64[us]")
    return pd.Series(values, dtype=object)  # date and time objects, None for NULL


def read_frame(conn: Connection, stmt: Select) -> pd.DataFrame:
    """Run ``stmt`` and type each column by its SQL type (``Int64`` even with NULLs, etc.)."""
    result = conn.execute(stmt)
    names = list(result.keys())
    columns = list(zip(*result.all(), strict=True)) or [() for _ in names]
    types = [column.type for column in stmt.selected_columns]
    return pd.DataFrame(
        {
            name: frame_column(list(values), sql_type)
            for name, values, sql_type in zip(names, columns, types, strict=True)
        }
    )


def empty_frame(stmt: Select) -> pd.DataFrame:
    """What :func:`read_frame` returns for ``stmt`` when it finds no rows, without running it."""
    return pd.DataFrame(
        {column.key: frame_column([], column.type) for column in stmt.selected_columns}
    )


def replace_partition(
    conn: Connection, table: Table, partition: Mapping[str, Any], frame: pd.DataFrame
) -> int:
    """Replace the rows of ``table`` in ``partition`` (e.g. run + organisation) by ``frame``.

    Delete then one bulk insert (:func:`bulk_insert`), so a retried task replaces exactly
    its own rows. The caller owns the transaction (``with engine.begin() as conn``): a
    failure anywhere leaves the partition as it was. ``partition`` values are written into
    every row; ``None`` matches NULL. Returns the number of rows inserted.
    """
    conn.execute(partition_delete(table, partition))
    return bulk_insert(conn, table, frame.assign(**partition))


# ----- bulk inserts: each database's own bulk form ---------------------------------------------
MSSQL_MAX_PARAMETERS = 2100
"""Parameters SQL Server accepts in one statement."""
MSSQL_MAX_VALUES_ROWS = 1000
"""Rows SQL Server accepts in one ``VALUES`` list."""
COPY_DRIVERS = ("psycopg2", "psycopg")
"""PostgreSQL drivers whose ``COPY ... FROM STDIN`` :func:`bulk_insert` uses."""
_COPY_NULL = "\\N"
_COPY_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}  # backslash first


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert every row of ``frame`` into ``table`` the database's own bulk way; returns
    the number of rows.

    Values are converted by column type exactly as :func:`to_records` converts them (so
    NULL, ``''``, dates and instants read back the same on every path); columns ``frame``
    lacks get the table's Python-side default (one value for the whole insert, e.g.
    ``created_at``) or the server's. By dialect, chosen here and nowhere else:

    - PostgreSQL (psycopg2, psycopg 3): one ``COPY ... FROM STDIN`` in text format, the
      buffer built a column at a time;
    - SQL Server: multi-row ``INSERT ... VALUES`` statements (:func:`multirow_inserts`), each
      within its 2,100 parameters and 1,000 rows;
    - anything else (SQLite): the driver's ``executemany``, which runs in-process.

    Runs in the caller's transaction (begun here if the connection has none yet, as any
    statement would), so a failure leaves nothing behind.
    """
    _refuse_unknown_columns(frame, table)
    if frame.empty:
        return 0
    frame = _with_python_defaults(frame, table)
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver in COPY_DRIVERS:
        _copy_in(conn, table, frame)
    elif dialect.name == "mssql":
        for stmt in multirow_inserts(table, frame):
            conn.execute(stmt)
    else:
        conn.execute(insert(table), to_records(frame, table))
    return len(frame)


def multirow_inserts(table: Table, frame: pd.DataFrame) -> Iterator[Insert]:
    """``frame`` as multi-row ``INSERT ... VALUES`` statements, each with at most
    :data:`MSSQL_MAX_VALUES_ROWS` rows and fewer than :data:`MSSQL_MAX_PARAMETERS`
    parameters (SQL Server's limits)."""
    records = to_records(frame, table)
    width = max(1, len(frame.columns))
    rows = max(1, min(MSSQL_MAX_VALUES_ROWS, (MSSQL_MAX_PARAMETERS - 1) // width))
    for start in range(0, len(records), rows):
        yield insert(table).values(records[start : start + rows])


def _refuse_unknown_columns(frame: pd.DataFrame, table: Table) -> None:
    unknown = [name for name in frame.columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {unknown}")


def _with_python_defaults(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``frame`` plus each missing column that has a Python-side default (a constant, or a
    function of nothing), evaluated once: ``COPY`` never runs SQLAlchemy's defaults."""
    defaults = {}
    for column in table.c:
        default = column.default
        if column.name in frame.columns or default is None:
            continue
        if getattr(default, "is_scalar", False):
            defaults[column.name] = default.arg
        elif getattr(default, "is_callable", False):
            defaults[column.name] = default.arg(None)
    return frame.assign(**defaults) if defaults else frame


def copy_text(frame: pd.DataFrame, table: Table) -> str:
    """``frame`` in PostgreSQL's ``COPY`` text format, converted by column type as
    :func:`to_records` converts it: ``\\N`` for NULL (an empty string stays empty),
    backslash, tab, newline and carriage return escaped, dates, times and instants in ISO
    form, booleans ``t``/``f``."""
    columns = [_copy_column(frame[name], table.c[name].type) for name in frame.columns]
    if not columns:
        return ""
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_column(series: pd.Series, sql_type: TypeEngine) -> list[str]:
    kind, values = _typed(series, sql_type)
    if kind == "text":
        texts = values.dropna().tolist()
        everything = "".join(texts)  # one scan for the characters COPY would misread
        if any(char in everything for char in _COPY_ESCAPES):
            for char, escaped in _COPY_ESCAPES.items():
                values = values.str.replace(char, escaped, regex=False)
        return values.fillna(_COPY_NULL).tolist()
    if kind == "int":
        missing = values.isna().to_numpy()
        texts = values.to_numpy(dtype="int64", na_value=0).astype(str).astype(object)
        texts[missing] = _COPY_NULL
        return texts.tolist()
    if kind == "bool":
        return [_COPY_NULL if v is None else ("t" if v else "f") for v in _objects(values)]
    if kind == "float":
        return [_COPY_NULL if v is None else repr(float(v)) for v in _objects(values)]
    if kind == "datetime":
        texts = values.dt.floor("us").astype(str)  # ISO, as to_pydatetime would truncate
        return texts.astype(object).where(values.notna(), _COPY_NULL).tolist()
    return [_COPY_NULL if v is None else v.isoformat() for v in _objects(values)]  # date, time


def _objects(values: pd.Series) -> list[Any]:
    return values.astype(object).where(values.notna(), None).tolist()


def _copy_in(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """One ``COPY table (columns) FROM STDIN`` through the DBAPI connection, in the
    connection's transaction."""
    if not conn.in_transaction():
        conn.begin()  # what executing any statement would do (autobegin)
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(name) for name in frame.columns)
    sql = f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
    text = copy_text(frame, table)
    dbapi = conn.dialect.loaded_dbapi
    raw = conn.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        if conn.dialect.driver == "psycopg2":
            cursor.copy_expert(sql, io.StringIO(text))
        else:  # psycopg 3
            with cursor.copy(sql) as copy:
                copy.write(text)
    except dbapi.Error as exc:
        # As SQLAlchemy reports a failed statement (IntegrityError, DataError, ...), so
        # callers see the same exceptions on every path.
        disconnected = conn.dialect.is_disconnect(exc, raw, cursor)
        if disconnected:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, None, exc, dbapi.Error, connection_invalidated=disconnected, dialect=conn.dialect
        ) from exc
    finally:
        if not cursor.closed:
            cursor.close()


def plain(value: Any) -> Any:
    """A numpy scalar (what iterating a frame yields) as its Python value, which every
    driver can bind; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def partition_delete(table: Table, partition: Mapping[str, Any]) -> Delete:
    """``DELETE`` of one partition (``col = :v``, or ``IS NULL`` for ``None``)."""
    return delete(table).where(
        *(table.c[name] == plain(value) for name, value in partition.items())
    )


# ----- bounded lookups ------------------------------------------------------------------------
MAX_IN_LIST = 1000
"""IDs in one ``IN (...)`` list. SQL Server takes at most 2,100 parameters in a statement,
and a list as long as a first-enable backlog (tens of thousands) would fail there, or make a
statement per backlog size for the plan cache; chunks keep one safe query shape."""


def id_chunks(ids: Iterable[Any], size: int = MAX_IN_LIST) -> Iterator[list[int]]:
    """The distinct non-null ``ids`` as sorted Python ints, in lists of at most ``size``."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    distinct = pd.Series(list(ids), dtype="Int64").dropna().drop_duplicates().sort_values()
    values = [int(value) for value in distinct]
    for start in range(0, len(values), size):
        yield values[start : start + size]


def select_in_chunks(
    conn: Connection,
    stmt_for: Callable[[list[int]], Select],
    ids: Iterable[Any],
    chunk: int = MAX_IN_LIST,
) -> pd.DataFrame:
    """:func:`read_frame` of ``stmt_for(some_ids)`` for each chunk of at most ``chunk`` of
    the distinct ``ids``, stacked: a lookup by an ID list of any length, each statement with
    a bounded ``IN`` list. ``stmt_for`` must select the same columns for every chunk; a row
    found by two chunks appears twice. No IDs: an empty, typed frame and no query.
    """
    chunks = list(id_chunks(ids, chunk))
    if not chunks:
        return empty_frame(stmt_for([]))
    frames = [read_frame(conn, stmt_for(ids_of_chunk)) for ids_of_chunk in chunks]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
