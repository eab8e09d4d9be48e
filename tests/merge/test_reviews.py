"""Officer matching and rule 6, the review download (shared/contract/picsweb-schema.md).

Trainee 1 is linked to OneFile learner 100. Officer 1 has OneFile ID 300; officer 2 has no
OneFile ID but the email of assessor 301; officer 5 is nobody's match.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from picsweb_sync.onefile.fields import parse_assessors, parse_reviews
from picsweb_sync.rules.reviews import match_officers, merge_reviews
from tests.merge.frames import officers, records, reviews, trainees

D, T = dt.date, dt.time

OFFICERS = officers(
    {"officer_id": 1, "onefile_id": 300, "email": "one@x.org"},
    {"officer_id": 2, "email": "Two@X.org"},
    {"officer_id": 5, "email": "five@x.org"},
)
ASSESSORS = [
    {"ID": 300, "Email": "someone@x.org"},
    {"ID": 301, "Email": " two@x.ORG"},
    {"ID": 302, "Email": "nobody@x.org"},
]


def assessors(*rows: dict[str, Any]):
    return parse_assessors(list(rows), 5740).frame


def assessors_per_organisation(*rows: dict[str, Any]) -> pd.DataFrame:
    """Each row staged by its own organisation's search (5740, 5741, ...), so the same
    assessor can be staged twice, as two extract tasks would stage it."""
    frames = [parse_assessors([row], 5740 + n).frame for n, row in enumerate(rows)]
    return pd.concat(frames, ignore_index=True) if frames else assessors()


@pytest.mark.parametrize(
    ("officer_rows", "assessor", "officer_id", "matched_by"),
    [
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}], {"ID": 300}, 1, "onefile_id", id="by-id"
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann.lee@example.com "}],
            {"ID": 300, "Email": "Ann.Lee@Example.COM"},
            2,
            "email",
            id="by-email-any-case",
        ),
        pytest.param(
            [
                {"officer_id": 1, "onefile_id": 300, "email": "other@x.org"},
                {"officer_id": 2, "email": "ann@x.org"},
            ],
            {"ID": 300, "Email": "ann@x.org"},
            1,
            "onefile_id",
            id="id-before-email",
        ),
        pytest.param(
            [{"officer_id": 1, "onefile_id": 999, "email": "ann@x.org"}],
            {"ID": 300, "Email": "ann@x.org"},
            1,
            "email",
            id="email-even-if-officer-has-other-id",
        ),
        pytest.param(
            [{"officer_id": 1, "email": "bob@x.org"}],
            {"ID": 300, "Email": "ann@x.org"},
            None,
            "none",
            id="no-match",
        ),
        pytest.param(
            [{"officer_id": 1, "email": "ann@x.org"}, {"officer_id": 2, "email": "ANN@x.org"}],
            {"ID": 300, "Email": "ann@x.org"},
            None,
            "ambiguous",
            id="two-officers-same-email",
        ),
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}, {"officer_id": 2, "onefile_id": 300}],
            {"ID": 300},
            None,
            "ambiguous",
            id="two-officers-same-onefile-id",
        ),
        pytest.param(
            [{"officer_id": 1, "email": ""}, {"officer_id": 2, "email": None}],
            {"ID": 300, "Email": ""},
            None,
            "none",
            id="blank-emails-never-match",
        ),
    ],
)
def test_match_officers(officer_rows, assessor, officer_id, matched_by):
    result = match_officers(assessors(assessor), officers(*officer_rows))
    assert records(result) == [(300, officer_id, matched_by)]
    assert str(result["officer_id"].dtype) == "Int64"


# ----- rule 6 ------------------------------------------------------------------------------
def review(**fields: Any) -> dict[str, Any]:
    """A OneFile review of learner 100, scheduled 10 Feb 2026 10:30 (GMT, so UTC = UK)."""
    return {
        "ID": 900,
        "LearnerID": 100,
        "AssessorID": None,
        "ScheduledFor": "2026-02-10T10:30:00Z",
        "StartedOn": None,
        "LearnerSignedOn": None,
        **fields,
    }


# The PICSWeb review 7 that review 900 matches, in step with review() as it stands.
IN_STEP = {
    "review_id": 7,
    "trainee_id": 1,
    "scheduled_date": D(2026, 2, 10),
    "start_time": T(10, 30),
    "attended": "U",
    "onefile_system_id": 900,
}


def run(onefile: list[dict], picsweb: list[dict], links: dict[int, int] | None = None):
    links = {1: 100} if links is None else links
    return merge_reviews(
        parse_reviews(onefile, 5740).frame,
        trainees(*({"trainee_id": t, "onefile_learner_id": lr} for t, lr in links.items())),
        OFFICERS,
        assessors(*ASSESSORS),
        reviews(*picsweb),
    )


@pytest.mark.parametrize(
    ("onefile", "picsweb", "expected"),
    [
        pytest.param({}, {}, [], id="in-step-no-change"),
        pytest.param(
            {"StartedOn": "2026-02-10T10:35:00Z"},
            {},
            [("attended", "U", "Y"), ("actual_date", None, D(2026, 2, 10))],
            id="started",
        ),
        pytest.param(
            {"StartedOn": "2026-02-10T10:35:00Z"},
            {"attended": None},
            [("attended", None, "Y"), ("actual_date", None, D(2026, 2, 10))],
            id="started-attended-blank",
        ),
        pytest.param(
            {"StartedOn": "2026-02-10T10:35:00Z"},
            {"attended": "Y", "actual_date": D(2026, 2, 10)},
            [],
            id="started-already-recorded",
        ),
        pytest.param(
            {"ScheduledFor": "2026-06-10T22:30:00Z", "StartedOn": "2026-06-10T23:05:00Z"},
            {"scheduled_date": D(2026, 6, 10), "start_time": T(23, 30)},
            [("attended", "U", "Y"), ("actual_date", None, D(2026, 6, 11))],
            id="started-bst-after-midnight-is-next-uk-day",
        ),
        pytest.param(
            {},
            {"attended": "Y", "actual_date": D(2026, 2, 10)},
            [("attended", "Y", "U"), ("actual_date", D(2026, 2, 10), None)],
            id="not-started-resets",
        ),
        pytest.param({}, {"attended": None}, [("attended", None, "U")], id="not-started-blank"),
        pytest.param(
            {"StartedOn": "2026-02-10T10:35:00Z", "LearnerSignedOn": "2026-02-11T09:00:00Z"},
            {"attended": "Y", "actual_date": D(2026, 2, 10)},
            [("trainee_signed_date", None, D(2026, 2, 11))],
            id="signed",
        ),
        pytest.param(
            {"StartedOn": "2026-06-10T10:35:00Z", "LearnerSignedOn": "2026-06-10T23:15:00Z"},
            {"attended": "Y", "actual_date": D(2026, 6, 10), "scheduled_date": D(2026, 2, 10)},
            [("trainee_signed_date", None, D(2026, 6, 11))],
            id="signed-bst-late-next-uk-day",
        ),
        pytest.param(
            {},
            {"trainee_signed_date": D(2026, 1, 5)},
            [],
            id="unsigned-left-as-is",
        ),
        pytest.param({"AssessorID": 300}, {"officer_id": 5}, [("officer_id", 5, 1)], id="by-id"),
        pytest.param(
            {"AssessorID": 301}, {"officer_id": None}, [("officer_id", None, 2)], id="by-email"
        ),
        pytest.param({"AssessorID": 302}, {"officer_id": 5}, [], id="unmatched-left-as-is"),
        pytest.param({"AssessorID": 999}, {"officer_id": 5}, [], id="unknown-assessor-left"),
        pytest.param({"AssessorID": None}, {"officer_id": 5}, [], id="no-assessor-left"),
        pytest.param({"AssessorID": 300}, {"officer_id": 1}, [], id="officer-already-right"),
        pytest.param(
            {"ScheduledFor": "2026-06-10T09:30:00Z"},
            {"scheduled_date": D(2026, 6, 10), "start_time": T(10, 30)},
            [],
            id="summer-time-in-step",
        ),
        pytest.param(
            {"ScheduledFor": "2026-06-10T23:30:00Z"},
            {"scheduled_date": D(2026, 6, 10), "start_time": T(23, 30)},
            [
                ("scheduled_date", D(2026, 6, 10), D(2026, 6, 11)),
                ("start_time", T(23, 30), T(0, 30)),
            ],
            id="summer-utc-time-copied-is-wrong",
        ),
        pytest.param(
            {"ScheduledFor": "2026-03-29T09:00:00Z"},
            {"scheduled_date": D(2026, 3, 29), "start_time": T(9, 0)},
            [("start_time", T(9, 0), T(10, 0))],
            id="spring-change-day",
        ),
        pytest.param(
            {"ScheduledFor": "2026-10-25T09:00:00Z"},
            {"scheduled_date": D(2026, 10, 25), "start_time": T(9, 0)},
            [],
            id="autumn-change-day",
        ),
        pytest.param(
            {"ScheduledFor": "2026-02-12T14:00:00.250Z"},
            {},
            [
                ("scheduled_date", D(2026, 2, 10), D(2026, 2, 12)),
                ("start_time", T(10, 30), T(14, 0, 0, 250000)),
            ],
            id="rescheduled",
        ),
    ],
)
def test_update_existing_review(onefile, picsweb, expected):
    result = run([review(**onefile)], [{**IN_STEP, **picsweb}])
    rule = {field: f"rule6_{field}" for field, _, _ in expected}
    assert records(result.picsweb_updates) == sorted(
        [("review", 7, field, old, new, rule[field]) for field, old, new in expected], key=repr
    )
    assert result.picsweb_review_inserts.empty
    assert result.counts["reviews_matched"] == 1


NEW = {
    "trainee_id": 1,
    "review_type": "Normal",
    "scheduled_date": D(2026, 2, 10),
    "start_time": T(10, 30),
    "end_time": None,
    "officer_id": None,
    "attended": "U",
    "actual_date": None,
    "trainee_signed_date": None,
    "onefile_system_id": 900,
}


@pytest.mark.parametrize(
    ("onefile", "expected"),
    [
        pytest.param({}, {}, id="not-started"),
        pytest.param(
            {
                "StartedOn": "2026-02-10T10:40:00Z",
                "LearnerSignedOn": "2026-02-10T12:00:00Z",
                "AssessorID": 300,
            },
            {
                "attended": "Y",
                "actual_date": D(2026, 2, 10),
                "trainee_signed_date": D(2026, 2, 10),
                "officer_id": 1,
            },
            id="started-signed-matched",
        ),
        pytest.param({"AssessorID": 302}, {}, id="unmatched-assessor-null-officer"),
        pytest.param(
            {"ScheduledFor": "2026-06-09T23:30:00Z"},
            {"scheduled_date": D(2026, 6, 10), "start_time": T(0, 30)},
            id="summer-after-midnight",
        ),
    ],
)
def test_new_review_is_inserted(onefile, expected):
    result = run([review(**onefile)], [])
    inserts = result.picsweb_review_inserts
    assert list(inserts.columns) == list(NEW)
    assert records(inserts) == [tuple({**NEW, **expected}.values())]
    assert result.picsweb_updates.empty
    assert result.counts["reviews_new"] == 1


def test_insert_types():
    inserts = run([review(AssessorID=300)], []).picsweb_review_inserts
    assert {
        name: str(inserts[name].dtype) for name in ("trainee_id", "officer_id", "onefile_system_id")
    } == {
        "trainee_id": "Int64",
        "officer_id": "Int64",
        "onefile_system_id": "Int64",
    }
    assert inserts["end_time"].tolist() == [None]


def test_review_of_unlinked_learner_is_counted_and_skipped():
    result = run([review(LearnerID=200), review(ID=901, LearnerID=None)], [IN_STEP])
    assert result.picsweb_updates.empty and result.picsweb_review_inserts.empty
    assert result.counts["reviews_learner_unlinked"] == 2


def test_picsweb_review_of_another_run_is_not_touched():
    result = run([review(ID=901)], [IN_STEP])
    assert result.picsweb_updates.empty
    assert records(result.picsweb_review_inserts) == [
        tuple({**NEW, "onefile_system_id": 901}.values())
    ]


def staged_per_organisation(*rows: dict[str, Any]) -> pd.DataFrame:
    """Each review row staged by its own organisation's search (5740, 5741, ...)."""
    frames = [parse_reviews([row], 5740 + n).frame for n, row in enumerate(rows)]
    return pd.concat(frames, ignore_index=True)


