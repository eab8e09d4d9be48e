"""The OneFile field checks: for each field the sync reads, in how many sampled rows it is
present, its JSON types and how many rows it would make a reject (``parse_rows``, as the
extract judges them); and the fields the sync writes (:func:`written_fields`).

The field names and what makes a row a reject come from :mod:`picsweb_sync.onefile.fields`
itself (``FIELDS``, ``parse_rows``), and a review create's bodies from
:mod:`picsweb_sync.onefile.payloads`, as the push sends them: the preflight judges a page
exactly as the extract would, and names what the push would write.
"""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace
from typing import Any

from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.payloads import review_create_payload
from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.onefile_pages import Sample
from picsweb_sync.rules import qualifications

# Fields the sync only keeps in staging (no rule reads them): their absence is a warning,
# not blocking. Every other field decides what is matched or written.
STAGED_ONLY = {
    "learners": {"FirstName", "LastName", "Email", "MISID", "ULN", "DefaultAssessorID"},
    "assessors": {"FirstName", "LastName", "Role"},
    "learning_aims": {"Title"},
    "reviews": {"Status"},
}


def written_fields() -> dict[str, list[str]]:
    """The OneFile fields the sync writes: learning-aim updates (rules 2-4), and the Visit
    and Review bodies of an upload as ``review_create_payload`` builds them."""
    sample = SimpleNamespace(
        learner_id=1,
        organisation_id=1,
        visit_from="",
        visit_to="",
        visit_type_id=1,
        assessor_id=1,
        scheduled_for="",
    )
    payload = review_create_payload(sample)
    names = onefile_fields.ONEFILE_NAMES["learning_aims"]
    return {
        "LearningAim": [names[column] for column, _, _ in qualifications.FILL_RULES],
        "Visit": list(payload["visit"]),
        # push_reviews adds the VisitID of the visit just created
        "Review": [*payload["review"], "VisitID"],
    }


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def field_checks(entity: str, sample: Sample) -> list[Check]:
    """For every field the sync reads from ``entity``: present in how many rows, its JSON
    types, and how many rows it would make a reject (``parse_rows``, as the extract)."""
    rows = [row for _, page in sample.rows.get(entity, []) for row in page]
    objects = [row for row in rows if isinstance(row, dict)]
    parsed = sample.parsed(entity)
    reasons = parsed.rejects["reason"].astype(str).tolist()
    read = {f.onefile for f in onefile_fields.FIELDS[entity]}
    unread = sorted({key for row in objects for key in row} - read)
    written = set(written_fields().get(onefile_fields.ONEFILE_ENTITY[entity], []))
    checks: list[Check] = []
    if not objects:
        return [
            Check(
                f"onefile.fields.{entity}",
                Level.WARNING,
                f"OneFile {entity} fields",
                "no rows on the pages read: the fields could not be checked",
                "run the preflight again once OneFile holds such rows (or with another "
                "organisation)",
            )
        ]
    for spec in onefile_fields.FIELDS[entity]:
        name = spec.onefile
        present = [row[name] for row in objects if name in row]
        types = Counter(_json_type(v) for v in present)
        typed = ", ".join(f"{t} ({n})" for t, n in sorted(types.items())) or "none"
        bad = [r for r in reasons if re.search(rf"(^|; ){re.escape(name)}:", r)]
        use = "read and written" if name in written else "read"
        title = f"OneFile field {onefile_fields.ONEFILE_ENTITY[entity]}.{name} of {entity} ({use})"
        details = {
            "rows": len(objects),
            "present": len(present),
            "types": dict(types),
            "rejects": len(bad),
        }
        if not present:
            level = Level.WARNING if name in STAGED_ONLY.get(entity, ()) else Level.BLOCKING
            checks.append(
                Check(
                    f"onefile.field.{entity}.{name}",
                    level,
                    title,
                    f"absent from all {len(objects)} rows; OneFile sent fields the sync does "
                    f"not read: {', '.join(unread) or 'none'}",
                    "if OneFile names it otherwise (one of those?), correct JSON_FIELDS in "
                    "include/picsweb_sync/onefile/names.py: without it the sync reads it "
                    "as empty on every row"
                    + (
                        "" if level is Level.WARNING else ", so it syncs nothing or the wrong thing"
                    ),
                    {**details, "unread_fields": unread},
                )
            )
            continue
        finding = f"in {len(present)} of {len(objects)} rows; {typed}"
        level, advice = Level.OK, "nothing to do"
        if len(present) < len(objects):
            level = Level.WARNING
            finding += f"; absent from {len(objects) - len(present)} rows (read as empty)"
            advice = "check whether OneFile leaves the field out when it is empty"
        if bad:
            level = Level.WARNING
            finding += f"; {len(bad)} row(s) would be rejects, e.g. {bad[0]}"
            advice = (
                "correct those rows in OneFile: each run sets them aside (sync_reject) "
                "and syncs the rest"
            )
        checks.append(
            Check(f"onefile.field.{entity}.{name}", level, title, finding, advice, details)
        )
    checks.append(_rejects_check(entity, len(rows), reasons, parsed.duplicates))
    return checks


def _rejects_check(entity: str, rows: int, reasons: list[str], duplicates: int) -> Check:
    if not reasons:
        return Check(
            f"onefile.rejects.{entity}",
            Level.OK,
            f"OneFile {entity} rows",
            f"all {rows} rows on the pages read would be synced",
            details={"rows": rows, "rejects": 0, "duplicates": duplicates},
        )
    level = Level.BLOCKING if len(reasons) == rows else Level.WARNING
    return Check(
        f"onefile.rejects.{entity}",
        level,
        f"OneFile {entity} rows",
        f"{len(reasons)} of {rows} rows on the pages read would be set aside, e.g. "
        + "; ".join(dict.fromkeys(reasons[:3])),
        "every row would be set aside: see the field checks above"
        if level is Level.BLOCKING
        else "correct those rows in OneFile (or the limits in picsweb_tables.py, if a "
        "PICSWeb column is really longer); the rest syncs",
        {"rows": rows, "rejects": len(reasons), "duplicates": duplicates},
    )


def written_check() -> Check:
    fields = written_fields()
    return Check(
        "onefile.fields.written",
        Level.OK,
        "OneFile fields the sync writes",
        f"LearningAim update: {', '.join(fields['LearningAim'])} (checked above, they are "
        f"read too); Review create: {', '.join(fields['Review'])} (read on Review rows "
        f"above); Visit create: {', '.join(fields['Visit'])} (OneFile has no Visit search, "
        "so these are sent as the contract names them, unchecked: nothing is written here)",
        details=fields,
    )
