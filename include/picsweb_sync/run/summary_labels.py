"""What a person reads for each key of a run's summary (``picsweb_sync.run.summary``).

The summary is stored and compared under its keys (``picsweb_reviews_created``); a mail or
a page shows a person the label (``PICSWeb reviews created``). One table, so the alert
mail's HTML and plain-text parts (and anything else that shows a summary) say the same
words. The drift report's reasons have theirs in :mod:`picsweb_sync.run.drift_labels`. A key or reason without a label (one added later) reads
as its words, capitalised: a new key is never hidden, only plainer.
"""

from __future__ import annotations

from picsweb_sync.run.drift_labels import DRIFT_LABELS, drift_label  # noqa: F401 (their users' home)

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


def label(key: str) -> str:
    """The label of a summary key (its words, capitalised, when the table has none)."""
    return SUMMARY_LABELS.get(key) or key.replace("_", " ").capitalize()
