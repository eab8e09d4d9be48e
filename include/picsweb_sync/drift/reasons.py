"""What each reason of the drift report means and what to do about it, as the report prints
it beside the counts (the README's table says the same, longer).

One entry per reason of the closed list (:data:`picsweb_sync.rules.drift.REASONS`, in its
order): tests/drift checks none is missing.
"""

from __future__ import annotations

from typing import NamedTuple

from picsweb_sync.rules import drift


class Reason(NamedTuple):
    meaning: str
    what_to_do: str


REASONS: dict[str, Reason] = {
    drift.UNEXPLAINED: Reason(
        "no reason on the list explains it: a defect of the sync",
        "report it with the rows (--json or --csv); the next run may not fix it",
    ),
    drift.REJECT: Reason(
        "OneFile's row was set aside (the detail gives the reject's reason)",
        "correct the value in OneFile; the next run syncs it",
    ),
    drift.CONFLICT: Reason(
        "PICSWeb changed between the run's merge and its load; the change was not made",
        "nothing: the next run merges it again",
    ),
    drift.NOT_LINKED: Reason(
        "the learner or the aim is not linked to PICSWeb (no MIS reference, ambiguous code...)",
        "link it: the MIS reference in OneFile, or one qualification per code in PICSWeb",
    ),
    drift.UNITS_ATTACHED: Reason(
        "the qualification has units in PICSWeb, which drive its progress (rule 1)",
        "nothing: expected",
    ),
    drift.RULE_KEEPS_PICSWEB: Reason(
        "a rule keeps PICSWeb's value (OneFile has none, an unmatched assessor, a review "
        "rule 5 does not upload)",
        "nothing, or fill the value in OneFile / match the assessor to an officer",
    ),
    drift.SWITCHED_OFF: Reason(
        "Download or Upload Review Data is off in PICSWeb's OneFile Settings",
        "nothing, or switch it on in the settings",
    ),
    drift.OUTSIDE_WINDOW: Reason(
        "the review is outside the review window (rescheduled, or deleted in OneFile)",
        "nothing: a run whose window covers it syncs it; look in OneFile if it was deleted",
    ),
    drift.CHANGED_SINCE: Reason(
        "changed after the last run read it (or no run yet): the next run syncs it",
        "nothing: run the sync, or wait for the next run",
    ),
    drift.PENDING_OUTBOX: Reason(
        "an outbox row will send it to OneFile",
        "nothing: the next push sends it; look at the outbox if it stays",
    ),
}
