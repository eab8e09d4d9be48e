"""What a person reads on the sync page's drift view: each reason's label and what to do
about it, and each entity's and field's plain name, kept here in one place.

The reasons are the drift report's closed list (``picsweb_sync.rules.drift.REASONS``, in
its order: unexplained first); their labels are the run summary's
(``picsweb_sync.run.summary_labels.DRIFT_LABELS``), so the note, the alert mail and the
page say the same words. A reason, entity or field added later without a text here reads
as its own words, capitalised: never hidden, only plainer.
"""

from __future__ import annotations

from picsweb_sync.rules.drift.evidence import REASONS
from picsweb_sync.run.summary_labels import drift_label

__all__ = ["REASONS", "WHAT_TO_DO", "entity_label", "field_label", "reason_label", "what_to_do"]

# One sentence per reason: what the team does about a difference left for it (the README's
# table of reasons says the same, at more length).
WHAT_TO_DO: dict[str, str] = {
    "unexplained": (
        "A defect of the sync: report it with its rows (Download CSV); the next run may not fix it."
    ),
    "reject": (
        "Correct the value in OneFile (the detail gives the reject's reason); the next run "
        "syncs it."
    ),
    "conflict": "Nothing: PICSWeb changed during the run, and the next run merges it again.",
    "not_linked": ("Link it: the MIS reference in OneFile, one qualification per code in PICSWeb."),
    "units_attached": (
        "Nothing: units drive this qualification's progress in PICSWeb, so its elements are "
        "not synced."
    ),
    "rule_keeps_picsweb": (
        "Nothing; or fill the value in OneFile, or give the officer the assessor's OneFile ID."
    ),
    "switched_off": (
        "Nothing; or switch Download or Upload Review Data on in PICSWeb's OneFile Settings."
    ),
    "outside_window": (
        "Nothing: a run whose window covers it syncs it; if it was deleted in OneFile, decide "
        "in PICSWeb."
    ),
    "changed_since": "Nothing: it changed after the run read it, and the next run syncs it.",
    "pending_outbox": (
        "Nothing: the next push sends it; if it stays, see the outbox rows still pending on "
        "the run's page."
    ),
}

ENTITY_LABELS: dict[str, str] = {
    "learner": "Learner",
    "qualification": "Qualification",
    "review": "Review",
}

# The drift report's fields (PICSWeb's column names, and ``link``/``copies``).
FIELD_LABELS: dict[str, str] = {
    "link": "Link between OneFile and PICSWeb",
    "copies": "Copies in OneFile's extract",
    "total_elements": "Total elements",
    "elements_done": "Elements done",
    "registration_number": "Registration number",
    "registration_date": "Registration date",
    "certificate_applied_date": "Certificate applied for",
    "certificate_received_date": "Certificate received",
    "onefile_system_id": "Review in both systems (System ID)",
    "attended": "Attended",
    "actual_date": "Actual date",
    "officer_id": "Officer",
    "trainee_signed_date": "Learner signed",
    "scheduled_date": "Scheduled date",
    "start_time": "Start time",
}


def _words(name: str) -> str:
    return name.replace("_", " ").capitalize()


def reason_label(reason: str) -> str:
    """A reason as a person reads it (the run summary's words)."""
    return drift_label(reason)


def what_to_do(reason: str) -> str:
    """What to do about a difference of this reason (one sentence)."""
    return WHAT_TO_DO.get(reason, "")


def entity_label(entity: str) -> str:
    return ENTITY_LABELS.get(entity) or _words(entity)


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field) or _words(field)