STARTED = {"StartedOn": "2026-02-10T10:35:00Z"}


@pytest.mark.parametrize(
    ("copies", "picsweb", "inserted", "updated", "counts"),
    [
        pytest.param(
            [review(), review()],
            [],
            [NEW],
            [],
            {"reviews_duplicate": 1, "reviews_conflicting_copies": 0, "reviews_new": 1},
            id="identical-new-inserted-once",
        ),
        pytest.param(
            [review(**STARTED), review(**STARTED)],
            [IN_STEP],
            [],
            [("attended", "U", "Y"), ("actual_date", None, D(2026, 2, 10))],
            {"reviews_duplicate": 1, "reviews_matched": 1},
            id="identical-existing-updated-once",
        ),
        pytest.param(
            [review(), review(**STARTED)],
            [],
            [],
            [],
            {"reviews_duplicate": 0, "reviews_conflicting_copies": 1, "reviews_new": 0},
            id="copies-differ-new-skipped",
        ),
        pytest.param(
            [review(AssessorID=300), review(AssessorID=None)],
            [IN_STEP],
            [],
            [],
            {"reviews_conflicting_copies": 1, "reviews_matched": 0},
            id="copies-differ-null-vs-value-existing-left",
        ),
        pytest.param(
            [review(), review(ID=901)],
            [],
            [NEW, {**NEW, "onefile_system_id": 901}],
            [],
            {"reviews_duplicate": 0, "reviews_conflicting_copies": 0, "reviews_new": 2},
            id="two-reviews-are-not-copies",
        ),
    ],
)
def test_a_review_staged_twice(copies, picsweb, inserted, updated, counts):
    result = merge_reviews(
        staged_per_organisation(*copies),
        trainees({"trainee_id": 1, "onefile_learner_id": 100}),
        OFFICERS,
        assessors(*ASSESSORS),
        reviews(*picsweb),
    )
    assert records(result.picsweb_review_inserts) == sorted(
        (tuple(row.values()) for row in inserted), key=repr
    )
    assert records(result.picsweb_updates) == sorted(
        [("review", 7, field, old, new, f"rule6_{field}") for field, old, new in updated], key=repr
    )
    assert {name: result.counts[name] for name in counts} == counts


