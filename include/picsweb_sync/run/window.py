"""Which reviews a run syncs, and whether it also does the learner and qualification work.

A scheduled (or manual) run syncs every review that can still change: those scheduled from
``days_before`` days before its data interval to ``days_after`` days after it, because a
review scheduled last week can be started or signed today. A backfill run syncs only the
reviews scheduled inside its own data interval, and skips the learner, qualification and
upload work: that work is not tied to a date, so repeating it for every day of a
backfill would cost hundreds of identical API calls and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class RunMode(StrEnum):
    AUTO = "auto"  # backfill runs -> REVIEWS_ONLY, all others -> FULL
    FULL = "full"
    REVIEWS_ONLY = "reviews_only"


@dataclass(frozen=True)
class SyncPlan:
    mode: RunMode
    review_from: datetime  # UTC, inclusive
    review_to: datetime  # UTC, exclusive

    @property
    def does_qualifications(self) -> bool:
        return self.mode is RunMode.FULL

    @property
    def does_uploads(self) -> bool:
        return self.mode is RunMode.FULL

    def as_xcom(self) -> dict[str, str]:
        return {
            "mode": self.mode.value,
            "review_from": self.review_from.isoformat(),
            "review_to": self.review_to.isoformat(),
        }

    @classmethod
    def from_xcom(cls, value: dict[str, str]) -> SyncPlan:
        return cls(
            mode=RunMode(value["mode"]),
            review_from=datetime.fromisoformat(value["review_from"]),
            review_to=datetime.fromisoformat(value["review_to"]),
        )


def plan_run(
    *,
    run_type: str,
    interval_start: datetime,
    interval_end: datetime,
    days_before: int,
    days_after: int,
    mode: str = RunMode.AUTO,
) -> SyncPlan:
    """Decide the review window and the work of one DAG run."""
    if days_before < 0 or days_after < 0:
        raise ValueError("review window days must not be negative")
    if interval_end < interval_start:
        raise ValueError("data interval ends before it starts")
    chosen = RunMode(mode)
    if chosen is RunMode.AUTO:
        chosen = RunMode.REVIEWS_ONLY if run_type == "backfill" else RunMode.FULL
    if chosen is RunMode.REVIEWS_ONLY:
        return SyncPlan(chosen, interval_start, interval_end)
    return SyncPlan(
        chosen,
        interval_start - timedelta(days=days_before),
        interval_end + timedelta(days=days_after),
    )
