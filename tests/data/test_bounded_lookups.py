"""Lookups by a list of IDs stay one safe query shape however long the list is.

A first enable of the sync can find tens of thousands of pending reviews; one ``IN (...)``
over all of them is a statement SQL Server refuses (at most 2,100 parameters) and a new
plan per backlog size. Every such lookup goes through ``sqlframes.select_in_chunks``: statements of
at most ``sqlframes.MAX_IN_LIST`` (1,000) IDs each, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from picsweb_sync.storage import picsweb_writes, sqlframes
from picsweb_sync.storage.picsweb_tables import review

from .conftest import review_row

BACKLOG = 25_000
FIRST_NEW = 1_001  # after the conftest's reviews 1 and 2
BASE_ONEFILE_ID = 5_000_000


@contextmanager
def parameters_per_statement(engine: Engine) -> Iterator[list[int]]:
    """The number of bound parameters of every statement the engine sends meanwhile."""
    counts: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        counts.append(len(parameters or ()))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def backlog(engine: Engine) -> Engine:
    """25,000 more reviews: the even ones linked to OneFile review 5,000,000 + their ID."""
    rows = [
        review_row(
            review_id,
            onefile_system_id=BASE_ONEFILE_ID + review_id if review_id % 2 == 0 else None,
            scheduled_date=dt.date(2026, 3, 20),
        )
        for review_id in range(FIRST_NEW, FIRST_NEW + BACKLOG)
    ]
    with engine.begin() as conn:
        conn.execute(insert(review), rows)
    return engine


def test_reviews_already_linked_in_bounded_statements(backlog):
    ids = list(range(FIRST_NEW, FIRST_NEW + BACKLOG))
    with backlog.connect() as conn, parameters_per_statement(backlog) as counts:
        linked = picsweb_writes.reviews_already_linked(conn, [*ids, *ids[:10], 1, 2, 999_999])
    assert linked == {n for n in ids if n % 2 == 0} | {1}
    assert len(counts) == 26  # 25,003 distinct IDs
    assert max(counts) <= sqlframes.MAX_IN_LIST


def test_reviews_with_onefile_ids_in_bounded_statements(backlog):
    wanted = [BASE_ONEFILE_ID + n for n in range(FIRST_NEW, FIRST_NEW + BACKLOG)]
    with backlog.connect() as conn, parameters_per_statement(backlog) as counts:
        found = picsweb_writes.reviews_with_onefile_ids(
            conn, pd.Series([*wanted, None, 900001], dtype="Int64")
        )
    assert len(counts) == 26
    assert max(counts) <= sqlframes.MAX_IN_LIST
    assert found["onefile_system_id"].tolist() == sorted(
        [900001, *(BASE_ONEFILE_ID + n for n in range(FIRST_NEW + 1, FIRST_NEW + BACKLOG, 2))]
    )
    assert list(found.columns) == [c.name for c in review.c]
    assert str(found["review_id"].dtype) == "Int64"
    assert found.loc[0, "scheduled_date"] == dt.date(2026, 3, 20)


@pytest.mark.parametrize(
    "ids",
    [pytest.param([], id="none"), pytest.param([None, pd.NA], id="only-nulls")],
)
def test_no_ids_no_query_and_a_typed_empty_frame(engine, ids):
    with engine.connect() as conn, parameters_per_statement(engine) as counts:
        found = picsweb_writes.reviews_with_onefile_ids(conn, ids)
        linked = picsweb_writes.reviews_already_linked(conn, ids)
    assert counts == []
    assert found.empty and list(found.columns) == [c.name for c in review.c]
    assert str(found["onefile_system_id"].dtype) == "Int64"
    assert linked == set()


@pytest.mark.parametrize(
    ("ids", "size", "expected"),
    [
        pytest.param([3, 1, 2], 2, [[1, 2], [3]], id="sorted-and-split"),
        pytest.param([2, 2, None, 1], 1000, [[1, 2]], id="repeats-and-nulls-dropped"),
        pytest.param(range(2001), 1000, [1000, 1000, 1], id="exact-multiples"),
        pytest.param([], 1000, [], id="empty"),
    ],
)
def test_id_chunks(ids, size, expected):
    chunks = list(sqlframes.id_chunks(ids, size))
    if expected and isinstance(expected[0], int):
        assert [len(chunk) for chunk in chunks] == expected
    else:
        assert chunks == expected
    assert all(type(value) is int for chunk in chunks for value in chunk)


def test_select_in_chunks_takes_any_statement(engine):
    with engine.connect() as conn:
        found = sqlframes.select_in_chunks(
            conn,
            lambda chunk: select(review.c.review_id, review.c.attended).where(
                review.c.review_id.in_(chunk)
            ),
            [2, 1, 1],
            chunk=1,
        )
    assert sorted(found["review_id"].tolist()) == [1, 2]