def test_counts_per_rule():
    result = run(
        [review(StartedOn="2026-02-10T10:35:00Z", AssessorID=300), review(ID=901)],
        [IN_STEP],
    )
    assert result.counts["picsweb_rule6_attended"] == 1
    assert result.counts["picsweb_rule6_officer_id"] == 1
    assert result.counts["picsweb_rule6_start_time"] == 0
    assert result.counts["reviews_new"] == 1
    assert result.counts["reviews_officer_matched"] == 1


# ----- officer matching straight from the review's AssessorID ------------------------------
@pytest.mark.parametrize(
    ("officer_rows", "staged", "assessor_id", "officer_id"),
    [
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}], [], 300, 1, id="by-id-assessor-not-extracted"
        ),
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}],
            [{"ID": 301, "Email": "x@x.org"}],
            300,
            1,
            id="by-id-only-other-assessors-extracted",
        ),
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}, {"officer_id": 2, "onefile_id": 300}],
            [],
            300,
            None,
            id="two-officers-same-id-not-extracted",
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann@x.org"}], [], 300, None, id="email-needs-the-assessor"
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann@x.org"}],
            [{"ID": 300, "Email": "ANN@x.org"}],
            300,
            2,
            id="email-of-the-staged-assessor",
        ),
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}, {"officer_id": 2, "email": "ann@x.org"}],
            [{"ID": 300, "Email": "ann@x.org"}],
            300,
            1,
            id="id-before-email",
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann@x.org"}],
            [{"ID": 300, "Email": "ann@x.org"}, {"ID": 300, "Email": " Ann@X.org"}],
            300,
            2,
            id="assessor-staged-twice-same-email",
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann@x.org"}],
            [{"ID": 300, "Email": ""}, {"ID": 300, "Email": "ann@x.org"}],
            300,
            2,
            id="assessor-staged-twice-one-blank-email",
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann@x.org"}, {"officer_id": 3, "email": "bob@x.org"}],
            [{"ID": 300, "Email": "ann@x.org"}, {"ID": 300, "Email": "bob@x.org"}],
            300,
            None,
            id="assessor-staged-twice-emails-disagree",
        ),
        pytest.param(
            [{"officer_id": 2, "email": "ann@x.org"}, {"officer_id": 3, "email": "ANN@x.org"}],
            [{"ID": 300, "Email": "ann@x.org"}],
            300,
            None,
            id="two-officers-same-email",
        ),
        pytest.param(
            [{"officer_id": 1, "onefile_id": 300}], [], None, None, id="no-assessor-on-review"
        ),
    ],
)
def test_review_officer_is_matched_from_its_assessor_id(
    officer_rows, staged, assessor_id, officer_id
):
    result = merge_reviews(
        parse_reviews([review(AssessorID=assessor_id)], 5740).frame,
        trainees({"trainee_id": 1, "onefile_learner_id": 100}),
        officers(*officer_rows),
        assessors_per_organisation(*staged),
        reviews(),
    )
    assert result.picsweb_review_inserts["officer_id"].tolist() == [
        pd.NA if officer_id is None else officer_id
    ]
    assert result.counts["reviews_officer_matched"] == int(officer_id is not None)
    assert result.counts["reviews_officer_unmatched"] == int(
        assessor_id is not None and officer_id is None
    )


