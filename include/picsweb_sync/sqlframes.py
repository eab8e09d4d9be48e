"""DataFrames in and out of SQL tables, typed by the table definitions rather than by pandas.

pandas guesses types from values, so a column with one NULL turns integers into floats and
missing text into NaN, which a driver then writes as ``'nan'`` or ``1.0``. These helpers
convert by the SQLAlchemy column type instead, so every database sees ints, strings,
``date``/``time``/``datetime`` objects and NULL, and every frame read back has the
project's dtypes (``Int64``, ``string``, ``datetime64[us]``, ``date`` objects).

Also the bounded lookups (:func:`select_in_chunks`): a lookup by an ID list of any length
as statements with ``IN`` lists of at most :data:`MAX_IN_LIST` IDs.

The bottom of the data layer: no project knowledge, no import of another ``picsweb_sync``
module, so the table modules (``project_tables``, ``picsweb_tables``) and the PICSWeb
writes (``picsweb_writes``) all build on it (tests/unit/test_layering.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, Table, delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Delete
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


def python_values(series: pd.Series, sql_type: TypeEngine) -> list[Any]:
    """The column as plain Python values of ``sql_type``, every kind of missing as ``None``."""
    kind = value_kind(sql_type)
    if kind in _NULLABLE_DTYPES:
        values = series.astype(_NULLABLE_DTYPES[kind])
    elif kind == "date":
        values = _naive_utc(series).dt.date
    elif kind == "datetime":
        values = _naive_utc(series).dt.to_pydatetime()
    else:  # time: pandas has no time dtype, the objects already are datetime.time
        values = series
    return values.astype(object).where(values.notna(), None).tolist()


def to_records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """Rows of ``frame`` as parameter dicts for ``insert(table)``, converted per column type.

    Columns of ``frame`` that ``table`` lacks are an error, not silently dropped: a typo
    would otherwise lose data without a trace.
    """
    unknown = [name for name in frame.columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {unknown}")
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

    Delete then one bulk insert, so a retried task replaces exactly its own rows. The caller
    owns the transaction (``with engine.begin() as conn``): a failure anywhere leaves the
    partition as it was. ``partition`` values are written into every row; ``None`` matches
    NULL. Returns the number of rows inserted.
    """
    conn.execute(partition_delete(table, partition))
    records = to_records(frame.assign(**partition), table)
    if records:
        conn.execute(insert(table), records)
    return len(records)


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
