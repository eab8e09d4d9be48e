"""The OneFile API's names, as ``../shared/contract/onefile-api.md`` spells them: the entity
(URL path) each extract reads and updates, and each JSON field with the staging column and
the kind of value it becomes.

They live here and nowhere else, the **[assumed]** ones included (``Code``, ``Title``,
``CertificateReceivedDate``, ``TotalElements``, ``ElementsDone``): a deployment whose OneFile
spells them differently corrects :data:`JSON_FIELDS` and nothing else.

Plain data, no SQLAlchemy: the merge rules (:mod:`picsweb_sync.rules`, pure pandas) name the
OneFile fields they send back from here without pulling in the database layer. Which PICSWeb
column bounds each value, and the parsing itself, are :mod:`picsweb_sync.onefile.fields`'.
The user roles the extract searches by (:data:`LEARNER_ROLE`, :data:`ASSESSOR_ROLES`) are
OneFile's names too, for the extract and the preflight alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["id", "int", "count", "text", "instant", "uk_date"]

# OneFile's user roles the extract searches ``/User/Search`` by.
LEARNER_ROLE = 1
ASSESSOR_ROLES = (4, 5, 10)  # trainee assessor, assessor/tutor, IQA


@dataclass(frozen=True)
class JsonField:
    """One OneFile JSON field and the staging column it becomes."""

    onefile: str
    column: str
    kind: Kind
    required: bool = False


def _id(column: str) -> JsonField:
    return JsonField("ID", column, "id", required=True)


JSON_FIELDS: dict[str, tuple[JsonField, ...]] = {
    "learners": (
        _id("learner_id"),
        JsonField("FirstName", "first_name", "text"),
        JsonField("LastName", "last_name", "text"),
        JsonField("Email", "email", "text"),
        JsonField("MISID", "mis_id", "text"),
        JsonField("ULN", "uln", "text"),
        JsonField("DefaultAssessorID", "default_assessor_id", "int"),
        JsonField("LastModified", "last_modified", "instant"),
    ),
    "assessors": (
        _id("assessor_id"),
        JsonField("FirstName", "first_name", "text"),
        JsonField("LastName", "last_name", "text"),
        JsonField("Email", "email", "text"),
        JsonField("Role", "role", "int"),
    ),
    "learning_aims": (
        _id("learning_aim_id"),
        JsonField("UserID", "learner_id", "int"),
        JsonField("Code", "code", "text"),  # [assumed]
        JsonField("Title", "title", "text"),  # [assumed]
        JsonField("TotalElements", "total_elements", "count"),  # [assumed]
        JsonField("ElementsDone", "elements_done", "count"),  # [assumed]
        JsonField("RegistrationNumber", "registration_number", "text"),
        JsonField("RegistrationDate", "registration_date", "uk_date"),
        JsonField("CertificateAppliedDate", "certificate_applied_date", "uk_date"),
        JsonField("CertificateReceivedDate", "certificate_received_date", "uk_date"),  # [assumed]
    ),
    "reviews": (
        _id("review_id"),
        JsonField("LearnerID", "learner_id", "int"),
        JsonField("AssessorID", "assessor_id", "int"),
        # Required: a PICSWeb review cannot exist without its scheduled date.
        JsonField("ScheduledFor", "scheduled_for", "instant", required=True),
        JsonField("Status", "status", "int"),
        JsonField("StartedOn", "started_on", "instant"),
        JsonField("LearnerSignedOn", "learner_signed_on", "instant"),
        JsonField("EndTime", "end_time", "instant"),
        JsonField("VisitID", "visit_id", "int"),
    ),
}

# The OneFile entity (URL path) each parsed entity is read from and updated through.
ONEFILE_ENTITY = {
    "learners": "User",
    "assessors": "User",
    "learning_aims": "LearningAim",
    "reviews": "Review",
}

# staging column -> OneFile JSON name, per entity: how a change is sent back to OneFile,
# e.g. ONEFILE_NAMES["learning_aims"]["registration_number"] == "RegistrationNumber".
ONEFILE_NAMES: dict[str, dict[str, str]] = {
    entity: {field.column: field.onefile for field in fields}
    for entity, fields in JSON_FIELDS.items()
}
