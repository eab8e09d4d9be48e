"""Rule 6 of the daily sync, review download (``shared/contract/picsweb-schema.md``,
"Rules"): each OneFile review of a linked learner updates the PICSWeb review with its
``onefile_system_id``, or becomes a new ``Normal`` review.

Decisions the contract leaves open, made here once:
- rule 6 touches only the fields the contract names (``end_time`` is PICSWeb's own), and
  only fields whose value really changes produce an update; the officer is the one matched
  to the review's assessor (:mod:`.officer_matching`), and no match leaves PICSWeb's;
- the same review ID twice in the staged reviews (two pages, two organisations) is one
  review when its copies agree in every value but ``organisation_id`` and ``raw``
  (``reviews_duplicate``); a review whose copies differ (OneFile changed it between two
  searches) is skipped this run and counted (``reviews_conflicting_copies``), since which
  copy is current is unknown (``qualifications.distinct_copies``, as for learning aims).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from picsweb_sync.onefile.ukdates import uk_date, uk_time
from picsweb_sync.rules import changes
from picsweb_sync.rules.qualifications import distinct_copies
from picsweb_sync.rules.reviews.officer_matching import match_assessor_ids

TABLE = "review"
NORMAL = "Normal"
# Rule 6 fields: (PICSWeb column, rule, a missing OneFile value leaves PICSWeb as it is).
RULE6_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("attended", "rule6_attended", False),
    ("actual_date", "rule6_actual_date", False),
    ("officer_id", "rule6_officer_id", True),
    ("trainee_signed_date", "rule6_trainee_signed_date", True),
    ("scheduled_date", "rule6_scheduled_date", False),
    ("start_time", "rule6_start_time", False),
)
INSERT_COLUMNS = [
    "trainee_id",
    "review_type",
    "scheduled_date",
    "start_time",
    "end_time",
    "officer_id",
    "attended",
    "actual_date",
    "trainee_signed_date",
    "onefile_system_id",
]
_OF, _PW = "_onefile", "_picsweb"


@dataclass(frozen=True)
class ReviewMerge:
    """What rule 6 decided: field changes of existing reviews, new reviews, counts."""

    picsweb_updates: pd.DataFrame
    picsweb_review_inserts: pd.DataFrame
    counts: dict[str, int]


def merge_reviews(
    reviews: pd.DataFrame,
    learners_trainees: pd.DataFrame,
    officers: pd.DataFrame,
    assessors: pd.DataFrame,
    picsweb_reviews: pd.DataFrame,
) -> ReviewMerge:
    """Rule 6: each OneFile review of a linked learner updates the PICSWeb review with its
    ``onefile_system_id``, or becomes a new ``Normal`` review.

    ``reviews``/``assessors`` are parsed OneFile frames; ``learners_trainees`` is the
    PICSWeb ``trainee`` table, ``officers`` the ``officer`` table and
    ``picsweb_reviews`` the ``review`` table.
    """
    unique, duplicates, conflicting = distinct_copies(reviews, "review_id")
    wanted = wanted_reviews(unique, learners_trainees, officers, assessors)
    existing = wanted.merge(
        picsweb_reviews,
        left_on="review_id",
        right_on="onefile_system_id",
        suffixes=(_OF, _PW),
    )
    updates = changes.concat(
        [
            _changed(existing, field, rule, leave_when_missing)
            for field, rule, leave_when_missing in RULE6_FIELDS
        ]
    )
    new = wanted[~wanted["review_id"].isin(picsweb_reviews["onefile_system_id"].dropna())]
    inserts = _review_inserts(new)
    counts = {
        "reviews_received": len(reviews),
        "reviews_duplicate": duplicates,
        "reviews_conflicting_copies": conflicting,
        "reviews_learner_unlinked": len(unique) - len(wanted),
        "reviews_matched": len(existing),
        "reviews_new": len(inserts),
        "reviews_officer_matched": int(wanted["officer_id"].notna().sum()),
        "reviews_officer_unmatched": int(
            (wanted["assessor_id"].notna() & wanted["officer_id"].isna()).sum()
        ),
        **changes.rule_counts([rule for _, rule, _ in RULE6_FIELDS], updates, "picsweb_"),
    }
    return ReviewMerge(updates, inserts, counts)


def wanted_reviews(
    reviews: pd.DataFrame,
    learners_trainees: pd.DataFrame,
    officers: pd.DataFrame,
    assessors: pd.DataFrame,
) -> pd.DataFrame:
    """Rule 6's wanted PICSWeb values of each OneFile review (one row per review, already
    distinct) of a linked learner: ``review_id``, ``trainee_id``, ``assessor_id``, then the
    fields of :data:`RULE6_FIELDS` (NA where the rule leaves PICSWeb's value)."""
    linked = reviews.merge(
        learners_trainees[["trainee_id", "onefile_learner_id"]].dropna(),
        left_on="learner_id",
        right_on="onefile_learner_id",
    )
    matched = match_assessor_ids(linked["assessor_id"], assessors, officers)
    matched = matched[["assessor_id", "officer_id"]].dropna()
    linked = linked.merge(matched, on="assessor_id", how="left")
    return pd.DataFrame(
        {
            "review_id": linked["review_id"],
            "trainee_id": linked["trainee_id"],
            "assessor_id": linked["assessor_id"],
            **attended_from_started_on(linked["started_on"]),
            "officer_id": officer_from_assessor(linked["officer_id"]),
            "trainee_signed_date": trainee_signed_from_learner_signed_on(
                linked["learner_signed_on"]
            ),
            **schedule_from_scheduled_for(linked["scheduled_for"]),
        }
    )


def attended_from_started_on(started_on: pd.Series) -> dict[str, pd.Series]:
    """``StartedOn`` set: ``attended`` = ``Y`` and ``actual_date`` = its UK date;
    null: ``attended`` = ``U`` and ``actual_date`` = null (the review has not happened)."""
    attended = pd.Series(np.where(started_on.notna(), "Y", "U"), index=started_on.index)
    return {"attended": attended.astype("string"), "actual_date": uk_date(started_on)}


def officer_from_assessor(matched_officer_id: pd.Series) -> pd.Series:
    """The officer matched to the OneFile assessor; NA (no match) leaves PICSWeb's as it is."""
    return matched_officer_id.astype("Int64")


def trainee_signed_from_learner_signed_on(learner_signed_on: pd.Series) -> pd.Series:
    """``LearnerSignedOn``'s UK date; null leaves ``trainee_signed_date`` as it is."""
    return uk_date(learner_signed_on)


def schedule_from_scheduled_for(scheduled_for: pd.Series) -> dict[str, pd.Series]:
    """``scheduled_date`` and ``start_time`` follow ``ScheduledFor`` in UK time."""
    return {"scheduled_date": uk_date(scheduled_for), "start_time": uk_time(scheduled_for)}


def _changed(
    existing: pd.DataFrame, field: str, rule: str, leave_when_missing: bool
) -> pd.DataFrame:
    """Update rows for ``field`` where OneFile's wanted value differs from PICSWeb's."""
    wanted, current = existing[field + _OF], existing[field + _PW]
    change = changes.differs(current, wanted)
    if leave_when_missing:
        change &= wanted.notna()
    return changes.picsweb_updates(
        TABLE,
        existing.loc[change, "review_id_picsweb"],
        field,
        current[change],
        wanted[change],
        rule,
    )


def _review_inserts(new: pd.DataFrame) -> pd.DataFrame:
    """New PICSWeb reviews (the ``review`` columns minus ``review_id``)."""
    index = new.index
    return pd.DataFrame(
        {
            "trainee_id": new["trainee_id"].astype("Int64"),
            "review_type": pd.Series(NORMAL, index=index, dtype="string"),
            "scheduled_date": new["scheduled_date"],
            "start_time": new["start_time"],
            "end_time": pd.Series([None] * len(index), index=index, dtype=object),
            "officer_id": new["officer_id"].astype("Int64"),
            "attended": new["attended"],
            "actual_date": new["actual_date"],
            "trainee_signed_date": new["trainee_signed_date"],
            "onefile_system_id": new["review_id"].astype("Int64"),
        },
        columns=INSERT_COLUMNS,
    ).reset_index(drop=True)
