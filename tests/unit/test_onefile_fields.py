"""OneFile rows -> typed frames and rejects (docs/architecture.md, "Parsed OneFile frames")."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
import pytest
from sqlalchemy import BigInteger, Column, Integer, SmallInteger, String, UnicodeText

from picsweb_sync.onefile.column_limits import int_range, landing_columns, max_length
from picsweb_sync.onefile.fields import (
    FIELDS,
    ONEFILE_ENTITY,
    ONEFILE_NAMES,
    PICSWEB_COLUMNS,
    parse_assessors,
    parse_learners,
    parse_learning_aims,
    parse_reviews,
)
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import STAGING

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
    ],
)
def test_whole_numbers_accepted(value, expected):
    frame = parse_learning_aims([{**AIM, "TotalElements": value}], 5740).frame
    assert frame["total_elements"].astype(object).tolist() == [expected]


def test_an_id_beyond_float_precision_is_kept_exactly():
    frame = parse_learning_aims([{**AIM, "ID": 9007199254740993}], 5740).frame
    assert frame["learning_aim_id"].astype(object).tolist() == [9007199254740993]


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


# ----- values that do not fit the column they land in (picsweb-schema.md, last paragraph) --
# Each case: (parse, good row, the field spoiled, its value, the staging column, the value
# parsed into it). ``REJECTED`` instead marks a reject, whose reason must contain the text.
@dataclass(frozen=True)
class Rejected:
    reason: str


BIG = 2**70  # beyond 64 bits: int(...) of it overflowed Int64
FIT_CASES = [
    # text length, from trainee_qualification.registration_number String(50)
    (parse_learning_aims, AIM, "RegistrationNumber", "R" * 50, "registration_number", "R" * 50),
    (
        parse_learning_aims, AIM, "RegistrationNumber", "R" * 51, "registration_number",
        Rejected(
            "RegistrationNumber: 51 characters, longer than PICSWeb's "
            "trainee_qualification.registration_number (50)"
        ),
    ),
    (
        parse_learning_aims, AIM, "RegistrationNumber", "R" * 60, "registration_number",
        Rejected(
            "RegistrationNumber: 60 characters, longer than PICSWeb's "
            f'trainee_qualification.registration_number (50): "{"R" * 60}"'
        ),
    ),
    # rules 2-4 write the trimmed value, so padding does not count; blank is the merge's
    (
        parse_learning_aims, AIM, "RegistrationNumber", "  " + "R" * 50 + " \t",
        "registration_number", "  " + "R" * 50 + " \t",
    ),
    (parse_learning_aims, AIM, "RegistrationNumber", "   ", "registration_number", "   "),
    (parse_learning_aims, AIM, "RegistrationNumber", "", "registration_number", ""),
    # characters, not bytes: 50 two-byte letters fit, 51 emoji (4 bytes each) do not
    (parse_learning_aims, AIM, "RegistrationNumber", "é" * 50, "registration_number", "é" * 50),
    (
        parse_learning_aims, AIM, "RegistrationNumber", "😀" * 51, "registration_number",
        Rejected("RegistrationNumber: 51 characters, longer than"),
    ),
    # a long value is shortened in the reason (raw keeps it whole)
    (
        parse_learning_aims, AIM, "RegistrationNumber", "R" * 1200, "registration_number",
        Rejected(f'(50): "{"R" * 79}… (1202 characters)'),
    ),
    # text with no PICSWeb column lands in unbounded staging text only
    (parse_learning_aims, AIM, "Title", "T" * 1200, "title", "T" * 1200),
    (parse_learners, LEARNER, "Email", "e" * 500, "email", "e" * 500),
    # JSON kinds in a text field
    (parse_learning_aims, AIM, "Title", ["A"], "title", Rejected('Title: not text: ["A"]')),
    (parse_learning_aims, AIM, "Title", True, "title", Rejected("Title: not text: true")),
    (parse_learning_aims, AIM, "Title", {"a": 1}, "title", Rejected('Title: not text: {"a": 1}')),
    (parse_learning_aims, AIM, "Title", 12.5, "title", Rejected("Title: not text: 12.5")),
    (parse_learning_aims, AIM, "Title", 1234567.0, "title", "1234567"),
    (parse_learning_aims, AIM, "Title", 1234567, "title", "1234567"),
    (parse_learners, LEARNER, "ULN", BIG, "uln", str(BIG)),
    # INTEGER counts: trainee_qualification.total_elements / elements_done
    (parse_learning_aims, AIM, "TotalElements", 2**31 - 1, "total_elements", 2**31 - 1),
    (
        parse_learning_aims, AIM, "TotalElements", 2**31, "total_elements",
        Rejected("TotalElements: 2147483648 is out of range for INTEGER"),
    ),
    (
        parse_learning_aims, AIM, "TotalElements", 3_000_000_000, "total_elements",
        Rejected(
            "TotalElements: 3000000000 is out of range for INTEGER "
            "(PICSWeb's trainee_qualification.total_elements"
        ),
    ),
    (
        parse_learning_aims, AIM, "TotalElements", "3000000000", "total_elements",
        Rejected("TotalElements: 3000000000 is out of range for INTEGER"),
    ),
    (
        parse_learning_aims, AIM, "TotalElements", 3e9, "total_elements",
        Rejected("TotalElements: 3000000000 is out of range for INTEGER"),
    ),
    (parse_learning_aims, AIM, "ElementsDone", 0, "elements_done", 0),
    (
        parse_learning_aims, AIM, "ElementsDone", -1, "elements_done",
        Rejected("ElementsDone: negative count: -1"),
    ),
    (
        parse_learning_aims, AIM, "TotalElements", "-3", "total_elements",
        Rejected("TotalElements: negative count: -3"),
    ),
    (
        parse_learning_aims, AIM, "TotalElements", [1], "total_elements",
        Rejected("TotalElements: not a whole number: [1]"),
    ),
    # BIGINT IDs: the PICSWeb onefile_* columns and the staging columns
    (parse_learning_aims, AIM, "ID", 2**63 - 1, "learning_aim_id", 2**63 - 1),
    (
        parse_learning_aims, AIM, "ID", 2**63, "learning_aim_id",
        Rejected("ID: 9223372036854775808 is out of range for BIGINT"),
    ),
    (
        parse_learning_aims, AIM, "ID", BIG, "learning_aim_id",
        Rejected(
            "ID: 1180591620717411303424 is out of range for BIGINT "
            "(PICSWeb's trainee_qualification.onefile_learning_aim_id"
        ),
    ),
    (parse_reviews, REVIEW, "ID", -(2**63), "review_id", -(2**63)),
    (
        parse_reviews, REVIEW, "ID", BIG, "review_id",
        Rejected("ID: 1180591620717411303424 is out of range for BIGINT (PICSWeb's review."),
    ),
    (
        parse_reviews, REVIEW, "ID", -(2**63) - 1, "review_id",
        Rejected("ID: -9223372036854775809 is out of range for BIGINT"),
    ),
    (
        parse_reviews, REVIEW, "AssessorID", BIG, "assessor_id",
        Rejected("AssessorID: 1180591620717411303424 is out of range for BIGINT (PICSWeb's officer"),
    ),
    (
        parse_learners, LEARNER, "ID", str(BIG), "learner_id",
        Rejected("ID: 1180591620717411303424 is out of range for BIGINT (PICSWeb's trainee"),
    ),
    (
        parse_assessors, ASSESSOR, "ID", "1" * 200, "assessor_id",
        Rejected(f"ID: {'1' * 80}… (200 characters) is out of range for BIGINT"),
    ),
    # no PICSWeb column: the staging column's type bounds it
    (
        parse_reviews, REVIEW, "Status", 2**31, "status",
        Rejected("Status: 2147483648 is out of range for INTEGER (staging sync_stage_review.status"),
    ),
    (
        parse_reviews, REVIEW, "VisitID", BIG, "visit_id",
        Rejected("VisitID: 1180591620717411303424 is out of range for BIGINT (staging"),
    ),
    (parse_reviews, REVIEW, "VisitID", 2**63 - 1, "visit_id", 2**63 - 1),
]  # fmt: skip


def _case_id(case) -> str:
    parse, _, field, value, _, expected = case
    shown = repr(value)
    shown = shown if len(shown) <= 20 else f"{shown[:12]}..len{len(shown)}"
    outcome = "rejected" if isinstance(expected, Rejected) else "accepted"
    return f"{ENTITY_OF[parse]}-{field}-{shown}-{outcome}"


@pytest.mark.parametrize(
    ("parse", "good", "field", "value", "column", "expected"),
    FIT_CASES,
    ids=[_case_id(case) for case in FIT_CASES],
)
def test_a_value_is_parsed_or_rejected_by_the_column_it_lands_in(
    parse, good, field, value, column, expected
):
    row = {**good, field: value}
    other = {**good, "ID": 1}
    parsed = parse([row, other], 5740)
    if isinstance(expected, Rejected):
        assert len(parsed.rejects) == 1, parsed.rejects
        assert expected.reason in parsed.rejects["reason"].iloc[0]
        assert parsed.rejects["raw"].iloc[0] == json.dumps(row, sort_keys=True)
        assert parsed.frame.iloc[:, 0].tolist() == [1]  # the rest of the extract goes on
    else:
        assert parsed.rejects.empty, parsed.rejects["reason"].tolist()
        assert parsed.frame[column].iloc[0] == expected
        assert len(parsed.frame) == 2


@pytest.mark.parametrize(
    ("element", "shown"),
    [
        pytest.param(None, "null", id="null"),
        pytest.param("abc", '"abc"', id="string"),
        pytest.param([1], "[1]", id="list"),
        pytest.param(12, "12", id="number"),
        pytest.param(["x" * 200], f'["{"x" * 78}… (204 characters)', id="long-list"),
    ],
)
@pytest.mark.parametrize("parse", [parse_learners, parse_learning_aims, parse_reviews])
def test_a_page_element_that_is_not_an_object_is_a_reject(parse, element, shown):
    good = {parse_learners: LEARNER, parse_learning_aims: AIM, parse_reviews: REVIEW}[parse]
    parsed = parse([good, element, {**good, "ID": 1}], 5740)
    assert parsed.rejects.drop(columns="raw").to_dict("records") == [
        {"entity": ENTITY_OF[parse], "source_id": None, "reason": f"not a JSON object: {shown}"}
    ]
    assert parsed.rejects["raw"].tolist() == [json.dumps(element)]
    assert parsed.frame.iloc[:, 0].tolist() == [good["ID"], 1]


def test_only_rows_that_are_not_objects_make_an_empty_frame_with_the_columns():
    parsed = parse_learning_aims([None, "abc"], 5740)
    assert parsed.frame.empty and len(parsed.rejects) == 2
    assert str(parsed.frame["learning_aim_id"].dtype) == "Int64"
    assert str(parsed.frame["registration_number"].dtype) == "string"


def test_a_reject_source_id_is_the_id_as_sent():
    rows = [{**AIM, "ID": BIG}, {**AIM, "ID": ["x"]}, {**AIM, "ID": "abc"}, {**AIM, "ID": True}]
    assert parse_learning_aims(rows, 5740).rejects["source_id"].tolist() == [
        str(BIG), '["x"]', "abc", "true",
    ]  # fmt: skip


def test_every_problem_of_a_row_is_named():
    row = {**AIM, "RegistrationNumber": "R" * 51, "TotalElements": -2, "Title": False}
    (reason,) = parse_learning_aims([row], 5740).rejects["reason"]
    assert reason.split("; ") == [
        "Title: not text: false",
        "TotalElements: negative count: -2",
        "RegistrationNumber: 51 characters, longer than PICSWeb's "
        f'trainee_qualification.registration_number (50): "{"R" * 51}"',
    ]


# ----- the limits come from the table definitions, not from a list of their own -------------
_BITS = {BigInteger: 64, Integer: 32, SmallInteger: 16}


def test_registration_number_limit_follows_the_picsweb_table():
    limit = pw.trainee_qualification.c.registration_number.type.length
    fits = {**AIM, "ID": 1, "RegistrationNumber": "N" * limit}
    too_long = {**AIM, "ID": 2, "RegistrationNumber": "N" * (limit + 1)}
    parsed = parse_learning_aims([fits, too_long], 5740)
    assert parsed.frame["learning_aim_id"].tolist() == [1]
    assert f"{limit + 1} characters" in parsed.rejects["reason"].iloc[0]
    assert f"registration_number ({limit})" in parsed.rejects["reason"].iloc[0]


@pytest.mark.parametrize(
    ("parse", "good", "field", "column"),
    [
        (parse_learning_aims, AIM, "TotalElements", pw.trainee_qualification.c.total_elements),
        (parse_learning_aims, AIM, "ElementsDone", pw.trainee_qualification.c.elements_done),
        (parse_learning_aims, AIM, "ID", pw.trainee_qualification.c.onefile_learning_aim_id),
        (parse_reviews, REVIEW, "ID", pw.review.c.onefile_system_id),
        (parse_learners, LEARNER, "ID", pw.trainee.c.onefile_learner_id),
        (parse_assessors, ASSESSOR, "ID", pw.officer.c.onefile_id),
    ],
    ids=lambda p: getattr(p, "name", None) or getattr(p, "__name__", None),
)
def test_integer_range_follows_the_picsweb_column_type(parse, good, field, column):
    bits = _BITS[type(column.type)]
    highest = 2 ** (bits - 1) - 1
    parsed = parse([{**good, field: highest}, {**good, "ID": 1, field: highest + 1}], 5740)
    assert len(parsed.frame) == 1
    assert f"{highest + 1} is out of range" in parsed.rejects["reason"].iloc[0]
    assert f"{column.table.name}.{column.name}" in parsed.rejects["reason"].iloc[0]


def test_every_picsweb_link_is_a_picsweb_column_of_the_same_kind():
    for entity, fields in FIELDS.items():
        for field in fields:
            staging = STAGING[entity].c[field.column]
            assert landing_columns(entity, field)[-1] is staging
            if field.picsweb is None:
                continue
            assert field.picsweb.table.metadata is pw.metadata
            if field.kind in ("id", "int", "count"):
                assert int_range(field.picsweb) is not None, field
            elif field.kind == "text":
                assert max_length(field.picsweb) is not None, field


def test_every_picsweb_column_is_given_to_a_field_onefile_sends():
    """A misspelt entity or column in ``PICSWEB_COLUMNS`` would silently leave that field
    without its PICSWeb column, and so without the limits the column sets."""
    linked = {
        (entity, field.column)
        for entity, fields in FIELDS.items()
        for field in fields
        if field.picsweb is not None
    }
    assert linked == set(PICSWEB_COLUMNS)
    assert ("learning_aims", "registration_number") in linked


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (Column("c", String(50)), None),
        (Column("c", Integer), (-(2**31), 2**31 - 1, "INTEGER")),
        (Column("c", BigInteger), (-(2**63), 2**63 - 1, "BIGINT")),
        (Column("c", SmallInteger), (-(2**15), 2**15 - 1, "SMALLINT")),
    ],
)
def test_int_range_of_a_column_type(column, expected):
    assert int_range(column) == expected


def test_max_length_of_a_column_type():
    assert max_length(Column("c", String(50))) == 50
    assert max_length(Column("c", UnicodeText())) is None
    assert max_length(Column("c", Integer)) is None