def test_existing_review_takes_an_officer_matched_by_id_without_extracted_assessors():
    result = merge_reviews(
        parse_reviews([review(AssessorID=300)], 5740).frame,
        trainees({"trainee_id": 1, "onefile_learner_id": 100}),
        OFFICERS,
        assessors(),
        reviews({**IN_STEP, "officer_id": 5}),
    )
    assert records(result.picsweb_updates) == [
        ("review", 7, "officer_id", 5, 1, "rule6_officer_id")
    ]


@pytest.mark.parametrize(
    ("assessor_rows", "expected"),
    [
        pytest.param(
            [{"ID": 301, "Email": "two@x.org"}, {"ID": 301, "Email": "TWO@x.org "}],
            [(301, 2, "email")],
            id="same-assessor-twice-is-one",
        ),
        pytest.param(
            [{"ID": 301, "Email": "two@x.org"}, {"ID": 301, "Email": "five@x.org"}],
            [(301, None, "ambiguous")],
            id="copies-disagree-on-email",
        ),
        pytest.param(
            [{"ID": 301, "Email": None}, {"ID": 301, "Email": "two@x.org"}],
            [(301, 2, "email")],
            id="blank-copy-ignored",
        ),
        pytest.param(
            [{"ID": 300, "Email": "two@x.org"}, {"ID": 300, "Email": "five@x.org"}],
            [(300, 1, "onefile_id")],
            id="id-match-whatever-the-emails",
        ),
    ],
)
def test_match_officers_with_duplicate_assessors(assessor_rows, expected):
    assert records(match_officers(assessors_per_organisation(*assessor_rows), OFFICERS)) == expected
