"""OneFile JSON rows -> typed DataFrames (the staging columns) + rejects.

The OneFile field names of ``shared/contract/onefile-api.md`` live in
:mod:`picsweb_sync.onefile.names` (``JSON_FIELDS``, the **[assumed]** ones included), kept free
of SQLAlchemy for the merge rules; :data:`FIELDS` here is that table with each field's PICSWeb
column (:data:`PICSWEB_COLUMNS`).

A row is parsed or rejected as a whole: a row without an ``ID``, with a date that is not an
ISO-8601 instant, with text in a number field, or with a value that does not fit the column
it lands in is not in ``frame`` but in ``rejects``, with a reason naming each bad field, its
value (shortened when long) and the limit, so nothing half-parsed is ever written and one
bad value never stops the run (``shared/contract/picsweb-schema.md``, last paragraph).

The limits are not a list of their own: each :class:`Field` names the PICSWeb column it
lands in (``Field.picsweb``, a column of :mod:`picsweb_sync.storage.picsweb_tables`), and the
staging column of :data:`picsweb_sync.storage.project_tables.STAGING` bounds it too; the
narrower column wins (:mod:`picsweb_sync.onefile.column_limits` reads them, :data:`LIMITS`).

Decisions the contract leaves open:
- a number field accepts a JSON number with no fraction (``12``, ``12.0``) or digits in a
  string (``"12"``: some clients quote numbers); ``"twelve"``, ``3.5``, ``true``, a list
  or an object are bad, and so is a whole number outside its columns' range
  (``3000000000`` for an ``INTEGER``, ``2**70`` for a ``BIGINT`` ID);
- an element count (``TotalElements``, ``ElementsDone``) is a number that is also ``>= 0``;
- a text field takes a JSON string as it is (``""`` and whitespace too: blank is the
  merge's business), and a whole number as its digits (``123`` and ``123.0`` are
  ``"123"``); ``true``, ``12.5``, a list or an object are "not text". Its length is counted
  in characters (code points) after trimming, since rules 2-4 write the trimmed value, and
  must not exceed its column's;
- a text field with no PICSWeb column (``Title``, ``Code``, names, emails: the sync writes
  none of them to PICSWeb) lands only in unbounded staging text, so no length rejects it;
- a text field's value must be storable text
  (:mod:`picsweb_sync.storage.project_tables.storable_text`: no ``U+0000``, no lone surrogate such as
  ``"\\ud83d"``, which no database of the sync can store); a value that is not is a reject
  naming the code point and its position, quoted as ASCII JSON (``"Ann\\u0000e"``). The
  rule is the same for every text field, and a reject is always storable: its reason quotes
  values as ASCII JSON, ``raw`` is the row as ASCII JSON, and a ``source_id`` that is not
  storable text is kept as its JSON (``"12\\u0000"``, with the quotes);
- a number given as more digits than Python converts (4,300) is not a whole number;
- an instant without a zone is UTC (the only zone OneFile documents); ``""`` is unset; an
  instant before 2 January 0001 or after 30 December 9999 (UTC) is a reject, since neither
  it nor its UK date could be stored (``0001-01-01T00:00:00+01:00`` is in year 0 in UTC);
- a page element that is not a JSON object (``null``, ``"abc"``, ``[1]``) is a reject
  ("not a JSON object") with its JSON as ``raw``; the rest of the page parses;
- the same ``ID`` twice in one extract (a page boundary that moved while paging) keeps one
  row: the last by ``LastModified`` where the entity has it, else the last seen. The other
  copies are **not** rejects (the entity is synced, from its newest copy); they are counted
  in ``Parsed.duplicates``. A copy that is itself malformed is a reject like any other row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Column

from picsweb_sync.onefile.column_limits import FieldLimits, describe, field_limits
from picsweb_sync.onefile.names import JSON_FIELDS, JsonField

# Re-exported: the push and the parser's tests read the OneFile names through this module.
from picsweb_sync.onefile.names import ONEFILE_ENTITY as ONEFILE_ENTITY
from picsweb_sync.onefile.names import ONEFILE_NAMES as ONEFILE_NAMES
from picsweb_sync.onefile.ukdates import parse_instants, uk_date
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables.storable_text import text_problems


@dataclass(frozen=True)
class Field(JsonField):
    """A OneFile JSON field (its name, staging column and kind from
    :data:`~picsweb_sync.onefile.names.JSON_FIELDS`) and, where the sync writes it to PICSWeb
    (or matches it against a PICSWeb column), that column: its type and size bound what is
    accepted."""

    picsweb: Column | None = None


_LEARNER_ID = pw.trainee.c.onefile_learner_id
_ASSESSOR_ID = pw.officer.c.onefile_id
_QUALIFICATION = pw.trainee_qualification.c

# (entity, staging column) -> the PICSWeb column the field's value lands in or is matched
# against; fields not named here have none.
PICSWEB_COLUMNS: dict[tuple[str, str], Column] = {
    ("learners", "learner_id"): _LEARNER_ID,
    ("learners", "default_assessor_id"): _ASSESSOR_ID,
    ("assessors", "assessor_id"): _ASSESSOR_ID,
    ("learning_aims", "learning_aim_id"): _QUALIFICATION.onefile_learning_aim_id,
    ("learning_aims", "learner_id"): _LEARNER_ID,
    ("learning_aims", "total_elements"): _QUALIFICATION.total_elements,
    ("learning_aims", "elements_done"): _QUALIFICATION.elements_done,
    ("learning_aims", "registration_number"): _QUALIFICATION.registration_number,
    ("learning_aims", "registration_date"): _QUALIFICATION.registration_date,
    ("learning_aims", "certificate_applied_date"): _QUALIFICATION.certificate_applied_date,
    ("learning_aims", "certificate_received_date"): _QUALIFICATION.certificate_received_date,
    ("reviews", "review_id"): pw.review.c.onefile_system_id,
    ("reviews", "learner_id"): _LEARNER_ID,
    ("reviews", "assessor_id"): _ASSESSOR_ID,
}

FIELDS: dict[str, tuple[Field, ...]] = {
    entity: tuple(
        Field(
            field.onefile,
            field.column,
            field.kind,
            field.required,
            PICSWEB_COLUMNS.get((entity, field.column)),
        )
        for field in fields
    )
    for entity, fields in JSON_FIELDS.items()
}

REJECT_COLUMNS = ["entity", "source_id", "reason", "raw"]
NOT_AN_OBJECT = "not a JSON object"
_WHOLE_NUMBER = r"^\s*([+-]?\d+)(?:\.0*)?\s*$"
# The instants every database (and Python's datetime) holds, as UTC and as a UK date: years
# 1 to 9999, a day in from each end (UK time was UTC-0:01:15 in year 1, so 1 January 00:00
# UTC is still year 0 there).
_FIRST_INSTANT = np.datetime64("0001-01-02T00:00:00", "us")
_LAST_INSTANT = np.datetime64("9999-12-30T23:59:59.999999", "us")
_OUTSIDE = "{}: outside 0001-01-02 to 9999-12-30 (UTC), the instants every database holds: "
_SHOWN_CHARACTERS = 80  # a value quoted in a reason is cut to this; ``raw`` keeps it whole


LIMITS: dict[str, dict[str, FieldLimits]] = {
    entity: {field.column: field_limits(entity, field) for field in fields}
    for entity, fields in FIELDS.items()
}


@dataclass(frozen=True)
class Parsed:
    """A parsed extract: good rows (``frame``), bad rows with reasons (``rejects``), and how
    many surplus copies of an ID were dropped (``duplicates``)."""

    frame: pd.DataFrame
    rejects: pd.DataFrame
    duplicates: int = 0


def parse_learners(rows: list[Any], organisation_id: int) -> Parsed:
    """OneFile ``User`` rows of role 1 -> the learners frame."""
    return parse_rows("learners", rows, organisation_id)


def parse_assessors(rows: list[Any], organisation_id: int) -> Parsed:
    """OneFile ``User`` rows of the assessor roles -> the assessors frame."""
    return parse_rows("assessors", rows, organisation_id)


def parse_learning_aims(rows: list[Any], organisation_id: int) -> Parsed:
    """OneFile ``LearningAim`` rows -> the learning aims frame (dates as UK dates)."""
    return parse_rows("learning_aims", rows, organisation_id)


def parse_reviews(rows: list[Any], organisation_id: int) -> Parsed:
    """OneFile ``Review`` rows -> the reviews frame (instants as naive UTC)."""
    return parse_rows("reviews", rows, organisation_id)


def parse_rows(entity: str, rows: list[Any], organisation_id: int) -> Parsed:
    """Parse ``rows`` of ``entity`` (a key of :data:`FIELDS`) column by column.

    ``rows`` is a search's page elements as decoded JSON; one that is not an object is a
    reject, never an error.
    """
    fields = FIELDS[entity]
    index = pd.RangeIndex(len(rows))
    is_object = pd.Series([isinstance(row, dict) for row in rows], index=index, dtype=bool)
    objects = rows if is_object.all() else [row if isinstance(row, dict) else {} for row in rows]
    source = pd.DataFrame(objects, dtype=object, index=index)
    # ASCII JSON, so any row can be kept: a NUL or a lone surrogate is written "\u0000",
    # "\ud83d", and json.loads gives back the exact row.
    raw = pd.Series(
        [json.dumps(row, sort_keys=True, default=str, ensure_ascii=True) for row in rows],
        index=index,
        dtype="string",
    )
    columns: dict[str, pd.Series] = {}
    reason = pd.Series(pd.NA, index=index, dtype="string")
    for field in fields:
        values = source.get(field.onefile, pd.Series(None, index=index, dtype=object))
        columns[field.column], problem = _parse_field(field, LIMITS[entity][field.column], values)
        reason = reason.where(problem.isna(), (reason + "; ").fillna("") + problem)
    reason[~is_object] = f"{NOT_AN_OBJECT}: " + _shorten(raw[~is_object])
    bad = reason.notna()
    id_field = fields[0]
    ids = source.get(id_field.onefile, pd.Series(None, index=index, dtype=object))
    rejects = pd.DataFrame(
        {
            "entity": pd.Series(entity, index=index, dtype="string"),
            "source_id": _source_ids(ids),
            "reason": reason,
            "raw": raw,
        }
    )[bad].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            id_field.column: columns.pop(id_field.column),
            "organisation_id": pd.Series(organisation_id, index=index, dtype="Int64"),
            **columns,
            "raw": raw,
        }
    )[~bad]
    kept = _newest_copy(frame, id_field.column)
    return Parsed(kept, rejects, duplicates=len(frame) - len(kept))


def _parse_field(
    field: Field, limits: FieldLimits, values: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """(typed column, problem text or NA per row) for one field."""
    present = values.notna()
    problem = pd.Series(pd.NA, index=values.index, dtype="string")
    if field.kind in ("id", "int", "count"):
        parsed = _parse_whole_numbers(field, limits, values, present, problem)
    elif field.kind == "text":
        parsed = _parse_text(field, limits, values, present, problem)
    else:
        parsed, bad = parse_instants(values)
        _complain(problem, bad, f"{field.onefile}: not an ISO-8601 instant: ", values)
        outside = (parsed < _FIRST_INSTANT) | (parsed > _LAST_INSTANT)
        _complain(problem, outside, _OUTSIDE.format(field.onefile), values)
        parsed = parsed.where(~outside)
        if field.kind == "uk_date":
            parsed = uk_date(parsed)
    missing = field.required & parsed.isna() & problem.isna()
    problem[missing] = f"{field.onefile}: missing"
    return parsed, problem


def _kinds(values: pd.Series) -> pd.Series:
    """The Python type of each value (``bool`` apart from ``int``), for the JSON kinds."""
    return values.map(type)


def _whole_numbers(values: pd.Series, kinds: pd.Series) -> pd.Series:
    """Each value as a Python ``int`` where it is a whole number (an int, a float with no
    fraction, or digits in a string), else ``None``. Python ints, so no size overflows."""
    numbers = pd.Series(None, index=values.index, dtype=object)
    ints = kinds.eq(int)  # a bool's type is bool, not int
    numbers[ints] = values[ints]
    floats = values[kinds.eq(float)].astype(float)
    whole = floats[np.isfinite(floats) & (np.mod(floats, 1) == 0)]
    numbers[whole.index] = whole.map(int).astype(object)
    texts = values[kinds.eq(str)]
    if not texts.empty:
        digits = texts.str.extract(_WHOLE_NUMBER)[0].dropna()
        numbers[digits.index] = digits.map(_int_or_none).astype(object)
    return numbers


def _int_or_none(digits: str) -> int | None:
    """``int(digits)``, or ``None`` for more digits than Python converts (4,300: far beyond
    any column's range), so such a value is "not a whole number" instead of an error."""
    try:
        return int(digits)
    except ValueError:
        return None


def _parse_whole_numbers(
    field: Field, limits: FieldLimits, values: pd.Series, present: pd.Series, problem: pd.Series
) -> pd.Series:
    numbers = _whole_numbers(values, _kinds(values))
    number = numbers.notna()
    _complain(problem, present & ~number, f"{field.onefile}: not a whole number: ", values)
    if field.kind == "count":
        negative = number & (numbers < 0)
        _complain(problem, negative, f"{field.onefile}: negative count: ", numbers)
        number &= ~negative
    if limits.range_column is not None:
        outside = number & ((numbers < limits.low) | (numbers > limits.high))
        where = f"{describe(limits.range_column)}: {limits.low} to {limits.high}"
        problem[outside] = (
            f"{field.onefile}: "
            + _shorten(numbers[outside].map(str).astype("string"))
            + f" is out of range for {limits.sql_type} ({where})"
        )
        number &= ~outside
    return numbers.where(number).astype("Int64")


def _parse_text(
    field: Field, limits: FieldLimits, values: pd.Series, present: pd.Series, problem: pd.Series
) -> pd.Series:
    kinds = _kinds(values)
    strings = kinds.eq(str)
    text = values.where(strings).astype("string")
    numbers = _whole_numbers(values.where(~strings), kinds.where(~strings))
    whole = numbers.notna()
    text[whole] = numbers[whole].map(str)
    _complain(problem, present & ~strings & ~whole, f"{field.onefile}: not text: ", values)
    unstorable = text_problems(text.astype(object))
    bad = unstorable.notna()
    if bad.any():
        problem[bad] = f"{field.onefile}: " + unstorable[bad] + ": " + _shorten(_as_json(text[bad]))
    if limits.length is not None:
        lengths = text.str.strip().str.len()
        long = (lengths > limits.length).fillna(False).astype(bool) & ~bad
        problem[long] = (
            f"{field.onefile}: "
            + lengths[long].astype("string")
            + f" characters, longer than {describe(limits.length_column)} ({limits.length}): "
            + _shorten(_as_json(text[long]))
        )
    return text


def _complain(problem: pd.Series, bad: pd.Series, prefix: str, values: pd.Series) -> None:
    """Set ``problem`` to ``prefix`` + the value as (shortened) JSON where ``bad``."""
    if bad.any():
        problem[bad] = prefix + _shorten(_as_json(values[bad]))


def _as_json(values: pd.Series) -> pd.Series:
    return values.map(lambda value: json.dumps(value, default=str)).astype("string")


def _shorten(text: pd.Series) -> pd.Series:
    """Text cut to :data:`_SHOWN_CHARACTERS`, saying how long it was when cut."""
    lengths = text.str.len()
    cut = text.str.slice(0, _SHOWN_CHARACTERS) + "… (" + lengths.astype("string") + " characters)"
    return text.where(lengths <= _SHOWN_CHARACTERS, cut)


def _source_ids(ids: pd.Series) -> pd.Series:
    """A reject's ``source_id``: the ID as sent, text as is and anything else as JSON
    (a whole number as its digits), and so is text that cannot be stored (its ASCII JSON,
    ``"12\\u0000"`` with the quotes)."""
    as_is = ids.map(type).eq(str) & text_problems(ids).isna()
    shown = ids.where(~as_is).map(lambda v: json.dumps(v, default=str), na_action="ignore")
    return ids.where(as_is, shown).astype("string")


def _newest_copy(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per ID: the last by ``last_modified`` where the entity has it, else the last
    seen (later pages were read later); rows stay in the order they arrived."""
    ordered = frame
    if "last_modified" in frame.columns:
        ordered = frame.sort_values("last_modified", kind="stable", na_position="first")
    return ordered.drop_duplicates(key, keep="last").sort_index().reset_index(drop=True)
