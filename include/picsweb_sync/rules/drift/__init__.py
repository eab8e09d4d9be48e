"""The drift report: what still differs between OneFile and PICSWeb after a run, field by
field, each difference with one reason from a closed list (:data:`REASONS`).

Pure pandas, like the other rules: DataFrames in (the OneFile rows a run extracted, PICSWeb
as it is now, what the run recorded as :class:`RunEvidence`), one frame out. The reasons
come from the rules' own functions (the merges run again over the same data, rule 5's
eligibility, the aim links' outcomes), so a rule and its report never disagree. A
difference no reason explains is **unexplained**: a defect of the sync, shown first.
"""

from __future__ import annotations

import pandas as pd

from picsweb_sync.rules.drift.evidence import (
    CHANGED_SINCE,
    COLUMNS,
    CONFLICT,
    NOT_LINKED,
    OUTSIDE_WINDOW,
    PENDING_OUTBOX,
    REASONS,
    REJECT,
    RULE_KEEPS_PICSWEB,
    SWITCHED_OFF,
    UNEXPLAINED,
    UNITS_ATTACHED,
    RunEvidence,
)
from picsweb_sync.rules.drift.qualifications import learner_links, qualification_drift
from picsweb_sync.rules.drift.reviews import review_drift

__all__ = [
    "CHANGED_SINCE",
    "COLUMNS",
    "CONFLICT",
    "NOT_LINKED",
    "OUTSIDE_WINDOW",
    "PENDING_OUTBOX",
    "REASONS",
    "REJECT",
    "RULE_KEEPS_PICSWEB",
    "SWITCHED_OFF",
    "UNEXPLAINED",
    "UNITS_ATTACHED",
    "RunEvidence",
    "counts_by_reason",
    "drift_report",
]


def drift_report(
    *,
    learners: pd.DataFrame,
    learning_aims: pd.DataFrame,
    reviews: pd.DataFrame,
    assessors: pd.DataFrame,
    trainees: pd.DataFrame,
    qualifications: pd.DataFrame,
    units: pd.DataFrame,
    officers: pd.DataFrame,
    picsweb_reviews: pd.DataFrame,
    evidence: RunEvidence,
) -> pd.DataFrame:
    """Every difference, one row each (:data:`COLUMNS`), unexplained ones first, then by
    reason, entity, learner and field. The OneFile frames are the parsed staging frames;
    the PICSWeb ones are its tables ``trainee``, ``trainee_qualification``,
    ``trainee_qualification_unit``, ``officer`` and ``review``."""
    parts = [
        learner_links(learners, trainees),
        qualification_drift(learning_aims, trainees, qualifications, units, evidence),
        review_drift(reviews, assessors, learners, trainees, officers, picsweb_reviews, evidence),
    ]
    report = pd.concat(parts, ignore_index=True)[COLUMNS]
    order = report["reason"].map({reason: n for n, reason in enumerate(REASONS)})
    report = report.assign(_order=order).sort_values(
        ["_order", "entity", "learner_id", "onefile_id", "picsweb_key", "field"],
        kind="stable",
        na_position="last",
    )
    return report.drop(columns="_order").reset_index(drop=True)


def counts_by_reason(report: pd.DataFrame) -> dict[str, int]:
    """Differences per reason, every reason named (zero included) so runs line up."""
    made = report["reason"].value_counts()
    return {reason: int(made.get(reason, 0)) for reason in REASONS}
