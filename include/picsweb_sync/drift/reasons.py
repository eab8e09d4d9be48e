"""What each reason of the drift report means and what to do about it, as ``make drift``
prints it beside the counts: the sync's own words (:mod:`picsweb_sync.run.drift_labels`),
the same the sync page and the note use.

One entry per reason of the closed list (:data:`picsweb_sync.rules.drift.REASONS`, in its
order): tests/drift checks none is missing.
"""

from __future__ import annotations

from typing import NamedTuple

from picsweb_sync.rules import drift
from picsweb_sync.run.drift_labels import meaning, what_to_do


class Reason(NamedTuple):
    meaning: str
    what_to_do: str


REASONS: dict[str, Reason] = {
    reason: Reason(meaning(reason), what_to_do(reason)) for reason in drift.REASONS
}
