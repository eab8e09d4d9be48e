"""OneFile's wire form of a review create: the Visit and Review bodies one planned upload
becomes (:func:`review_create_payload`), exactly as the contract names them.

OneFile's names, so they live with them, below the stages: the push sends these bodies,
and the preflight names the fields the sync writes from the same function, without
importing a writing stage.
"""

from __future__ import annotations

from typing import Any


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
