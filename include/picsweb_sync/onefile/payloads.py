"""OneFile's wire bodies, exactly as the contract names them: an aim update's partial body
(:func:`aim_update_items`) and a review create's Visit and Review bodies
(:func:`review_create_payload`, :func:`review_create_items`).

OneFile's names, so they live with them, below the stages: the push enqueues these bodies
(the outbox, the plan again before each chunk and the dry run build the same ones), and the
preflight names the fields the sync writes from the same function, without importing a
writing stage.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def review_create_payload(upload: Any) -> dict[str, Any]:
    """The Visit and Review bodies of one planned upload (a ``review_uploads`` row)."""
    return {
        "visit": {
            "LearnerID": int(upload.learner_id),
            "OrganisationID": int(upload.organisation_id),
            "DateFrom": upload.visit_from,
            "DateTo": upload.visit_to,
            "VisitTypeID": int(upload.visit_type_id),
            "SMSReminder": False,
            "AssessorID": int(upload.assessor_id),
        },
        "review": {
            "LearnerID": int(upload.learner_id),
            "Status": 1,
            "ScheduledFor": upload.scheduled_for,
            "AssessorID": int(upload.assessor_id),
        },
        "organisation_id": int(upload.organisation_id),
    }


def aim_update_items(changes: pd.DataFrame) -> pd.DataFrame:
    """One outbox item per learning aim: a partial body of every field to fill."""
    if changes.empty:
        return pd.DataFrame({"target_id": pd.Series(dtype="Int64"), "payload": []})
    payloads = changes.groupby("entity_id").apply(
        lambda g: dict(zip(g["field"], g["new"], strict=True)), include_groups=False
    )
    return pd.DataFrame({"target_id": payloads.index, "payload": payloads.to_numpy()})


def review_create_items(uploads: pd.DataFrame) -> pd.DataFrame:
    """The Visit and Review bodies of each upload, exactly as the contract names them."""
    items = [
        {"target_id": int(u.review_id), "payload": review_create_payload(u)}
        for u in uploads.itertuples(index=False)  # builds small dicts, no data-dependent logic
    ]
    return pd.DataFrame(items, columns=["target_id", "payload"])
