"""Rules 5-6 of the daily sync: officer matching, review download and review upload plan
(``shared/contract/picsweb-schema.md``, "Matching" and "Rules").

Decisions the contract leaves open, made here once:
- officer matching starts from the review's ``AssessorID`` itself: an officer whose
  ``onefile_id`` is that ID matches even when the OneFile user was not extracted this run
  (archived, another role or organisation, a rejected row). Only an ID no officer claims
  is matched by email, which needs the staged assessor's email. Two officers with that
  ``onefile_id``, or (with none) two officers with that email, match nobody; emails
  compare trimmed and case-insensitively; a blank email matches nothing; an assessor
  staged twice whose copies give two different emails is matched by ID only;
- rule 6 touches only the fields the contract names (``end_time`` is PICSWeb's own), and
  only fields whose value really changes produce an update;
- the same review ID twice in the staged reviews (two pages, two organisations) is one
  review when its copies agree in every value but ``organisation_id`` and ``raw``
  (``reviews_duplicate``); a review whose copies differ (OneFile changed it between two
  searches) is skipped this run and counted (``reviews_conflicting_copies``), since which
  copy is current is unknown (``qualifications.distinct_copies``, as for learning aims);
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

from picsweb_sync.onefile.ukdates import format_instant, uk_date, uk_local_to_utc, uk_time
from picsweb_sync.rules import changes
from picsweb_sync.rules.blank import is_blank
from picsweb_sync.rules.qualifications import distinct_copies

TABLE = "review"
NORMAL = "Normal"
DEFAULT_START = dt.time(9, 0)
DEFAULT_VISIT = pd.Timedelta(hours=1)
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
_OF, _PW = "_onefile", "_picsweb"


@dataclass(frozen=True)
class ReviewMerge:
    """What rule 6 decided: field changes of existing reviews, new reviews, counts."""

    picsweb_updates: pd.DataFrame
    picsweb_review_inserts: pd.DataFrame
    counts: dict[str, int]


@dataclass(frozen=True)
class ReviewUploadPlan:
    """What rule 5 will send (``uploads``), what it cannot (``rejects``), and counts."""

    uploads: pd.DataFrame
    rejects: pd.DataFrame
    counts: dict[str, int]


# ----- officer matching -------------------------------------------------------------------
def match_officers(assessors: pd.DataFrame, officers: pd.DataFrame) -> pd.DataFrame:
    """Each staged OneFile assessor's PICSWeb officer: ``assessor_id``, ``officer_id``
    (Int64, NA when none) and ``matched_by`` (``onefile_id``, ``email``, ``ambiguous``,
    ``none``). :func:`match_assessor_ids` for the IDs of ``assessors`` themselves."""
    return match_assessor_ids(assessors["assessor_id"], assessors, officers)


def match_assessor_ids(
    assessor_ids: pd.Series, assessors: pd.DataFrame, officers: pd.DataFrame
) -> pd.DataFrame:
    """The PICSWeb officer of each distinct OneFile assessor ID in ``assessor_ids`` (nulls
    dropped), in the shape of :func:`match_officers`.

    ``officer.onefile_id`` first, straight from the ID: the assessor need not be among the
    staged ``assessors`` (archived, another role or organisation, a rejected row). Only an
    ID no officer claims is matched by email, which needs the staged assessor's email, and
    only to a single officer. An assessor staged more than once (two organisations, two
    roles) has one email: its copies' non-blank emails must agree, else it is ambiguous.
    """
    ids = pd.Series(assessor_ids, dtype="Int64").dropna().drop_duplicates()
    result = pd.DataFrame({"assessor_id": ids.to_numpy()})
    by_id = _candidates(
        result.merge(
            officers[["officer_id", "onefile_id"]].dropna(),
            left_on="assessor_id",
            right_on="onefile_id",
        )
    )
    emails, disagreeing = _assessor_emails(assessors)
    officer_emails = officers.assign(email_key=_email_key(officers["email"]))
    by_email = _candidates(
        result.merge(emails, on="assessor_id").merge(
            officer_emails[["officer_id", "email_key"]].dropna(), on="email_key"
        )
    )
    result = result.merge(by_id, on="assessor_id", how="left")
    result = result.merge(by_email, on="assessor_id", how="left", suffixes=("", "_email"))
    id_count = result["candidates"].fillna(0)
    email_count = result["candidates_email"].fillna(0)
    email_unsure = result["assessor_id"].isin(disagreeing).to_numpy(dtype=bool)
    use_email = (id_count == 0) & (email_count == 1)
    officer_id = (
        result["officer_id"]
        .where(id_count == 1)
        .fillna(result["officer_id_email"].where(use_email))
    )
    matched_by = np.select(
        [
            id_count == 1,
            use_email,
            (id_count > 1) | (email_count > 1) | ((id_count == 0) & email_unsure),
        ],
        ["onefile_id", "email", "ambiguous"],
        default="none",
    )
    return pd.DataFrame(
        {
            "assessor_id": result["assessor_id"].astype("Int64"),
            "officer_id": officer_id.astype("Int64"),
            "matched_by": pd.Series(matched_by, index=result.index, dtype="string"),
        }
    ).reset_index(drop=True)


def _assessor_emails(assessors: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(``assessor_id``/``email_key`` of each staged assessor with one non-blank email,
    the IDs whose copies give different emails)."""
    keys = (
        pd.DataFrame(
            {
                "assessor_id": assessors["assessor_id"].astype("Int64"),
                "email_key": _email_key(assessors["email"]),
            }
        )
        .dropna()
        .drop_duplicates()
    )
    disagree = keys["assessor_id"].duplicated(keep=False)
    return keys[~disagree], keys.loc[disagree, "assessor_id"].drop_duplicates()


def _candidates(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per assessor: one candidate officer and how many there are."""
    return pairs.groupby("assessor_id", as_index=False).agg(
        officer_id=("officer_id", "first"), candidates=("officer_id", "size")
    )


def _email_key(emails: pd.Series) -> pd.Series:
    key = emails.astype("string").str.strip().str.casefold()
    return key.mask(key.eq(""))


# ----- rule 6: download -------------------------------------------------------------------
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


# ----- rule 5: upload plan -----------------------------------------------------------------
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
