"""Rule 5 of the daily sync, the review upload plan (``shared/contract/picsweb-schema.md``,
"Rules"): which PICSWeb reviews to create in OneFile, with their Visit and Review values.

Decisions the contract leaves open, made here once:
- rule 5 eligibility is the contract's scope: a ``Normal`` review (trimmed, any case, as
  SQL Server compares it) of a linked trainee, without ``onefile_system_id``, with a blank
  ``attended`` and no ``actual_date``. A review outside that scope is simply not eligible
  (counted by its first failing condition, never a reject): a trainee not on OneFile is
  PICSWeb's learner upload's business, not a fault of the review. An eligible review that
  still cannot be sent is a **reject** with its reason, every run until fixed: no officer
  with a OneFile ID (the review's, else the trainee's main officer), or a linked learner
  that no synced organisation has (so the Visit's ``OrganisationID`` is unknown);
- a learner staged by two organisations uploads its reviews to the lowest organisation ID,
  so the choice never depends on the (unordered) order staging is read in;
- an ``end_time`` not after the start time is ignored (one-hour visit), since OneFile
  would get a visit that ends before it begins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from picsweb_sync.onefile.ukdates import format_instant, uk_local_to_utc
from picsweb_sync.rules.blank import is_blank
from picsweb_sync.rules.reviews.download import NORMAL

DEFAULT_START = dt.time(9, 0)
DEFAULT_VISIT = pd.Timedelta(hours=1)
UPLOAD_COLUMNS = [
    "review_id",
    "trainee_id",
    "learner_id",
    "organisation_id",
    "assessor_id",
    "visit_type_id",
    "scheduled_for",
    "visit_from",
    "visit_to",
]


@dataclass(frozen=True)
class ReviewUploadPlan:
    """What rule 5 will send (``uploads``), what it cannot (``rejects``), and counts."""

    uploads: pd.DataFrame
    rejects: pd.DataFrame
    counts: dict[str, int]


def plan_review_uploads(
    picsweb_reviews: pd.DataFrame,
    trainees: pd.DataFrame,
    officers: pd.DataFrame,
    visit_type_id: int,
    organisation_by_learner: pd.DataFrame,
) -> ReviewUploadPlan:
    """Rule 5: which PICSWeb reviews to create in OneFile, with the Visit and Review values.

    ``ScheduledFor`` is the scheduled date and start time as UK time (09:00 when no start
    time) in UTC; the visit lasts until the end time, else one hour. The assessor is the
    review's officer, else the trainee's main officer, whichever has a ``onefile_id``.
    ``organisation_by_learner`` (``learner_id``, ``organisation_id``) comes from the staged
    learners. Returns uploads and rejects in the shapes of docs/architecture.md.
    """
    reviews = picsweb_reviews.merge(
        trainees[["trainee_id", "onefile_learner_id", "main_officer_id"]],
        on="trainee_id",
        how="left",
    )
    not_eligible = review_upload_eligibility(reviews)
    eligible = reviews[not_eligible.isna()].rename(columns={"onefile_learner_id": "learner_id"})
    eligible = eligible.merge(
        _one_organisation_per_learner(organisation_by_learner), on="learner_id", how="left"
    )
    eligible["assessor_id"] = assessor_for_upload(eligible, officers)
    reason = _upload_reject_reasons(eligible)
    ready = eligible[reason.isna()].sort_values("review_id").reset_index(drop=True)
    start, end = scheduled_for_and_visit_end(
        ready["scheduled_date"], ready["start_time"], ready["end_time"]
    )
    uploads = pd.DataFrame(
        {
            **{name: ready[name].astype("Int64") for name in UPLOAD_COLUMNS[:5]},
            "visit_type_id": pd.Series(visit_type_id, index=ready.index, dtype="Int64"),
            "scheduled_for": format_instant(start).astype("string"),
            "visit_from": format_instant(start).astype("string"),
            "visit_to": format_instant(end).astype("string"),
        },
        columns=UPLOAD_COLUMNS,
    )
    rejected = eligible[reason.notna()]
    rejects = pd.DataFrame(
        {"review_id": rejected["review_id"].astype("Int64"), "reason": reason[reason.notna()]}
    ).sort_values("review_id", ignore_index=True)
    counts = {
        "reviews_eligible": len(eligible),
        "reviews_to_upload": len(uploads),
        "reviews_upload_rejected": len(rejects),
        **{
            f"reviews_not_eligible_{name}": int(not_eligible.eq(name).sum())
            for name in _NOT_ELIGIBLE
        },
    }
    return ReviewUploadPlan(uploads, rejects, counts)


def _one_organisation_per_learner(organisation_by_learner: pd.DataFrame) -> pd.DataFrame:
    """``learner_id``/``organisation_id``, one row per learner: a learner staged by several
    organisations' searches takes the lowest organisation, the same whatever order staging
    was read in; a null organisation is none."""
    pairs = organisation_by_learner[["learner_id", "organisation_id"]].dropna()
    pairs = pairs.sort_values(["learner_id", "organisation_id"], kind="stable")
    return pairs.drop_duplicates("learner_id")


_NOT_ELIGIBLE = ("not_normal", "in_onefile", "attended_set", "actual_date_set", "trainee_unlinked")


def review_upload_eligibility(reviews: pd.DataFrame) -> pd.Series:
    """Rule 5's scope, per review: NA when eligible, else its first failing condition
    (one of ``not_normal``, ``in_onefile``, ``attended_set``, ``actual_date_set``,
    ``trainee_unlinked``). ``reviews`` is ``review`` joined to its trainee."""
    review_type = reviews["review_type"].astype("string").str.strip().str.casefold()
    failing = [
        review_type.ne(NORMAL.casefold()).fillna(True),
        reviews["onefile_system_id"].notna(),
        ~is_blank(reviews["attended"]),
        reviews["actual_date"].notna(),
        reviews["onefile_learner_id"].isna(),
    ]
    first = np.select([mask.to_numpy(dtype=bool) for mask in failing], _NOT_ELIGIBLE, default="")
    return pd.Series(first, index=reviews.index, dtype="string").replace("", pd.NA)


def assessor_for_upload(reviews: pd.DataFrame, officers: pd.DataFrame) -> pd.Series:
    """The OneFile assessor of each review: its officer's ``onefile_id``, else the trainee's
    main officer's; NA when neither officer is linked to OneFile."""
    onefile_ids = officers.set_index("officer_id")["onefile_id"]
    own = reviews["officer_id"].map(onefile_ids)
    main = reviews["main_officer_id"].map(onefile_ids)
    return own.fillna(main).astype("Int64")


def _upload_reject_reasons(eligible: pd.DataFrame) -> pd.Series:
    """Why an eligible review cannot be sent (NA: it can), reasons joined by ``'; '``."""
    no_officer = (
        "no officer with a OneFile ID (review officer "
        + eligible["officer_id"].astype("string").fillna("none")
        + ", main officer "
        + eligible["main_officer_id"].astype("string").fillna("none")
        + ")"
    ).where(eligible["assessor_id"].isna())
    no_organisation = (
        "OneFile learner "
        + eligible["learner_id"].astype("string")
        + " is in no synced organisation"
    ).where(eligible["organisation_id"].isna())
    both = no_officer + "; " + no_organisation
    return both.fillna(no_officer).fillna(no_organisation).astype("string")


def scheduled_for_and_visit_end(
    dates: pd.Series, start_times: pd.Series, end_times: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """(``ScheduledFor``, visit end) as naive UTC for UK dates and wall-clock times:
    09:00 without a start time; without an end time after the start, one hour later."""
    start_times = start_times.astype(object).where(start_times.notna(), DEFAULT_START)
    start = uk_local_to_utc(dates, start_times)
    end = uk_local_to_utc(dates, end_times)
    end = end.where(end > start, start + DEFAULT_VISIT)
    return start, end
