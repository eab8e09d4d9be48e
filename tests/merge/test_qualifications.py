"""Rules 1-4 and qualification matching (shared/contract/picsweb-schema.md).

Every case starts from one linked pair, trainee 1 (OneFile learner 100) with qualification
10 (code 196AS) linked to learning aim 500, and changes only what it is about.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from picsweb_sync.onefile.fields import parse_learners, parse_learning_aims
from picsweb_sync.rules.qualifications import merge_qualifications
from tests.merge.frames import qualifications, records, trainees, units

D = dt.date
TQ = "trainee_qualification"
EMPTY_DATES = {
    "RegistrationNumber": None,
    "RegistrationDate": None,
    "CertificateAppliedDate": None,
    "CertificateReceivedDate": None,
}


def aim(**fields: Any) -> dict[str, Any]:
    """A OneFile learning aim row of learner 100, no values in rules 1-4 unless given."""
    return {"ID": 500, "UserID": 100, "Code": "196AS", **EMPTY_DATES, **fields}


def tq(**fields: Any) -> dict[str, Any]:
    return {"tq_id": 10, "trainee_id": 1, "onefile_learning_aim_id": 500, **fields}


def merge(
    aims: list[dict],
    tqs: list[dict],
    *,
    learners: tuple[int, ...] = (100,),
    links: dict[int, int] | None = None,
    unit_of: tuple[int, ...] = (),
):
    """Run the merge on OneFile rows and PICSWeb rows; ``links`` is trainee -> learner."""
    learner_rows = [{"ID": learner, "LastModified": "2026-03-01T00:00:00Z"} for learner in learners]
    links = {1: 100} if links is None else links
    return merge_qualifications(
        parse_learners(learner_rows, 5740).frame,
        parse_learning_aims(aims, 5740).frame,
        trainees(*({"trainee_id": t, "onefile_learner_id": lr} for t, lr in links.items())),
        qualifications(*tqs),
        units(*({"tqu_id": n, "tq_id": tq_id} for n, tq_id in enumerate(unit_of, 1))),
    )


# ----- rules 2-4: text -----------------------------------------------------------------------
RN = "rule2_registration_number"


@pytest.mark.parametrize(
    ("onefile", "picsweb", "to_picsweb", "to_onefile"),
    [
        pytest.param(None, None, None, None, id="both-null"),
        pytest.param("", None, None, None, id="onefile-empty-picsweb-null"),
        pytest.param("", "  ", None, None, id="both-blank-mixed"),
        pytest.param("REG1", None, (None, "REG1"), None, id="only-onefile"),
        pytest.param("REG1", "", ("", "REG1"), None, id="picsweb-empty-filled"),
        pytest.param("REG1", "  ", ("  ", "REG1"), None, id="picsweb-spaces-filled"),
        pytest.param(" REG1 ", None, (None, "REG1"), None, id="filled-trimmed"),
        pytest.param(None, "PW1", None, (None, "PW1"), id="only-picsweb"),
        pytest.param("", "PW1", None, ("", "PW1"), id="onefile-empty-filled"),
        pytest.param("  ", "PW1", None, ("  ", "PW1"), id="onefile-spaces-filled"),
        pytest.param(None, " PW1 ", None, (None, "PW1"), id="sent-trimmed"),
        pytest.param("REG1", "REG1", None, None, id="equal"),
        pytest.param(" REG1", "REG1 ", None, None, id="equal-after-trim"),
        pytest.param("REG1", "PW1", ("PW1", "REG1"), None, id="differ-onefile-wins"),
        pytest.param("reg1", "REG1", ("REG1", "reg1"), None, id="case-differs-onefile-wins"),
    ],
)
def test_registration_number(onefile, picsweb, to_picsweb, to_onefile):
    result = merge([aim(RegistrationNumber=onefile)], [tq(registration_number=picsweb)])
    expected_pw = [(TQ, 10, "registration_number", *to_picsweb, RN)] if to_picsweb else []
    expected_of = (
        [("LearningAim", 500, "RegistrationNumber", *to_onefile, RN)] if to_onefile else []
    )
    assert records(result.picsweb_updates) == expected_pw
    assert records(result.onefile_updates) == expected_of


# ----- rules 2-4: dates ----------------------------------------------------------------------
DATE_FIELDS = [
    pytest.param("registration_date", "RegistrationDate", "rule2_registration_date", id="reg"),
    pytest.param(
        "certificate_applied_date",
        "CertificateAppliedDate",
        "rule3_certificate_applied_date",
        id="applied",
    ),
    pytest.param(
        "certificate_received_date",
        "CertificateReceivedDate",
        "rule4_certificate_received_date",
        id="received",
    ),
]


@pytest.mark.parametrize(("column", "onefile_name", "rule"), DATE_FIELDS)
@pytest.mark.parametrize(
    ("onefile", "picsweb", "to_picsweb", "to_onefile"),
    [
        pytest.param(None, None, None, None, id="both-null"),
        pytest.param("2025-06-01T09:00:00Z", None, (None, D(2025, 6, 1)), None, id="only-onefile"),
        pytest.param(None, D(2025, 6, 1), None, (None, "2025-06-01T00:00:00Z"), id="only-picsweb"),
        pytest.param("2025-06-01T00:00:00Z", D(2025, 6, 1), None, None, id="equal-midnight"),
        pytest.param("2025-06-01T16:45:12.345Z", D(2025, 6, 1), None, None, id="equal-same-day"),
        pytest.param(
            "2025-06-01T10:00:00Z",
            D(2025, 5, 20),
            (D(2025, 5, 20), D(2025, 6, 1)),
            None,
            id="differ-onefile-wins",
        ),
        pytest.param(
            "2025-06-01T23:30:00Z", D(2025, 6, 2), None, None, id="bst-late-is-next-uk-day"
        ),
        pytest.param(
            "2025-06-01T23:30:00Z",
            D(2025, 6, 1),
            (D(2025, 6, 1), D(2025, 6, 2)),
            None,
            id="bst-late-utc-date-differs",
        ),
        pytest.param("2025-12-01T23:30:00Z", D(2025, 12, 1), None, None, id="gmt-late-same-day"),
        pytest.param(
            "2026-03-29T23:30:00Z",
            D(2026, 3, 29),
            (D(2026, 3, 29), D(2026, 3, 30)),
            None,
            id="spring-change-day-late",
        ),
        pytest.param("2026-03-29T00:30:00Z", D(2026, 3, 29), None, None, id="spring-before-change"),
        pytest.param(
            "2026-10-24T23:30:00Z",
            D(2026, 10, 24),
            (D(2026, 10, 24), D(2026, 10, 25)),
            None,
            id="autumn-eve-still-bst",
        ),
        pytest.param("2026-10-25T23:30:00Z", D(2026, 10, 25), None, None, id="autumn-after-change"),
    ],
)
def test_dates(column, onefile_name, rule, onefile, picsweb, to_picsweb, to_onefile):
    result = merge([aim(**{onefile_name: onefile})], [tq(**{column: picsweb})])
    expected_pw = [(TQ, 10, column, *to_picsweb, rule)] if to_picsweb else []
    expected_of = [("LearningAim", 500, onefile_name, *to_onefile, rule)] if to_onefile else []
    assert records(result.picsweb_updates) == expected_pw
    assert records(result.onefile_updates) == expected_of


def test_each_field_decided_on_its_own():
    result = merge(
        [aim(RegistrationNumber="REG1", CertificateAppliedDate="2026-01-05T00:00:00Z")],
        [tq(registration_number="PW1", registration_date=D(2025, 9, 1))],
    )
    assert records(result.picsweb_updates) == [
        (TQ, 10, "certificate_applied_date", None, D(2026, 1, 5), "rule3_certificate_applied_date"),
        (TQ, 10, "registration_number", "PW1", "REG1", RN),
    ]
    assert records(result.onefile_updates) == [
        (
            "LearningAim",
            500,
            "RegistrationDate",
            None,
            "2025-09-01T00:00:00Z",
            "rule2_registration_date",
        )
    ]
    assert result.counts["picsweb_rule2_registration_number"] == 1
    assert result.counts["onefile_rule2_registration_date"] == 1
    assert result.counts["picsweb_rule4_certificate_received_date"] == 0


# ----- rule 1: elements ----------------------------------------------------------------------
E = "rule1_elements"


@pytest.mark.parametrize(
    ("onefile", "picsweb", "expected"),
    [
        pytest.param((20, 10), (20, 10), [], id="equal"),
        pytest.param(
            (20, 10),
            (22, 9),
            [(TQ, 10, "elements_done", 9, 10, E), (TQ, 10, "total_elements", 22, 20, E)],
            id="both-differ",
        ),
        pytest.param((20, 10), (20, 7), [(TQ, 10, "elements_done", 7, 10, E)], id="done-differs"),
        pytest.param(
            (20, 10),
            (None, None),
            [(TQ, 10, "elements_done", None, 10, E), (TQ, 10, "total_elements", None, 20, E)],
            id="picsweb-null",
        ),
        pytest.param((20, 0), (20, 3), [(TQ, 10, "elements_done", 3, 0, E)], id="onefile-zero"),
        pytest.param((None, None), (20, 10), [], id="onefile-null-keeps-picsweb"),
    ],
)
def test_elements(onefile, picsweb, expected):
    result = merge(
        [aim(TotalElements=onefile[0], ElementsDone=onefile[1])],
        [tq(total_elements=picsweb[0], elements_done=picsweb[1])],
    )
    assert records(result.picsweb_updates) == expected
    assert result.counts["picsweb_rule1_elements"] == len(expected)


def test_qualification_with_units_keeps_its_elements_but_not_its_dates():
    result = merge(
        [aim(TotalElements=20, ElementsDone=10, RegistrationNumber="REG1")],
        [tq(total_elements=5, elements_done=1)],
        unit_of=(10, 10),
    )
    assert records(result.picsweb_updates) == [(TQ, 10, "registration_number", None, "REG1", RN)]
    assert result.counts["qualifications_with_units"] == 1


def test_units_of_another_qualification_do_not_matter():
    result = merge([aim(TotalElements=20)], [tq(total_elements=5)], unit_of=(99,))
    assert records(result.picsweb_updates) == [(TQ, 10, "total_elements", 5, 20, E)]
    assert result.counts["qualifications_with_units"] == 0


# ----- matching ------------------------------------------------------------------------------
LINK = "match_learning_aim"


def test_aim_linked_by_code_gets_link_and_rules_in_the_same_merge():
    result = merge(
        [aim(TotalElements=20, ElementsDone=10, RegistrationNumber="REG1")],
        [tq(onefile_learning_aim_id=None, total_elements=20, elements_done=4)],
    )
    assert records(result.picsweb_updates) == [
        (TQ, 10, "elements_done", 4, 10, E),
        (TQ, 10, "onefile_learning_aim_id", None, 500, LINK),
        (TQ, 10, "registration_number", None, "REG1", RN),
    ]
    assert result.counts["aims_linked_by_code"] == 1
    assert result.counts["aims_linked_by_id"] == 0


def test_code_compares_trimmed_and_ignoring_case():
    result = merge([aim(Code=" 196as ")], [tq(onefile_learning_aim_id=None)])
    assert records(result.picsweb_updates) == [(TQ, 10, "onefile_learning_aim_id", None, 500, LINK)]


@pytest.mark.parametrize(
    ("aims", "tqs", "count"),
    [
        pytest.param(
            [aim(RegistrationNumber="REG1")],
            [
                tq(onefile_learning_aim_id=None),
                tq(tq_id=11, onefile_learning_aim_id=None),
            ],
            "aims_ambiguous_code",
            id="code-matches-two-qualifications",
        ),
        pytest.param(
            [aim(RegistrationNumber="REG1"), aim(ID=501, RegistrationNumber="REG2")],
            [tq(onefile_learning_aim_id=None)],
            "aims_ambiguous_code",
            id="two-aims-claim-one-qualification",
        ),
        pytest.param(
            [aim(Code="999EP", RegistrationNumber="REG1")],
            [tq(onefile_learning_aim_id=None)],
            "aims_unmatched",
            id="no-qualification-with-the-code",
        ),
        pytest.param(
            [aim(Code="", RegistrationNumber="REG1")],
            [tq(onefile_learning_aim_id=None, qualification_code="")],
            "aims_unmatched",
            id="blank-codes-never-match",
        ),
        pytest.param(
            [aim(ID=501, RegistrationNumber="REG1")],
            [tq(onefile_learning_aim_id=500)],
            "aims_unmatched",
            id="qualification-already-linked-to-another-aim",
        ),
        pytest.param(
            [aim(RegistrationNumber="REG1")],
            [tq(trainee_id=2, onefile_learning_aim_id=None)],
            "aims_unmatched",
            id="code-matches-another-trainees-qualification",
        ),
    ],
)
def test_no_link_no_change(aims, tqs, count):
    result = merge(aims, tqs, links={1: 100, 2: 200})
    assert result.picsweb_updates.empty
    assert result.onefile_updates.empty
    assert result.counts["aims_linked_by_code"] == 0
    assert result.counts[count] == len(aims)


def test_learner_not_linked_is_counted_and_its_aims_skipped():
    result = merge(
        [aim(UserID=200, RegistrationNumber="REG1")],
        [tq(onefile_learning_aim_id=None)],
        learners=(100, 200),
    )
    assert result.picsweb_updates.empty
    assert result.counts["learners_linked"] == 1
    assert result.counts["learners_unlinked"] == 1
    assert result.counts["aims_learner_unlinked"] == 1


def test_aim_linked_by_id_needs_no_learner_link():
    result = merge([aim(UserID=None, RegistrationNumber="REG1")], [tq()], links={})
    assert records(result.picsweb_updates) == [(TQ, 10, "registration_number", None, "REG1", RN)]
    assert result.counts["aims_linked_by_id"] == 1


def test_aim_claimed_by_two_qualifications_is_skipped():
    result = merge([aim(RegistrationNumber="REG1")], [tq(), tq(tq_id=11)])
    assert result.picsweb_updates.empty
    assert result.counts["aims_claimed_twice"] == 1
    assert result.counts["aims_linked_by_id"] == 0


def test_pairs_do_not_mix_values_between_qualifications():
    result = merge(
        [aim(RegistrationNumber="A500"), aim(ID=501, Code="300EP", RegistrationNumber="A501")],
        [tq(), tq(tq_id=11, qualification_code="300EP", onefile_learning_aim_id=501)],
    )
    assert records(result.picsweb_updates) == [
        (TQ, 10, "registration_number", None, "A500", RN),
        (TQ, 11, "registration_number", None, "A501", RN),
    ]


# ----- shapes --------------------------------------------------------------------------------
def test_change_set_shapes():
    result = merge([aim(RegistrationNumber="REG1", RegistrationDate=None)], [tq()])
    updates = result.picsweb_updates
    assert list(updates.columns) == ["table", "key", "field", "old", "new", "rule"]
    assert list(result.onefile_updates.columns) == [
        "entity", "entity_id", "field", "old", "new", "rule",
    ]  # fmt: skip
    assert str(updates["key"].dtype) == "Int64"
    assert updates["old"].tolist() == [None]  # a Python None, not NaN or pd.NA
    assert type(updates["new"].iloc[0]) is str


def test_empty_inputs_give_empty_change_sets_with_columns():
    result = merge([], [], learners=(), links={})
    assert result.picsweb_updates.empty and result.onefile_updates.empty
    assert list(result.picsweb_updates.columns) == ["table", "key", "field", "old", "new", "rule"]
    assert all(value == 0 for value in result.counts.values())
    assert isinstance(result.counts["aims_unmatched"], int)


def test_picsweb_values_are_python_objects():
    result = merge([aim(TotalElements=20, RegistrationDate="2025-06-01T00:00:00Z")], [tq()])
    values = {row.field: row.new for row in result.picsweb_updates.itertuples()}
    assert type(values["total_elements"]) is int
    assert type(values["registration_date"]) is dt.date


# ----- the same aim staged by two organisations' searches -----------------------------------
def merge_staged_twice(first: dict, second: dict, tqs: list[dict], **options: Any):
    """``first`` staged by organisation 5740's search and ``second`` by 5741's."""
    aims = pd.concat(
        [parse_learning_aims([first], 5740).frame, parse_learning_aims([second], 5741).frame],
        ignore_index=True,
    )
    links = options.get("links", {1: 100})
    return merge_qualifications(
        parse_learners([{"ID": 100, "LastModified": "2026-03-01T00:00:00Z"}], 5740).frame,
        aims,
        trainees(*({"trainee_id": t, "onefile_learner_id": lr} for t, lr in links.items())),
        qualifications(*tqs),
        units(),
    )


REG1 = (TQ, 10, "registration_number", None, "REG1", RN)


@pytest.mark.parametrize(
    ("first", "second", "picsweb", "expected", "counts"),
    [
        pytest.param(
            aim(RegistrationNumber="REG1"),
            aim(RegistrationNumber="REG1"),
            [tq()],
            [REG1],
            {"aims_linked_by_id": 1, "aims_claimed_twice": 0, "aims_duplicate_copies": 1},
            id="identical-linked-by-id",
        ),
        pytest.param(
            aim(RegistrationNumber="REG1"),
            aim(RegistrationNumber="REG1"),
            [tq(onefile_learning_aim_id=None)],
            [REG1, (TQ, 10, "onefile_learning_aim_id", None, 500, LINK)],
            {"aims_linked_by_code": 1, "aims_ambiguous_code": 0, "aims_duplicate_copies": 1},
            id="identical-linked-by-code",
        ),
        pytest.param(
            aim(RegistrationNumber="REG1", Title=None, CertificateAppliedDate=None),
            aim(RegistrationNumber=" REG1 ", Title="", CertificateAppliedDate=None),
            [tq()],
            [REG1],
            {"aims_linked_by_id": 1, "aims_conflicting_copies": 0, "aims_duplicate_copies": 1},
            id="blank-and-null-are-the-same-value",
        ),
        pytest.param(
            aim(RegistrationNumber="REG1"),
            aim(RegistrationNumber="REG2"),
            [tq()],
            [],
            {"aims_linked_by_id": 0, "aims_claimed_twice": 0, "aims_conflicting_copies": 1},
            id="copies-differ-aim-skipped",
        ),
        pytest.param(
            aim(RegistrationNumber="reg1"),
            aim(RegistrationNumber="REG1"),
            [tq(onefile_learning_aim_id=None)],
            [],
            {"aims_linked_by_code": 0, "aims_conflicting_copies": 1},
            id="copies-differ-in-case-not-linked-by-code",
        ),
        pytest.param(
            aim(RegistrationNumber="REG1"),
            aim(ID=501, RegistrationNumber="REG1"),
            [tq(), tq(tq_id=11, onefile_learning_aim_id=501)],
            [REG1, (TQ, 11, "registration_number", None, "REG1", RN)],
            {"aims_linked_by_id": 2, "aims_duplicate_copies": 0},
            id="two-different-aims-are-not-copies",
        ),
    ],
)
def test_an_aim_staged_twice(first, second, picsweb, expected, counts):
    result = merge_staged_twice(first, second, picsweb)
    assert records(result.picsweb_updates) == sorted(expected, key=repr)
    assert result.onefile_updates.empty
    assert {name: result.counts[name] for name in counts} == counts


def test_a_learner_staged_twice_is_counted_once():
    learners = pd.concat(
        [
            parse_learners([{"ID": 100, "LastModified": "2026-03-01T00:00:00Z"}], org).frame
            for org in (5740, 5741)
        ],
        ignore_index=True,
    )
    result = merge_qualifications(
        learners,
        parse_learning_aims([aim()], 5740).frame,
        trainees({"trainee_id": 1, "onefile_learner_id": 100}),
        qualifications(tq()),
        units(),
    )
    assert (result.counts["learners_linked"], result.counts["learners_unlinked"]) == (1, 0)
