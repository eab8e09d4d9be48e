"""DataFrames in and out of SQL: conversion by column type, partition replacement, atomicity."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Time,
    Unicode,
    select,
)
from sqlalchemy.exc import IntegrityError

from picsweb_sync.storage.sqlframes import read_frame, replace_partition, to_records

from .conftest import LONG_TITLE

meta = MetaData()
every_type = Table(
    "t_every_type",
    meta,
    Column("run_id", String(50), nullable=False),
    Column("n", Integer, nullable=False),  # row order
    Column("big", BigInteger),
    Column("name", Unicode(200)),
    Column("code", CHAR(1)),
    Column("day", Date),
    Column("at", Time),
    Column("instant", DateTime),
    Column("flag", Boolean),
)
strict = Table(
    "t_strict",
    meta,
    Column("run_id", String(50), nullable=False),
    Column("id", Integer, nullable=False, unique=True),
)


@pytest.mark.parametrize(
    ("sql_type", "values", "expected"),
    [
        (Integer(), pd.Series([1, None, 3], dtype="Int64"), [1, None, 3]),
        (Integer(), pd.Series([1.0, np.nan]), [1, None]),
        (BigInteger(), pd.Series([2**40, pd.NA], dtype="Int64"), [2**40, None]),
        (Unicode(10), pd.Series(["Zoë", None, np.nan]), ["Zoë", None, None]),
        (Unicode(10), pd.Series(["x", pd.NA], dtype="string"), ["x", None]),
        (
            Date(),
            pd.Series([dt.date(2026, 3, 29), None, pd.NaT]),
            [dt.date(2026, 3, 29), None, None],
        ),
        (Date(), pd.Series(pd.to_datetime(["2026-03-29", None])), [dt.date(2026, 3, 29), None]),
        (Time(), pd.Series([dt.time(23, 30), None]), [dt.time(23, 30), None]),
        (
            DateTime(),
            pd.Series(pd.to_datetime(["2026-03-29T01:30:00Z", None], utc=True)),
            [pd.Timestamp("2026-03-29 01:30").to_pydatetime(), None],
        ),
        (Boolean(), pd.Series([True, None, False], dtype="boolean"), [True, None, False]),
    ],
    ids=[
        "int-nullable",
        "int-from-float-nan",
        "bigint",
        "text-nan-and-none",
        "text-string-dtype",
        "date-objects-with-NaT",
        "date-from-timestamps",
        "time",
        "aware-datetime-to-naive-utc",
        "boolean",
    ],
)
def test_to_records_converts_by_column_type(sql_type, values, expected):
    table = Table("t", MetaData(), Column("v", sql_type))
    records = to_records(pd.DataFrame({"v": values}), table)
    assert [r["v"] for r in records] == expected
    assert [type(r["v"]) for r in records] == [type(v) for v in expected]


def test_to_records_refuses_unknown_columns():
    with pytest.raises(ValueError, match="no column"):
        to_records(pd.DataFrame({"n": [1], "typo": [2]}), every_type)


def test_to_records_refuses_non_iso_date_text():
    """A UK ``05/01/2026`` must never be silently read as 1 May."""
    table = Table("t", MetaData(), Column("v", Date))
    with pytest.raises(ValueError):
        to_records(pd.DataFrame({"v": ["05/01/2026"]}), table)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": [1, 2, 3],
            "big": pd.array([9_007_199_254_740_993, None, 7], dtype="Int64"),
            "name": pd.array(["Ana Núñez", LONG_TITLE, None], dtype="string"),
            "code": pd.array(["Y", None, "U"], dtype="string"),
            "day": [dt.date(2026, 3, 29), None, dt.date(1999, 12, 31)],
            "at": [dt.time(0, 0), dt.time(23, 59, 59), None],
            "instant": pd.to_datetime(
                ["2026-03-29 00:59:59.123456", None, "2026-10-25 01:00:00.000000"]
            ),
            "flag": pd.array([True, None, False], dtype="boolean"),
        }
    ).astype({"instant": "datetime64[us]"})


def _read(conn, run_id: str) -> pd.DataFrame:
    columns = [c for c in every_type.c if c.name != "run_id"]
    stmt = select(*columns).where(every_type.c.run_id == run_id).order_by(every_type.c.n)
    return read_frame(conn, stmt)


def test_every_type_round_trips(empty_engine):
    meta.create_all(empty_engine)
    with empty_engine.begin() as conn:
        replace_partition(conn, every_type, {"run_id": "r1"}, _frame())
    with empty_engine.connect() as conn:
        back = _read(conn, "r1")
    expected = _frame().astype({"n": "Int64"})
    pd.testing.assert_frame_equal(back, expected)
    assert back["day"].map(type).tolist() == [dt.date, type(None), dt.date]
    assert back["at"].map(type).tolist() == [dt.time, dt.time, type(None)]


def test_read_frame_types_an_empty_result(empty_engine):
    meta.create_all(empty_engine)
    with empty_engine.connect() as conn:
        back = _read(conn, "nobody")
    assert back.empty
    assert back.dtypes.astype(str).to_dict() == {
        "n": "Int64",
        "big": "Int64",
        "name": "string",
        "code": "string",
        "day": "object",
        "at": "object",
        "instant": "datetime64[us]",
        "flag": "boolean",
    }


def test_replace_partition_replaces_only_its_own_rows(empty_engine):
    """A retried task replaces exactly its partition; another run's rows are untouched."""
    meta.create_all(empty_engine)
    frame = _frame()
    with empty_engine.begin() as conn:
        replace_partition(conn, every_type, {"run_id": "r1"}, frame)
        replace_partition(conn, every_type, {"run_id": "r2"}, frame)
    with empty_engine.begin() as conn:  # the retry of r1, with fewer rows this time
        inserted = replace_partition(conn, every_type, {"run_id": "r1"}, frame.iloc[:1])
    with empty_engine.connect() as conn:
        assert inserted == 1
        assert _read(conn, "r1")["n"].tolist() == [1]
        assert _read(conn, "r2")["n"].tolist() == [1, 2, 3]


def test_a_failed_replace_leaves_the_partition_as_it_was(empty_engine):
    """A bad row after good ones rolls back the delete and the good rows."""
    meta.create_all(empty_engine)
    with empty_engine.begin() as conn:
        replace_partition(conn, strict, {"run_id": "r1"}, pd.DataFrame({"id": [1, 2]}))
    with pytest.raises(IntegrityError), empty_engine.begin() as conn:
        replace_partition(conn, strict, {"run_id": "r1"}, pd.DataFrame({"id": [3, 4, 4]}))
    with empty_engine.connect() as conn:
        assert read_frame(conn, select(strict.c.id).order_by(strict.c.id))["id"].tolist() == [1, 2]
