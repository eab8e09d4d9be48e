"""OneFile JSON rows -> typed DataFrames (the staging columns) + rejects.

The OneFile field names of ``shared/contract/onefile-api.md`` live here and nowhere else,
the **[assumed]** ones included (``Code``, ``Title``, ``CertificateReceivedDate``,
``TotalElements``, ``ElementsDone``): a deployment whose OneFile spells them differently
corrects :data:`FIELDS` and nothing else.

A row is parsed or rejected as a whole: a row without an ``ID``, with a date that is not an
ISO-8601 instant, or with text in a number field is not in ``frame`` but in ``rejects``,
with a reason naming each bad field and its value, so nothing half-parsed is ever written.

Decisions the contract leaves open:
- a number field accepts a JSON number with no fraction (``12``, ``12.0``) or digits in a
  string (``"12"``: some clients quote numbers); ``"twelve"``, ``3.5`` and ``true`` are bad;
- an instant without a zone is UTC (the only zone OneFile documents); ``""`` is unset;
- a text field takes any JSON scalar as text (a number ``123`` is ``"123"``);
- the same ``ID`` twice in one extract (a page boundary that moved while paging) keeps one
  row: the last by ``LastModified`` where the entity has it, else the last seen. The other
  copies are **not** rejects (the entity is synced, from its newest copy); they are counted
  in ``Parsed.duplicates``. A copy that is itself malformed is a reject like any other row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from picsweb_sync.ukdates import parse_instants, uk_date

Kind = Literal["id", "int", "text", "instant", "uk_date"]


@dataclass(frozen=True)
class Field:
    """One OneFile JSON field and the staging column it becomes."""

    onefile: str
    column: str
    kind: Kind
    required: bool = False


def _id(onefile: str, column: str) -> Field:
    return Field(onefile, column, "id", required=True)


FIELDS: dict[str, tuple[Field, ...]] = {
    "learners": (
        _id("ID", "learner_id"),
        Field("FirstName", "first_name", "text"),
        Field("LastName", "last_name", "text"),
        Field("Email", "email", "text"),
        Field("MISID", "mis_id", "text"),
        Field("ULN", "uln", "text"),
        Field("DefaultAssessorID", "default_assessor_id", "int"),
        Field("LastModified", "last_modified", "instant"),
    ),
    "assessors": (
        _id("ID", "assessor_id"),
        Field("FirstName", "first_name", "text"),
        Field("LastName", "last_name", "text"),
        Field("Email", "email", "text"),
        Field("Role", "role", "int"),
    ),
    "learning_aims": (
        _id("ID", "learning_aim_id"),
        Field("UserID", "learner_id", "int"),
        Field("Code", "code", "text"),  # [assumed]
        Field("Title", "title", "text"),  # [assumed]
        Field("TotalElements", "total_elements", "int"),  # [assumed]
        Field("ElementsDone", "elements_done", "int"),  # [assumed]
        Field("RegistrationNumber", "registration_number", "text"),
        Field("RegistrationDate", "registration_date", "uk_date"),
        Field("CertificateAppliedDate", "certificate_applied_date", "uk_date"),
        Field("CertificateReceivedDate", "certificate_received_date", "uk_date"),  # [assumed]
    ),
    "reviews": (
        _id("ID", "review_id"),
        Field("LearnerID", "learner_id", "int"),
        Field("AssessorID", "assessor_id", "int"),
        # Required: a PICSWeb review cannot exist without its scheduled date.
        Field("ScheduledFor", "scheduled_for", "instant", required=True),
        Field("Status", "status", "int"),
        Field("StartedOn", "started_on", "instant"),
        Field("LearnerSignedOn", "learner_signed_on", "instant"),
        Field("EndTime", "end_time", "instant"),
        Field("VisitID", "visit_id", "int"),
    ),
}

# The OneFile entity (URL path) each parsed entity is read from and updated through.
ONEFILE_ENTITY = {
    "learners": "User",
    "assessors": "User",
    "learning_aims": "LearningAim",
    "reviews": "Review",
}

# staging column -> OneFile JSON name, per entity: how a change is sent back to OneFile,
# e.g. ONEFILE_NAMES["learning_aims"]["registration_number"] == "RegistrationNumber".
ONEFILE_NAMES: dict[str, dict[str, str]] = {
    entity: {field.column: field.onefile for field in fields} for entity, fields in FIELDS.items()
}

REJECT_COLUMNS = ["entity", "source_id", "reason", "raw"]
_WHOLE_NUMBER = r"^\s*([+-]?\d+)(?:\.0*)?\s*$"


@dataclass(frozen=True)
class Parsed:
    """A parsed extract: good rows (``frame``), bad rows with reasons (``rejects``), and how
    many surplus copies of an ID were dropped (``duplicates``)."""

    frame: pd.DataFrame
    rejects: pd.DataFrame
    duplicates: int = 0


def parse_learners(rows: list[dict[str, Any]], organisation_id: int) -> Parsed:
    """OneFile ``User`` rows of role 1 -> the learners frame."""
    return parse_rows("learners", rows, organisation_id)


def parse_assessors(rows: list[dict[str, Any]], organisation_id: int) -> Parsed:
    """OneFile ``User`` rows of the assessor roles -> the assessors frame."""
    return parse_rows("assessors", rows, organisation_id)


def parse_learning_aims(rows: list[dict[str, Any]], organisation_id: int) -> Parsed:
    """OneFile ``LearningAim`` rows -> the learning aims frame (dates as UK dates)."""
    return parse_rows("learning_aims", rows, organisation_id)


def parse_reviews(rows: list[dict[str, Any]], organisation_id: int) -> Parsed:
    """OneFile ``Review`` rows -> the reviews frame (instants as naive UTC)."""
    return parse_rows("reviews", rows, organisation_id)


def parse_rows(entity: str, rows: list[dict[str, Any]], organisation_id: int) -> Parsed:
    """Parse ``rows`` of ``entity`` (a key of :data:`FIELDS`) column by column."""
    fields = FIELDS[entity]
    source = pd.DataFrame(rows, dtype=object, index=pd.RangeIndex(len(rows)))
    raw = pd.Series(
        [json.dumps(row, sort_keys=True, default=str) for row in rows],
        index=source.index,
        dtype="string",
    )
    columns: dict[str, pd.Series] = {}
    reason = pd.Series(pd.NA, index=source.index, dtype="string")
    for field in fields:
        values = source.get(field.onefile, pd.Series(None, index=source.index, dtype=object))
        columns[field.column], problem = _parse_field(field, values)
        reason = reason.where(problem.isna(), (reason + "; ").fillna("") + problem)
    bad = reason.notna()
    id_field = fields[0]
    rejects = pd.DataFrame(
        {
            "entity": pd.Series(entity, index=source.index, dtype="string"),
            "source_id": _as_text(
                source.get(id_field.onefile, pd.Series(None, index=source.index, dtype=object))
            ),
            "reason": reason,
            "raw": raw,
        }
    )[bad].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            id_field.column: columns.pop(id_field.column),
            "organisation_id": pd.Series(organisation_id, index=source.index, dtype="Int64"),
            **columns,
            "raw": raw,
        }
    )[~bad]
    kept = _newest_copy(frame, id_field.column)
    return Parsed(kept, rejects, duplicates=len(frame) - len(kept))


def _parse_field(field: Field, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(typed column, problem text or NA per row) for one field."""
    present = values.notna()
    if field.kind in ("id", "int"):
        parsed = _as_text(values).str.extract(_WHOLE_NUMBER)[0].astype("Int64")
        bad, complaint = present & parsed.isna(), "not a whole number"
    elif field.kind == "text":
        parsed, bad, complaint = _as_text(values), pd.Series(False, index=values.index), ""
    else:
        parsed, bad = parse_instants(values)
        complaint = "not an ISO-8601 instant"
        if field.kind == "uk_date":
            parsed = uk_date(parsed)
    problem = pd.Series(pd.NA, index=values.index, dtype="string")
    if bad.any():
        shown = values[bad].map(lambda value: json.dumps(value, default=str))
        problem[bad] = f"{field.onefile}: {complaint}: " + shown.astype("string")
    missing = field.required & parsed.isna() & ~bad
    problem[missing] = f"{field.onefile}: missing"
    return parsed, problem


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype("string")


def _newest_copy(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per ID: the last by ``last_modified`` where the entity has it, else the last
    seen (later pages were read later); rows stay in the order they arrived."""
    ordered = frame
    if "last_modified" in frame.columns:
        ordered = frame.sort_values("last_modified", kind="stable", na_position="first")
    return ordered.drop_duplicates(key, keep="last").sort_index().reset_index(drop=True)
