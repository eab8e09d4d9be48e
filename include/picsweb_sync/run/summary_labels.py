"""What a person reads for each key of a run's summary (``picsweb_sync.run.summary``).

The summary is stored and compared under its keys (``picsweb_reviews_created``); a mail or
a page shows a person the label (``PICSWeb reviews created``). One table, so the alert
mail's HTML and plain-text parts (and anything else that shows a summary) say the same
words; one more for the drift report's reasons (:data:`DRIFT_LABELS`: the note, the mail
and the sync page's drift view). A key or reason without a label (one added later) reads
as its words, capitalised: a new key is never hidden, only plainer.
"""

from __future__ import annotations

SUMMARY_LABELS: dict[str, str] = {
    "learners_extracted": "Learners extracted",
    "learning_aims_extracted": "Learning aims extracted",
    "assessors_extracted": "Assessors extracted",
    "reviews_extracted": "Reviews extracted",
    "picsweb_fields_changed": "PICSWeb fields changed",
    "picsweb_reviews_created": "PICSWeb reviews created",
    "onefile_fields_changed": "OneFile fields changed",
    "onefile_reviews_created": "OneFile reviews created",
    "rejects": "Rows set aside (rejects)",
    "conflicts": "Conflicts (changed in PICSWeb meanwhile)",
    "outbox_pending": "OneFile writes still to send",
    "dry_run": "Dry run (nothing written)",
    "rejects_by_kind": "Rejects by reason",
    "reruns": "Tasks rerun (tries)",
    "latest_try": "What the latest try did",
    "drift": "Differences left between OneFile and PICSWeb (drift report)",
}

# The drift report's reasons (``picsweb_sync.rules.drift.REASONS``, in its order), as a
# person reads them; the note writes them in lower case ("not linked 2").
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


def label(key: str) -> str:
    """The label of a summary key (its words, capitalised, when the table has none)."""
    return SUMMARY_LABELS.get(key) or key.replace("_", " ").capitalize()


def drift_label(reason: str) -> str:
    """The label of a drift reason (its words, capitalised, when the table has none)."""
    return DRIFT_LABELS.get(reason) or reason.replace("_", " ").capitalize()
