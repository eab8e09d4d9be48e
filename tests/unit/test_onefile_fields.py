"""OneFile rows -> typed frames and rejects (docs/architecture.md, "Parsed OneFile frames")."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from picsweb_sync.onefile_fields import (
    ONEFILE_ENTITY,
    ONEFILE_NAMES,
    parse_assessors,
    parse_learners,
    parse_learning_aims,
    parse_reviews,
)

LEARNER = {
    "ID": 100001,
    "FirstName": "Amelia",
    "LastName": "Smith",
    "Email": "amelia@example.com",
    "MISID": "T1",
    "Role": 1,
    "OrganisationID": 5740,
    "DefaultAssessorID": 100050,
    "ULN": "1234567890",
    "StartOn": None,
    "PlannedEndDate": None,
    "Progress": 12.5,
    "LastModified": "2026-03-28T14:23:29.195Z",
}
AIM = {
    "ID": 500001,
    "UserID": 100001,
    "StandardID": 196,
    "Code": "196AS",
    "Title": "Adult Care Worker",
    "Progress": 50.0,
    "RegistrationNumber": "REG1",
    "RegistrationDate": "2025-06-01T23:30:00Z",
    "CertificateAppliedDate": "2026-01-15T23:30:00Z",
    "CertificateReceivedDate": None,
    "TotalElements": 20,
    "ElementsDone": 10,
}
REVIEW = {
    "ID": 900001,
    "LearnerID": 100001,
    "AssessorID": 100050,
    "EmployerID": None,
    "ScheduledFor": "2026-06-10T23:30:00Z",
    "Status": 2,
    "CreatedOn": "2026-05-01T10:00:00Z",
    "StartedOn": "2026-06-10T23:35:00.250Z",
    "AssessorSignedOn": None,
    "LearnerSignedOn": None,
    "EmployerSignedOn": None,
    "EndTime": None,
    "VisitID": 700001,
}
ASSESSOR = {"ID": 100050, "FirstName": "Ann", "LastName": "Lee", "Email": "ann@x.org", "Role": 5}


def test_learners_frame_columns_types_and_values():
    parsed = parse_learners([LEARNER], 5740)
    frame = parsed.frame
    assert list(frame.columns) == [
        "learner_id", "organisation_id", "first_name", "last_name", "email", "mis_id", "uln",
        "default_assessor_id", "last_modified", "raw",
    ]  # fmt: skip
    assert {name: str(frame[name].dtype) for name in frame.columns} == {
        "learner_id": "Int64",
        "organisation_id": "Int64",
        "first_name": "string",
        "last_name": "string",
        "email": "string",
        "mis_id": "string",
        "uln": "string",
        "default_assessor_id": "Int64",
        "last_modified": "datetime64[us]",
        "raw": "string",
    }
    row = frame.iloc[0].to_dict()
    assert row["learner_id"] == 100001
    assert row["organisation_id"] == 5740
    assert row["uln"] == "1234567890"
    assert row["default_assessor_id"] == 100050
    assert row["last_modified"] == pd.Timestamp(2026, 3, 28, 14, 23, 29, 195000)
    assert parsed.rejects.empty
    assert list(parsed.rejects.columns) == ["entity", "source_id", "reason", "raw"]


def test_assessors_frame():
    frame = parse_assessors([ASSESSOR], 5741).frame
    assert list(frame.columns) == [
        "assessor_id", "organisation_id", "first_name", "last_name", "email", "role", "raw",
    ]  # fmt: skip
    assert frame.iloc[0][["assessor_id", "organisation_id", "email", "role"]].tolist() == [
        100050, 5741, "ann@x.org", 5,
    ]  # fmt: skip


def test_learning_aims_dates_are_uk_dates():
    frame = parse_learning_aims([AIM], 5740).frame
    assert list(frame.columns) == [
        "learning_aim_id", "organisation_id", "learner_id", "code", "title", "total_elements",
        "elements_done", "registration_number", "registration_date", "certificate_applied_date",
        "certificate_received_date", "raw",
    ]  # fmt: skip
    row = frame.iloc[0]
    assert row["registration_date"] == dt.date(2025, 6, 2)  # 23:30 UTC in summer: next UK day
    assert row["certificate_applied_date"] == dt.date(2026, 1, 15)  # in winter: same day
    assert row["certificate_received_date"] is None
    assert frame["registration_date"].dtype == object
    assert [row["total_elements"], row["elements_done"], row["code"]] == [20, 10, "196AS"]


def test_reviews_instants_are_naive_utc():
    frame = parse_reviews([REVIEW], 5740).frame
    assert list(frame.columns) == [
        "review_id", "organisation_id", "learner_id", "assessor_id", "scheduled_for", "status",
        "started_on", "learner_signed_on", "end_time", "visit_id", "raw",
    ]  # fmt: skip
    row = frame.iloc[0]
    assert row["scheduled_for"] == pd.Timestamp(2026, 6, 10, 23, 30)
    assert row["started_on"] == pd.Timestamp(2026, 6, 10, 23, 35, 0, 250000)
    assert pd.isna(row["learner_signed_on"])
    assert [row["review_id"], row["status"], row["visit_id"]] == [900001, 2, 700001]


def test_raw_is_the_row_as_sorted_json():
    row = {"ID": 7, "Email": "a@b.c", "FirstName": "Zoë"}
    frame = parse_assessors([row], 1).frame
    assert frame["raw"].tolist() == ['{"Email": "a@b.c", "FirstName": "Zo\\u00eb", "ID": 7}']


MISSING = object()  # drop the field from the row
ENTITY_OF = {
    parse_learners: "learners",
    parse_assessors: "assessors",
    parse_learning_aims: "learning_aims",
    parse_reviews: "reviews",
}


@pytest.mark.parametrize(
    ("parse", "good", "spoil", "source_id", "reason"),
    [
        pytest.param(
            parse_learners, LEARNER, {"ID": MISSING}, None, "ID: missing", id="missing-id"
        ),
        pytest.param(parse_reviews, REVIEW, {"ID": None}, None, "ID: missing", id="null-id"),
        pytest.param(
            parse_assessors,
            ASSESSOR,
            {"ID": "abc"},
            "abc",
            'ID: not a whole number: "abc"',
            id="text-id",
        ),
        pytest.param(
            parse_learners,
            LEARNER,
            {"LastModified": "2026-02-30T25:61:00Z"},
            "100001",
            'LastModified: not an ISO-8601 instant: "2026-02-30T25:61:00Z"',
            id="learner-bad-date",
        ),
        pytest.param(
            parse_learners,
            LEARNER,
            {"DefaultAssessorID": "twelve"},
            "100001",
            'DefaultAssessorID: not a whole number: "twelve"',
            id="learner-text-number",
        ),
        pytest.param(
            parse_learning_aims,
            AIM,
            {"RegistrationDate": "01/06/2025"},
            "500001",
            'RegistrationDate: not an ISO-8601 instant: "01/06/2025"',
            id="aim-uk-style-date",
        ),
        pytest.param(
            parse_learning_aims,
            AIM,
            {"TotalElements": "twelve"},
            "500001",
            'TotalElements: not a whole number: "twelve"',
            id="aim-text-number",
        ),
        pytest.param(
            parse_learning_aims,
            AIM,
            {"ElementsDone": 3.5},
            "500001",
            "ElementsDone: not a whole number: 3.5",
            id="aim-fraction",
        ),
        pytest.param(
            parse_learning_aims,
            AIM,
            {"ElementsDone": True},
            "500001",
            "ElementsDone: not a whole number: true",
            id="aim-bool",
        ),
        pytest.param(
            parse_reviews,
            REVIEW,
            {"AssessorID": "twelve", "StartedOn": "soon"},
            "900001",
            'AssessorID: not a whole number: "twelve"; StartedOn: not an ISO-8601 instant: "soon"',
            id="review-two-problems",
        ),
        pytest.param(
            parse_reviews,
            REVIEW,
            {"ScheduledFor": None},
            "900001",
            "ScheduledFor: missing",
            id="review-without-scheduled-for",
        ),
    ],
)
def test_rejects_name_the_field_and_value(parse, good, spoil, source_id, reason):
    bad = {key: value for key, value in {**good, **spoil}.items() if value is not MISSING}
    other = {**good, "ID": 1}
    parsed = parse([bad, other], 5740)
    assert parsed.rejects.drop(columns="raw").to_dict("records") == [
        {"entity": ENTITY_OF[parse], "source_id": source_id, "reason": reason}
    ]
    assert parsed.rejects["raw"].tolist() == [json.dumps(bad, sort_keys=True)]
    assert parsed.frame.iloc[:, 0].tolist() == [1]  # the rest of the extract goes on


def test_reject_keeps_entity_and_raw_json():
    row = {**AIM, "TotalElements": "twelve"}
    rejects = parse_learning_aims([row], 5740).rejects
    assert rejects["entity"].tolist() == ["learning_aims"]
    assert rejects["raw"].iloc[0].startswith('{"CertificateAppliedDate": "2026-01-15T23:30:00Z"')
    assert '"TotalElements": "twelve"' in rejects["raw"].iloc[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(12, 12, id="int"),
        pytest.param(12.0, 12, id="integral-float"),
        pytest.param("12", 12, id="quoted"),
        pytest.param(" 12 ", 12, id="quoted-padded"),
        pytest.param(None, pd.NA, id="null"),
        pytest.param(9007199254740993, 9007199254740993, id="beyond-float-precision"),
    ],
)
def test_whole_numbers_accepted(value, expected):
    frame = parse_learning_aims([{**AIM, "TotalElements": value}], 5740).frame
    assert frame["total_elements"].astype(object).tolist() == [expected]


def test_text_field_takes_a_number_as_text():
    frame = parse_learners([{**LEARNER, "ULN": 1234567890}], 5740).frame
    assert frame["uln"].tolist() == ["1234567890"]


def test_duplicate_learner_keeps_newest_by_last_modified():
    newer = {**LEARNER, "Email": "new@example.com", "LastModified": "2026-03-28T15:00:00Z"}
    older = {**LEARNER, "Email": "old@example.com", "LastModified": "2026-03-28T09:00:00Z"}
    parsed = parse_learners([newer, older], 5740)
    assert parsed.frame["email"].tolist() == ["new@example.com"]
    assert parsed.duplicates == 1
    assert parsed.rejects.empty


def test_duplicate_review_keeps_last_seen():
    first = {**REVIEW, "Status": 1}
    second = {**REVIEW, "Status": 3}
    other = {**REVIEW, "ID": 900002, "Status": 2}
    parsed = parse_reviews([first, other, second], 5740)
    assert parsed.frame[["review_id", "status"]].values.tolist() == [[900002, 2], [900001, 3]]
    assert parsed.duplicates == 1


def test_malformed_copy_of_a_duplicate_is_a_reject_and_the_good_copy_kept():
    bad = {**AIM, "RegistrationDate": "nope"}
    parsed = parse_learning_aims([AIM, bad], 5740)
    assert parsed.frame["learning_aim_id"].tolist() == [500001]
    assert parsed.rejects["source_id"].tolist() == ["500001"]
    assert parsed.duplicates == 0


def test_empty_extract_has_the_columns():
    parsed = parse_reviews([], 5740)
    assert parsed.frame.empty and parsed.rejects.empty
    assert "scheduled_for" in parsed.frame.columns
    assert str(parsed.frame["review_id"].dtype) == "Int64"


def test_reverse_mapping_for_onefile_updates():
    names = ONEFILE_NAMES["learning_aims"]
    assert names["registration_number"] == "RegistrationNumber"
    assert names["registration_date"] == "RegistrationDate"
    assert names["certificate_applied_date"] == "CertificateAppliedDate"
    assert names["certificate_received_date"] == "CertificateReceivedDate"
    assert ONEFILE_ENTITY["learning_aims"] == "LearningAim"
