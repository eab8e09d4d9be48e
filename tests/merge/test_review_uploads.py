"""Rule 5, the review upload plan (shared/contract/picsweb-schema.md).

The base case is eligible: PICSWeb review 1 of trainee 1 (OneFile learner 100, in
organisation 5740, main officer 2 with OneFile ID 302), officer 1 (OneFile ID 301),
Normal, 10 Feb 2026 10:30-12:00 (GMT: UTC = UK), not attended, never uploaded.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from picsweb_sync.rules.reviews import plan_review_uploads
from tests.merge.frames import officers, records, reviews, trainees

D, T = dt.date, dt.time
VISIT_TYPE = 3
OFFICERS = officers(
    {"officer_id": 1, "onefile_id": 301},
    {"officer_id": 2, "onefile_id": 302},
    {"officer_id": 3},
)
BASE = {
    "review_id": 1,
    "trainee_id": 1,
    "review_type": "Normal",
    "scheduled_date": D(2026, 2, 10),
    "start_time": T(10, 30),
    "end_time": T(12, 0),
    "officer_id": 1,
}
TRAINEE = {"trainee_id": 1, "onefile_learner_id": 100, "main_officer_id": 2}


def plan(review: dict[str, Any], trainee: dict[str, Any] | None = None, organisations=None):
    organisations = {100: 5740} if organisations is None else organisations
    return plan_review_uploads(
        reviews({**BASE, **review}),
        trainees({**TRAINEE, **(trainee or {})}),
        OFFICERS,
        VISIT_TYPE,
        pd.DataFrame(
            {
                "learner_id": pd.array(list(organisations), dtype="Int64"),
                "organisation_id": pd.array(list(organisations.values()), dtype="Int64"),
            }
        ),
    )


def test_eligible_review_upload_row():
    result = plan({})
    assert list(result.uploads.columns) == [
        "review_id", "trainee_id", "learner_id", "organisation_id", "assessor_id",
        "visit_type_id", "scheduled_for", "visit_from", "visit_to",
    ]  # fmt: skip
    assert records(result.uploads) == [
        (1, 1, 100, 5740, 301, 3, "2026-02-10T10:30:00Z", "2026-02-10T10:30:00Z",
         "2026-02-10T12:00:00Z"),
    ]  # fmt: skip
    assert result.rejects.empty
    assert list(result.rejects.columns) == ["review_id", "reason"]
    assert result.counts["reviews_eligible"] == 1


@pytest.mark.parametrize(
    ("review", "trainee", "reason"),
    [
        pytest.param({"review_type": "Initial"}, {}, "not_normal", id="not-normal"),
        pytest.param({"review_type": None}, {}, "not_normal", id="no-type"),
        pytest.param({"onefile_system_id": 900}, {}, "in_onefile", id="already-uploaded"),
        pytest.param({"attended": "Y"}, {}, "attended_set", id="attended-yes"),
        pytest.param({"attended": "N"}, {}, "attended_set", id="attended-no"),
        pytest.param({"attended": "U"}, {}, "attended_set", id="attended-unknown"),
        pytest.param({"actual_date": D(2026, 2, 10)}, {}, "actual_date_set", id="actual-date"),
        pytest.param({}, {"onefile_learner_id": None}, "trainee_unlinked", id="trainee-unlinked"),
        pytest.param(
            {"review_type": "Exit", "attended": "Y"}, {}, "not_normal", id="first-reason-counted"
        ),
    ],
)
def test_not_eligible_is_neither_upload_nor_reject(review, trainee, reason):
    result = plan(review, trainee)
    assert result.uploads.empty and result.rejects.empty
    assert result.counts[f"reviews_not_eligible_{reason}"] == 1
    assert result.counts["reviews_eligible"] == 0


@pytest.mark.parametrize(
    "review",
    [
        pytest.param({"review_type": " normal "}, id="type-any-case-padded"),
        pytest.param({"attended": " "}, id="attended-space-is-blank"),
    ],
)
def test_still_eligible(review):
    assert plan(review).uploads["review_id"].tolist() == [1]


@pytest.mark.parametrize(
    ("date", "start", "end", "scheduled_for", "visit_to"),
    [
        pytest.param(D(2026, 2, 10), None, None, "2026-02-10T09:00:00Z", "2026-02-10T10:00:00Z", id="default-0900-one-hour"),
        pytest.param(D(2026, 2, 10), T(10, 30), None, "2026-02-10T10:30:00Z", "2026-02-10T11:30:00Z", id="one-hour-default"),
        pytest.param(D(2026, 2, 10), None, T(9, 45), "2026-02-10T09:00:00Z", "2026-02-10T09:45:00Z", id="default-start-with-end"),
        pytest.param(D(2026, 2, 10), T(10, 30), T(10, 0), "2026-02-10T10:30:00Z", "2026-02-10T11:30:00Z", id="end-before-start-one-hour"),
        pytest.param(D(2026, 2, 10), T(10, 30), T(10, 30), "2026-02-10T10:30:00Z", "2026-02-10T11:30:00Z", id="end-equal-start-one-hour"),
        pytest.param(D(2026, 6, 10), T(10, 30), T(12, 0), "2026-06-10T09:30:00Z", "2026-06-10T11:00:00Z", id="summer"),
        pytest.param(D(2026, 6, 10), None, None, "2026-06-10T08:00:00Z", "2026-06-10T09:00:00Z", id="summer-default-0900"),
        pytest.param(D(2026, 6, 10), T(0, 30), None, "2026-06-09T23:30:00Z", "2026-06-10T00:30:00Z", id="summer-after-midnight"),
        pytest.param(D(2026, 3, 28), T(9, 0), None, "2026-03-28T09:00:00Z", "2026-03-28T10:00:00Z", id="day-before-spring"),
        pytest.param(D(2026, 3, 29), T(9, 0), None, "2026-03-29T08:00:00Z", "2026-03-29T09:00:00Z", id="spring-change-day"),
        pytest.param(D(2026, 3, 29), T(1, 30), None, "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", id="nonexistent-hour"),
        pytest.param(D(2026, 10, 24), T(9, 0), None, "2026-10-24T08:00:00Z", "2026-10-24T09:00:00Z", id="day-before-autumn"),
        pytest.param(D(2026, 10, 25), T(9, 0), None, "2026-10-25T09:00:00Z", "2026-10-25T10:00:00Z", id="autumn-change-day"),
        pytest.param(D(2026, 10, 25), T(1, 30), None, "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", id="repeated-hour-first"),
    ],
)  # fmt: skip
def test_times_in_utc(date, start, end, scheduled_for, visit_to):
    upload = plan({"scheduled_date": date, "start_time": start, "end_time": end}).uploads
    assert upload[["scheduled_for", "visit_from", "visit_to"]].values.tolist() == [
        [scheduled_for, scheduled_for, visit_to]
    ]


@pytest.mark.parametrize(
    ("review_officer", "main_officer", "assessor"),
    [
        pytest.param(1, 2, 301, id="review-officer-first"),
        pytest.param(3, 2, 302, id="review-officer-unlinked-main-officer"),
        pytest.param(None, 2, 302, id="no-review-officer-main-officer"),
        pytest.param(1, None, 301, id="no-main-officer"),
        pytest.param(1, 3, 301, id="main-unlinked-review-officer"),
    ],
)
def test_assessor(review_officer, main_officer, assessor):
    result = plan({"officer_id": review_officer}, {"main_officer_id": main_officer})
    assert result.uploads["assessor_id"].tolist() == [assessor]


@pytest.mark.parametrize(
    ("review", "trainee", "organisations", "reason"),
    [
        pytest.param(
            {"officer_id": 3},
            {"main_officer_id": None},
            None,
            "no officer with a OneFile ID (review officer 3, main officer none)",
            id="no-linked-officer",
        ),
        pytest.param(
            {"officer_id": None},
            {"main_officer_id": 3},
            None,
            "no officer with a OneFile ID (review officer none, main officer 3)",
            id="only-unlinked-main-officer",
        ),
        pytest.param(
            {},
            {},
            {},
            "OneFile learner 100 is in no synced organisation",
            id="learner-in-no-synced-organisation",
        ),
        pytest.param(
            {"officer_id": None},
            {"main_officer_id": None},
            {101: 5740},
            "no officer with a OneFile ID (review officer none, main officer none); "
            "OneFile learner 100 is in no synced organisation",
            id="both-reasons",
        ),
    ],
)
def test_rejects(review, trainee, organisations, reason):
    result = plan(review, trainee, organisations)
    assert result.uploads.empty
    assert records(result.rejects) == [(1, reason)]
    assert result.counts["reviews_upload_rejected"] == 1


def test_many_reviews_split_into_uploads_rejects_and_not_eligible():
    rows = [
        {**BASE, "review_id": 3, "officer_id": 3},
        {**BASE, "review_id": 2, "attended": "Y"},
        {**BASE, "review_id": 1},
        {**BASE, "review_id": 4, "trainee_id": 2},
    ]
    result = plan_review_uploads(
        reviews(*rows),
        trainees(TRAINEE, {"trainee_id": 2, "onefile_learner_id": 200, "main_officer_id": 3}),
        OFFICERS,
        VISIT_TYPE,
        pd.DataFrame({"learner_id": [100, 200], "organisation_id": [5740, 5741]}, dtype="Int64"),
    )
    assert result.uploads[["review_id", "organisation_id", "assessor_id"]].values.tolist() == [
        [1, 5740, 301],
        [3, 5740, 302],
        [4, 5741, 301],
    ]
    assert result.rejects.empty
    assert result.counts["reviews_not_eligible_attended_set"] == 1


@pytest.mark.parametrize(
    "staged",
    [
        pytest.param([(100, 5741), (100, 5740)], id="higher-organisation-staged-first"),
        pytest.param([(100, 5740), (100, 5741)], id="lower-organisation-staged-first"),
        pytest.param([(100, None), (100, 5741), (100, 5740), (100, 5740)], id="null-and-repeats"),
    ],
)
def test_learner_staged_by_two_organisations_uploads_to_the_lowest(staged):
    """Whatever order staging reads them in (it has none), one organisation, always the same."""
    result = plan_review_uploads(
        reviews(BASE),
        trainees(TRAINEE),
        OFFICERS,
        VISIT_TYPE,
        pd.DataFrame(staged, columns=["learner_id", "organisation_id"]).astype("Int64"),
    )
    assert result.uploads["organisation_id"].tolist() == [5740]
    assert result.rejects.empty
