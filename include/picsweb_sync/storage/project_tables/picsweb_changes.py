"""The shapes of PICSWeb changes, shared by the change sets (staging database) and the
PICSWeb writes' work tables (PICSWeb database): field changes with one typed value column
per kind, so the set-based UPDATE compares and assigns values of the target column's own
type on every dialect, and review inserts (``review`` minus its generated key).

:func:`picsweb_field_kinds` is the guard that the sync only ever writes existing, non-key
PICSWeb columns.
"""

from __future__ import annotations

import functools

import pandas as pd
from sqlalchemy import BigInteger, Column, Date, DateTime, Integer, String, Time, Unicode

from picsweb_sync.storage import picsweb_tables
from picsweb_sync.storage.project_tables.common import as_objects
from picsweb_sync.storage.sqlframes import value_kind

VALUE_TYPES = {
    "int": BigInteger(),
    "text": Unicode(400),
    "date": Date(),
    "time": Time(),
    "datetime": DateTime(),
}


def value_columns(*sides: str) -> list[Column]:
    return [Column(f"{side}_{kind}", sql) for side in sides for kind, sql in VALUE_TYPES.items()]


def field_change_columns() -> list[Column]:
    return [
        Column("change_no", Integer, nullable=False),
        Column("table_name", String(64), nullable=False),
        Column("entity_key", BigInteger, nullable=False),
        Column("field", String(64), nullable=False),
        Column("rule", String(64)),
        *value_columns("old", "new"),
    ]


def review_insert_columns() -> list[Column]:
    """``review`` minus its generated key: the ``picsweb_review_inserts`` shape."""
    return [
        Column(col.name, col.type, nullable=col.nullable)
        for col in picsweb_tables.review.c
        if col.name != "review_id"
    ]


def picsweb_field_kinds(tables: pd.Series, fields: pd.Series) -> pd.Series:
    """The value kind of each (PICSWeb table, field); unknown names and keys are errors.

    This is the guard that the sync only ever writes existing, non-key PICSWeb columns.
    Looked up once per distinct pair (a change set has tens of thousands of rows and a
    few dozen pairs), then joined back in the rows' order.
    """
    pairs = pd.DataFrame({"table": tables, "field": fields})
    known = _updatable_kinds()
    distinct = pairs.drop_duplicates()
    distinct = distinct.assign(
        kind=[
            known.get((table, field))
            for table, field in zip(
                distinct["table"].tolist(), distinct["field"].tolist(), strict=True
            )
        ]
    )
    kinds = pd.Series(
        pairs.merge(distinct, on=["table", "field"], how="left")["kind"].to_numpy(),
        index=pairs.index,
        dtype=object,
    )
    bad = pairs[kinds.isna()].drop_duplicates()
    if not bad.empty:
        raise ValueError(f"not updatable PICSWeb fields: {bad.to_records(index=False).tolist()}")
    unsupported = set(distinct["kind"]) - set(VALUE_TYPES)
    if unsupported:
        raise ValueError(f"no change-set value column for kinds {sorted(unsupported)}")
    return kinds


@functools.cache
def _updatable_kinds() -> dict[tuple[str, str], str]:
    """(table, column) -> value kind of every PICSWeb column the sync may write."""
    return {
        (table.name, col.name): value_kind(col.type)
        for table in picsweb_tables.metadata.tables.values()
        for col in table.c
        if not col.primary_key
    }


def spread_field_changes(updates: pd.DataFrame) -> pd.DataFrame:
    """``picsweb_updates`` rows -> rows of the typed change tables (one value column per kind).

    ``change_no`` is the row's position, so results can be matched back to the input.
    """
    duplicated = updates.duplicated(["table", "key", "field"])
    if duplicated.any():
        raise ValueError(f"{int(duplicated.sum())} duplicate (table, key, field) change(s)")
    kinds = picsweb_field_kinds(updates["table"], updates["field"])
    rows = pd.DataFrame(
        {
            "change_no": range(len(updates)),
            "table_name": updates["table"].to_numpy(),
            "entity_key": updates["key"].to_numpy(),
            "field": updates["field"].to_numpy(),
            "rule": updates["rule"].to_numpy(),
        }
    )
    kinds = kinds.to_numpy()
    for side in ("old", "new"):
        values = as_objects(updates[side]).to_numpy()
        for kind in VALUE_TYPES:
            rows[f"{side}_{kind}"] = pd.Series(values, dtype=object).where(kinds == kind, None)
    return rows


def gather_field_values(rows: pd.DataFrame, side: str) -> pd.Series:
    """The ``side`` (``old``/``new``/``cur``) value of each typed change row, as objects."""
    kinds = picsweb_field_kinds(rows["table_name"], rows["field"])
    values = pd.Series(None, index=rows.index, dtype=object)
    for kind in VALUE_TYPES:
        mask = kinds == kind
        values[mask] = rows.loc[mask, f"{side}_{kind}"].astype(object)
    return as_objects(values)
