"""Small hand-written PICSWeb table frames for the merge tests, typed like the sync reads
them (``Int64`` ids, ``string`` text, ``date``/``time`` objects): missing columns take the
given defaults, so each test spells out only what it is about."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Table

from picsweb_sync.storage import picsweb_tables as pt
from picsweb_sync.storage.sqlframes import frame_column

_DEFAULTS: dict[str, dict[str, Any]] = {
    "officer": {"first_name": "Olive", "surname": "Officer"},
    "trainee": {"first_name": "Tom", "surname": "Trainee"},
    "trainee_qualification": {"qualification_code": "196AS"},
    "trainee_qualification_unit": {"unit_code": "U1"},
    "review": {"review_type": "Normal", "scheduled_date": dt.date(2026, 2, 10)},
}


def frame(table: Table, *rows: dict[str, Any]) -> pd.DataFrame:
    """``rows`` of ``table`` as a typed frame (all of the table's columns)."""
    defaults = _DEFAULTS.get(table.name, {})
    return pd.DataFrame(
        {
            column.name: frame_column(
                [row.get(column.name, defaults.get(column.name)) for row in rows], column.type
            )
            for column in table.c
        }
    )


def officers(*rows: dict[str, Any]) -> pd.DataFrame:
    return frame(pt.officer, *rows)


def trainees(*rows: dict[str, Any]) -> pd.DataFrame:
    return frame(pt.trainee, *rows)


def qualifications(*rows: dict[str, Any]) -> pd.DataFrame:
    return frame(pt.trainee_qualification, *rows)


def units(*rows: dict[str, Any]) -> pd.DataFrame:
    return frame(pt.trainee_qualification_unit, *rows)


def reviews(*rows: dict[str, Any]) -> pd.DataFrame:
    return frame(pt.review, *rows)


def records(changes: pd.DataFrame) -> list[tuple]:
    """Change rows as plain tuples, sorted, for exact comparison with hand-written ones."""
    plain = changes.astype(object).where(changes.notna(), None)
    rows = [tuple(row) for row in plain.itertuples(index=False)]
    return sorted(rows, key=repr)
