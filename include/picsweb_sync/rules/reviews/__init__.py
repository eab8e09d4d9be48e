"""Rules 5-6 of the daily sync: officer matching, review download and review upload plan
(``shared/contract/picsweb-schema.md``, "Matching" and "Rules").

- ``officer_matching``: each OneFile assessor's PICSWeb officer (:func:`match_officers`);
- ``download``: rule 6, OneFile's reviews into PICSWeb (:func:`merge_reviews`);
- ``upload_plan``: rule 5, which PICSWeb reviews to create in OneFile
  (:func:`plan_review_uploads`).

Each module states the decisions the contract leaves open for its part. Callers use the
names below from ``picsweb_sync.rules.reviews`` itself.
"""

from __future__ import annotations

from picsweb_sync.rules.reviews.download import (
    INSERT_COLUMNS,
    NORMAL,
    RULE6_FIELDS,
    TABLE,
    ReviewMerge,
    attended_from_started_on,
    merge_reviews,
    officer_from_assessor,
    schedule_from_scheduled_for,
    trainee_signed_from_learner_signed_on,
    wanted_reviews,
)
from picsweb_sync.rules.reviews.officer_matching import match_assessor_ids, match_officers
from picsweb_sync.rules.reviews.upload_plan import (
    DEFAULT_START,
    DEFAULT_VISIT,
    UPLOAD_COLUMNS,
    ReviewUploadPlan,
    assessor_for_upload,
    plan_review_uploads,
    review_upload_eligibility,
    scheduled_for_and_visit_end,
)

__all__ = [
    "DEFAULT_START",
    "DEFAULT_VISIT",
    "INSERT_COLUMNS",
    "NORMAL",
    "RULE6_FIELDS",
    "TABLE",
    "UPLOAD_COLUMNS",
    "ReviewMerge",
    "ReviewUploadPlan",
    "assessor_for_upload",
    "attended_from_started_on",
    "match_assessor_ids",
    "match_officers",
    "merge_reviews",
    "officer_from_assessor",
    "plan_review_uploads",
    "review_upload_eligibility",
    "schedule_from_scheduled_for",
    "scheduled_for_and_visit_end",
    "trainee_signed_from_learner_signed_on",
    "wanted_reviews",
]
