"""The drift report's words, in one place: each reason's label, what it means and what to do
about it, and each entity's and field's plain name.

The reasons are the closed list of :data:`picsweb_sync.rules.drift.REASONS`, in its order
(unexplained first). The note and the alert mail use the labels, ``make drift`` prints the
meaning and what to do, and the sync page's drift view shows the label and what to do: all
from here, so they say the same words (the README's table of reasons says the same, at more
length). A reason, entity or field without an entry (one added later) reads as its own
words, capitalised: never hidden, only plainer.
"""

from __future__ import annotations

# The reasons as a person reads them; the note writes them in lower case ("not linked 2").
DRIFT_LABELS: dict[str, str] = {
    "unexplained": "Unexplained",
    "reject": "Set aside as a reject",
    "conflict": "Conflict left for the next run",
    "not_linked": "Not linked",
    "units_attached": "Units attached",
    "rule_keeps_picsweb": "Rule keeps PICSWeb's value",
    "switched_off": "Switched off in the settings",
    "outside_window": "Outside the review window",
    "changed_since": "Changed since the run read it",
    "pending_outbox": "Pending in the outbox",
}

# What each reason means (``make drift`` prints it beside the count).
DRIFT_MEANINGS: dict[str, str] = {
    "unexplained": "no reason on the list explains it: a defect of the sync",
    "reject": "OneFile's row was set aside (the detail gives the reject's reason)",
    "conflict": "PICSWeb changed between the run's merge and its load; the change was not made",
    "not_linked": "the learner or the aim is not linked to PICSWeb (no MIS reference, ambiguous code...)",
    "units_attached": "the qualification has units in PICSWeb, which drive its progress (rule 1)",
    "rule_keeps_picsweb": "a rule keeps PICSWeb's value (OneFile has none, an unmatched assessor, a review "
    "rule 5 does not upload)",
    "switched_off": "Download or Upload Review Data is off in PICSWeb's OneFile Settings",
    "outside_window": "the review is outside the review window (rescheduled, or deleted in OneFile)",
    "changed_since": "changed after the last run read it (or no run yet): the next run syncs it",
    "pending_outbox": "an outbox row will send it to OneFile",
}

# One sentence per reason: what the team does about a difference left for it.
WHAT_TO_DO: dict[str, str] = {
    "unexplained": (
        "A defect of the sync: report it with its rows (the page's CSV, or make drift's --csv); "
        "the next run may not fix it."
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


def drift_label(reason: str) -> str:
    """The label of a drift reason."""
    return DRIFT_LABELS.get(reason) or _words(reason)


def meaning(reason: str) -> str:
    """What a difference of this reason means."""
    return DRIFT_MEANINGS.get(reason) or _words(reason)


def what_to_do(reason: str) -> str:
    """What to do about a difference of this reason (one sentence)."""
    return WHAT_TO_DO.get(reason, "")


def entity_label(entity: str) -> str:
    return ENTITY_LABELS.get(entity) or _words(entity)


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field) or _words(field)
