"""The drift report's rules (issue 22): every difference left between OneFile and PICSWeb
gets one reason from the closed list, computed by the rules' own functions.

The world: OneFile learner 100 (trainee 1) with aim 500 (qualification 10) and review 900
(PICSWeb review 70), all in step. Each case changes one thing, on one side, and says the
one row the report must give: entity, field, reason. A case that needs the run's evidence
(a reject, a planned change, an outbox row) gives it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from picsweb_sync.onefile.fields import (
    parse_assessors,
    parse_learners,
    parse_learning_aims,
    parse_reviews,
)
from picsweb_sync.rules import drift
from picsweb_sync.rules.drift import RunEvidence, counts_by_reason, drift_report
from tests.merge.frames import officers, qualifications, reviews, trainees, units

D, T = dt.date, dt.time
ORG = 5740
WINDOW = (dt.datetime(2026, 2, 1), dt.datetime(2026, 3, 1))  # noqa: DTZ001 (naive UTC, as the sync holds instants)

LEARNER = {"ID": 100, "FirstName": "Tom", "LastName": "T", "MISID": "1"}
AIM = {
    "ID": 500,
    "UserID": 100,
    "Code": "196AS",
    "TotalElements": 10,
    "ElementsDone": 4,
    "RegistrationNumber": "R1",
    "RegistrationDate": "2026-01-05T00:00:00Z",
}
REVIEW = {
    "ID": 900,
    "LearnerID": 100,
    "AssessorID": 300,
    "ScheduledFor": "2026-02-10T10:00:00Z",
    "StartedOn": "2026-02-10T10:05:00Z",
    "VisitID": 4000,
}
TRAINEE = {"trainee_id": 1, "onefile_learner_id": 100}
QUALIFICATION = {
    "tq_id": 10,
    "trainee_id": 1,
    "qualification_code": "196AS",
    "onefile_learning_aim_id": 500,
    "total_elements": 10,
    "elements_done": 4,
    "registration_number": "R1",
    "registration_date": D(2026, 1, 5),
}
PICSWEB_REVIEW = {
    "review_id": 70,
    "trainee_id": 1,
    "scheduled_date": D(2026, 2, 10),
    "start_time": T(10, 0),
    "officer_id": 1,
    "attended": "Y",
    "actual_date": D(2026, 2, 10),
    "onefile_system_id": 900,
}


def report(
    *,
    learners: list[dict] | None = None,
    aims: list[dict] | None = None,
    onefile_reviews: list[dict] | None = None,
    trainee_rows: list[dict] | None = None,
    quals: list[dict] | None = None,
    unit_rows: list[dict] | None = None,
    picsweb: list[dict] | None = None,
    evidence: dict[str, Any] | None = None,
) -> pd.DataFrame:
    return drift_report(
        learners=parse_learners(learners or [LEARNER], ORG).frame,
        learning_aims=_per_organisation([AIM] if aims is None else aims),
        reviews=parse_reviews([REVIEW] if onefile_reviews is None else onefile_reviews, ORG).frame,
        assessors=parse_assessors([{"ID": 300, "Email": "a@x.org"}], ORG).frame,
        trainees=trainees(*(trainee_rows or [TRAINEE])),
        qualifications=qualifications(*([QUALIFICATION] if quals is None else quals)),
        units=units(*(unit_rows or [])),
        officers=officers({"officer_id": 1, "onefile_id": 300}, {"officer_id": 2}),
        picsweb_reviews=reviews(*([PICSWEB_REVIEW] if picsweb is None else picsweb)),
        evidence=RunEvidence(window=WINDOW, **(evidence or {})),
    )


def _per_organisation(aims: list[dict]) -> pd.DataFrame:
    """Each aim staged by its organisation (``_org``, default 5740), as the extract tasks
    of two organisations would stage one aim twice."""
    frames = [
        parse_learning_aims(
            [{k: v for k, v in aim.items() if k != "_org"}], aim.get("_org", ORG)
        ).frame
        for aim in aims
    ]
    return pd.concat(frames, ignore_index=True) if frames else parse_learning_aims([], ORG).frame


def rows(found: pd.DataFrame) -> list[tuple[str, str, str]]:
    return sorted(zip(found["entity"], found["field"], found["reason"], strict=True))


def planned(table: str, key: int, field: str) -> pd.DataFrame:
    return pd.DataFrame({"table": [table], "key": [key], "field": [field]})


def rejects(entity: str, source_id: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"entity": [entity], "source_id": [source_id], "reason": [reason]})


def test_two_systems_in_step_differ_in_nothing():
    found = report()
    assert found.empty, found
    assert counts_by_reason(found) == dict.fromkeys(drift.REASONS, 0)


def _qual(**changes: Any) -> dict:
    return {"quals": [{**QUALIFICATION, **changes}]}


def _aim(**changes: Any) -> dict:
    return {"aims": [{**AIM, **changes}]}


def _review(**changes: Any) -> dict:
    return {"picsweb": [{**PICSWEB_REVIEW, **changes}]}


PLANNED_ELEMENTS = {"planned": planned("trainee_qualification", 10, "elements_done")}
CASES = [
    # rule 1
    ("units", {**_qual(elements_done=3), "unit_rows": [{"tqu_id": 1, "tq_id": 10}]}, None,
     [("qualification", "elements_done", "units_attached")]),
    ("onefile-null-count", _aim(ElementsDone=None), None,
     [("qualification", "elements_done", "rule_keeps_picsweb")]),
    ("planned-never-written", _qual(elements_done=3), PLANNED_ELEMENTS,
     [("qualification", "elements_done", "unexplained")]),
    ("edited-after-the-merge", _qual(elements_done=3), None,
     [("qualification", "elements_done", "changed_since")]),
    ("written-then-edited", _qual(elements_done=3),
     {**PLANNED_ELEMENTS, "audited": pd.DataFrame({"system": ["picsweb"], "entity": ["trainee_qualification"],
      "entity_key": ["10"], "field": ["elements_done"], "new_value": ["4"]})},
     [("qualification", "elements_done", "changed_since")]),
    ("load-refused-as-stale", _qual(elements_done=3),
     {**PLANNED_ELEMENTS, "refused": {"trainee_qualification": "run B loaded newer data"}},
     [("qualification", "elements_done", "changed_since")]),
    ("the-other-load-refused", _qual(elements_done=3),
     {**PLANNED_ELEMENTS, "refused": {"review": "run B loaded newer data"}},
     [("qualification", "elements_done", "unexplained")]),
    ("a-conflict", _qual(elements_done=3),
     {**PLANNED_ELEMENTS, "rejects": rejects("trainee_qualification", "10",
      "conflict: elements_done changed in PICSWeb since the merge read it (now 3, merge saw 2)")},
     [("qualification", "elements_done", "conflict")]),
    ("a-reject", _qual(registration_number="R0"),
     {"planned": planned("trainee_qualification", 10, "registration_number"),
      "rejects": rejects("trainee_qualification", "10", "registration_number too long")},
     [("qualification", "registration_number", "reject")]),
    # rules 2-4: blank vs null, trimming, case, dates
    ("blank-vs-null-is-no-difference", _aim(RegistrationNumber="  ", RegistrationDate=None)
     | {"quals": [{**QUALIFICATION, "registration_number": None, "registration_date": None}]}, None, []),
    ("trimmed-text-is-the-same", _qual(registration_number=" R1 "), None, []),
    ("case-is-a-difference", _qual(registration_number="r1"), None,
     [("qualification", "registration_number", "changed_since")]),
    ("picsweb-blank-to-onefile-pending", _aim(RegistrationNumber=None),
     {"pending_aims": pd.Series([500], dtype="Int64")},
     [("qualification", "registration_number", "pending_outbox")]),
    ("sent-to-onefile-is-in-step", _aim(RegistrationNumber=None),
     {"audited": pd.DataFrame({"system": ["onefile"], "entity": ["LearningAim"], "entity_key": ["500"],
      "field": ["RegistrationNumber"], "new_value": ["R1"]})}, []),
    ("a-date-sent-to-onefile-is-in-step", _aim(RegistrationDate=None),
     {"audited": pd.DataFrame({"system": ["onefile"], "entity": ["LearningAim"], "entity_key": ["500"],
      "field": ["RegistrationDate"], "new_value": ["2026-01-05T00:00:00Z"]})}, []),
    ("onefile-bound-dropped-by-the-push-recheck", _aim(RegistrationNumber=None),
     {"planned_onefile": pd.DataFrame({"entity_id": [500], "field": ["RegistrationNumber"]}),
      "recheck_dropped": pd.DataFrame({"entity_id": [500], "field": ["RegistrationNumber"],
                                       "reason": ["OneFile holds a value now"]})},
     [("qualification", "registration_number", "changed_since")]),
    ("onefile-bound-planned-never-sent", _aim(RegistrationNumber=None),
     {"planned_onefile": pd.DataFrame({"entity_id": [500], "field": ["RegistrationNumber"]})},
     [("qualification", "registration_number", "unexplained")]),
    # links
    ("unlinked-learner", {"trainee_rows": [{"trainee_id": 1}], "picsweb": [], "quals": []}, None,
     [("learner", "link", "not_linked")]),
    ("ambiguous-code", {"quals": [{"tq_id": 11, "trainee_id": 1, "qualification_code": "196as"},
                                  {"tq_id": 12, "trainee_id": 1, "qualification_code": "196AS"}]}, None,
     [("qualification", "link", "not_linked")]),
    ("no-qualification-with-the-code", {"quals": []}, None, [("qualification", "link", "not_linked")]),
    ("copies-that-differ", {"aims": [AIM, {**AIM, "ElementsDone": 5, "_org": 5741}]}, None,
     [("qualification", "copies", "changed_since")]),
    # rule 6
    ("officer-unmatched", {"onefile_reviews": [{**REVIEW, "AssessorID": 399}]}, None,
     [("review", "officer_id", "rule_keeps_picsweb")]),
    ("signed-date-not-in-onefile", _review(trainee_signed_date=D(2026, 2, 11)), None,
     [("review", "trainee_signed_date", "rule_keeps_picsweb")]),
    ("rescheduled-in-picsweb", _review(start_time=T(11, 0)), None,
     [("review", "start_time", "changed_since")]),
    ("rescheduled-download-off", _review(start_time=T(11, 0)), {"download": False},
     [("review", "start_time", "switched_off")]),
    ("dst-date-is-the-uk-date", {"onefile_reviews": [{**REVIEW, "ScheduledFor": "2026-03-28T23:30:00Z",
      "StartedOn": None}], "picsweb": [{**PICSWEB_REVIEW, "scheduled_date": D(2026, 3, 28),
      "start_time": T(23, 30), "attended": "U", "actual_date": None}]}, None, []),
    ("dst-summer-time", {"onefile_reviews": [{**REVIEW, "ScheduledFor": "2026-03-29T23:30:00Z",
      "StartedOn": None}], "picsweb": [{**PICSWEB_REVIEW, "scheduled_date": D(2026, 3, 30),
      "start_time": T(0, 30), "attended": "U", "actual_date": None}]}, None, []),
    ("not-in-picsweb-planned", {"picsweb": []},
     {"planned": planned("review", 900, "onefile_system_id")},
     [("review", "onefile_system_id", "unexplained")]),
    ("not-in-picsweb-download-off", {"picsweb": []}, {"download": False},
     [("review", "onefile_system_id", "switched_off")]),
    ("ours-awaiting-its-link", {"picsweb": []}, {"awaiting_link": pd.Series([4000], dtype="Int64")},
     [("review", "onefile_system_id", "pending_outbox")]),
    ("moved-out-of-the-window", {"onefile_reviews": []}, None,
     [("review", "onefile_system_id", "outside_window")]),
    ("gone-and-out-of-picsweb-window", {"onefile_reviews": [], "picsweb": [{**PICSWEB_REVIEW,
      "scheduled_date": D(2026, 4, 2)}]}, None, []),
    ("rejected-at-the-extract", {"onefile_reviews": []},
     {"rejects": rejects("reviews", "900", "ScheduledFor: not a date")},
     [("review", "onefile_system_id", "reject")]),
    # rule 5
    ("to-upload-pending", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1}]},
     {"pending_reviews": pd.Series([71], dtype="Int64")},
     [("review", "onefile_system_id", "pending_outbox")]),
    ("to-upload-rejected", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1}]},
     {"rejects": rejects("review", "71", "no officer with a OneFile ID")},
     [("review", "onefile_system_id", "reject")]),
    ("to-upload-upload-off", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1}]},
     {"upload": False}, [("review", "onefile_system_id", "switched_off")]),
    ("to-upload-added-after-the-plan", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1}]},
     None, [("review", "onefile_system_id", "changed_since")]),
    ("to-upload-planned-never-sent", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1}]},
     {"planned_uploads": pd.Series([71], dtype="Int64")},
     [("review", "onefile_system_id", "unexplained")]),
    ("created-by-this-push", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1}]},
     {"created_reviews": pd.DataFrame({"review_id": [71], "onefile_id": [901]})}, []),
    ("attended-picsweb-only", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 1,
      "attended": "Y"}]}, None, [("review", "onefile_system_id", "rule_keeps_picsweb")]),
    ("attended-picsweb-only-outside-window", {"picsweb": [PICSWEB_REVIEW, {"review_id": 71,
      "trainee_id": 1, "attended": "Y", "scheduled_date": D(2025, 1, 1)}]}, None, []),
    ("unlinked-trainee-review", {"trainee_rows": [TRAINEE, {"trainee_id": 2}],
     "picsweb": [PICSWEB_REVIEW, {"review_id": 71, "trainee_id": 2}]}, None,
     [("review", "onefile_system_id", "not_linked")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("world", "evidence", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_each_difference_gets_its_one_reason(world, evidence, expected):
    found = report(**world, evidence=evidence)
    assert rows(found) == sorted(expected), found.to_string()
    assert found["reason"].isin(drift.REASONS).all()


def test_every_reason_on_the_list_is_reached_by_a_case():
    reached = {reason for *_, expected in CASES for _, _, reason in expected}
    assert reached == set(drift.REASONS)


def test_unexplained_rows_come_first_and_counts_name_every_reason():
    found = report(
        **{"quals": [{**QUALIFICATION, "elements_done": 3, "registration_number": "R0"}]},
        evidence={
            "planned": planned("trainee_qualification", 10, "elements_done"),
        },
    )
    assert list(found["reason"]) == ["unexplained", "changed_since"]
    assert counts_by_reason(found) == {
        **dict.fromkeys(drift.REASONS, 0),
        "unexplained": 1,
        "changed_since": 1,
    }


def test_a_row_says_both_values_and_who():
    found = report(**_qual(elements_done=3), evidence=PLANNED_ELEMENTS)
    row = found.iloc[0]
    assert (row["learner_id"], row["trainee_id"], row["onefile_id"], row["picsweb_key"]) == (
        100,
        1,
        500,
        10,
    )
    assert (row["onefile_value"], row["picsweb_value"]) == ("4", "3")
