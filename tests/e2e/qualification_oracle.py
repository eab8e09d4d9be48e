"""What rules 1-4 must leave behind, computed the slow, obvious way: plain loops over the
generator's rows, written from the contract, sharing no code with the pandas merge.

The decisions the contract leaves open follow the merge module's documented choices:
codes match trimmed and case-folded; text is compared and written trimmed; a null
OneFile element count changes nothing; an ambiguous code or an aim claimed twice links
nothing.
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")
FILL_FIELDS = (
    # PICSWeb column, OneFile field, is a date
    ("registration_number", "RegistrationNumber", False),
    ("registration_date", "RegistrationDate", True),
    ("certificate_applied_date", "CertificateAppliedDate", True),
    ("certificate_received_date", "CertificateReceivedDate", True),
)
ELEMENTS = (("total_elements", "TotalElements"), ("elements_done", "ElementsDone"))


def uk_date(instant: str | None) -> date | None:
    if instant is None:
        return None
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UK).date()


def blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _norm(value):
    return value.strip() if isinstance(value, str) else value


def _code(value):
    return value.strip().casefold() if isinstance(value, str) and value.strip() else None


def links(picsweb: dict, learning_aims: list[dict]) -> dict[int, int]:
    """learning aim ID -> tq_id, by ID first, else by a unique code of a linked trainee."""
    aims = {a["ID"]: a for a in learning_aims}
    claims: dict[int, list[int]] = {}
    for q in picsweb["trainee_qualification"]:
        if q["onefile_learning_aim_id"] is not None:
            claims.setdefault(q["onefile_learning_aim_id"], []).append(q["tq_id"])
    result = {aim: tqs[0] for aim, tqs in claims.items() if aim in aims and len(tqs) == 1}
    trainee_of = {
        t["onefile_learner_id"]: t["trainee_id"]
        for t in picsweb["trainee"]
        if t["onefile_learner_id"] is not None
    }
    candidates = []
    for aim in learning_aims:
        trainee = trainee_of.get(aim["UserID"])
        if aim["ID"] in claims or trainee is None or _code(aim["Code"]) is None:
            continue
        for q in picsweb["trainee_qualification"]:
            if (
                q["trainee_id"] == trainee
                and q["onefile_learning_aim_id"] is None
                and _code(q["qualification_code"]) == _code(aim["Code"])
            ):
                candidates.append((aim["ID"], q["tq_id"]))
    for aim_id, tq_id in candidates:
        if [a for a, _ in candidates].count(aim_id) == 1 and [t for _, t in candidates].count(
            tq_id
        ) == 1:
            result[aim_id] = tq_id
    return result


def expected_after_sync(picsweb: dict, learning_aims: list[dict]) -> tuple[dict, dict]:
    """(tq_id -> expected PICSWeb row, aim ID -> expected OneFile row) after one sync."""
    quals = {q["tq_id"]: copy.deepcopy(q) for q in picsweb["trainee_qualification"]}
    aims = {a["ID"]: copy.deepcopy(a) for a in learning_aims}
    with_units = {u["tq_id"] for u in picsweb["trainee_qualification_unit"]}
    for aim_id, tq_id in links(picsweb, learning_aims).items():
        q, a = quals[tq_id], aims[aim_id]
        q["onefile_learning_aim_id"] = aim_id
        if tq_id not in with_units:
            for column, field in ELEMENTS:
                if a[field] is not None:
                    q[column] = a[field]
        for column, field, is_date in FILL_FIELDS:
            onefile = uk_date(a[field]) if is_date else _norm(a[field])
            if not blank(onefile):
                q[column] = (
                    onefile if blank(q[column]) or _norm(q[column]) != onefile else q[column]
                )
            elif not blank(q[column]):
                value = _norm(q[column])
                a[field] = f"{value.isoformat()}T00:00:00Z" if is_date else value
    return quals, aims
