"""What a OneFile field's columns accept, read from the table definitions.

A field's value lands in its staging column (:data:`picsweb_sync.storage.project_tables.STAGING`)
and, where the sync writes it to PICSWeb or matches it against a PICSWeb column, in that
column too (``Field.picsweb``, a column of :mod:`picsweb_sync.storage.picsweb_tables`). The
limits are not a list of their own: a text column's size is its ``type.length``; an integer
column's range is its SQL type's (``SMALLINT`` 16, ``INTEGER`` 32, ``BIGINT`` 64 bits,
signed). The narrower column wins (:func:`field_limits`), and a reject names the column a
limit comes from (:func:`describe`). The parsing that applies them is
:mod:`picsweb_sync.onefile.fields`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, Integer, SmallInteger

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import STAGING

if TYPE_CHECKING:
    from picsweb_sync.onefile.fields import Field

# Most specific first: BigInteger and SmallInteger are Integers to SQLAlchemy.
_INTEGER_TYPES = (
    (BigInteger, "BIGINT", 64),
    (SmallInteger, "SMALLINT", 16),
    (Integer, "INTEGER", 32),
)


def max_length(column: Column) -> int | None:
    """The most characters ``column`` holds (``None``: unbounded, or not text)."""
    return getattr(column.type, "length", None)


def int_range(column: Column) -> tuple[int, int, str] | None:
    """(lowest, highest, SQL type name) of an integer ``column``; ``None`` if not an integer."""
    for sql_type, name, bits in _INTEGER_TYPES:
        if isinstance(column.type, sql_type):
            return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, name
    return None


def landing_columns(entity: str, field: Field) -> tuple[Column, ...]:
    """The columns a value of ``field`` is stored in: its staging column, and its PICSWeb
    column when it has one."""
    staging = STAGING[entity].c[field.column]
    return (staging,) if field.picsweb is None else (field.picsweb, staging)


def describe(column: Column) -> str:
    """A column as a reject reason names it: ``PICSWeb's table.column`` or ``staging ...``."""
    side = "PICSWeb's" if column.table.metadata is pw.metadata else "staging"
    return f"{side} {column.table.name}.{column.name}"


@dataclass(frozen=True)
class FieldLimits:
    """What one field's columns accept: the narrowest length and integer range, and the
    column each comes from (to name it in a reason)."""

    length: int | None = None
    length_column: Column | None = None
    low: int | None = None
    high: int | None = None
    sql_type: str = ""
    range_column: Column | None = None


def field_limits(entity: str, field: Field) -> FieldLimits:
    """What ``field`` of ``entity`` accepts: the narrowest of its landing columns."""
    columns = landing_columns(entity, field)
    lengths = [(max_length(c), c) for c in columns if max_length(c) is not None]
    ranges = [(int_range(c), c) for c in columns if int_range(c) is not None]
    length, length_column = min(lengths, key=lambda pair: pair[0], default=(None, None))
    if not ranges:
        return FieldLimits(length, length_column)
    (low, high, sql_type), range_column = min(ranges, key=lambda pair: pair[0][1])
    return FieldLimits(length, length_column, low, high, sql_type, range_column)
