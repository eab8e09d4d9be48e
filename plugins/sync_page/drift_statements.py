"""The statements of one run's drift report on the sync page (``sync_page.drift_view`` reads
them): its rows in keyset pages, its counts by reason and field, whether the report ran,
and the learners of a page, with the filters they share.

Each is bounded by a LIMIT, none uses OFFSET, each compiles for SQL Server too
(tests/sync_page/test_drift.py, and ``sync_page.queries.all_statements``). A run's rows are
read in ``drift_id`` order, a range of the ``(run_id, drift_id)`` index of ``sync_drift``
(the report's own order: unexplained first); its counts through ``(run_id, reason)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import sync_drift, sync_run_count
from sync_page.drift_labels import REASONS
from sync_page.queries.page import BadRequest

MAX_DRIFT = 500
DEFAULT_DRIFT = 100
MAX_DRIFT_GROUPS = 1000  # (reason, entity, field) groups of one run: a few hundred at most
MAX_REPORT_COUNTS = 100  # the report's drift_<reason> counts: one per reason
STAGE = "report_drift"  # picsweb_sync.stages.drift.STAGE: its counts say the report ran
ENTITIES = ("learner", "qualification", "review")
CURSOR_KINDS = (int,)
CSV_COLUMNS = (
    "reason",
    "reason_label",
    "entity",
    "learner",
    "trainee_id",
    "learner_id",
    "onefile_id",
    "picsweb_key",
    "field",
    "onefile_value",
    "picsweb_value",
    "detail",
)


@dataclass(frozen=True)
class DriftFilters:
    """Which differences to list: one ``reason`` of the closed list, one ``entity``
    (learner, qualification, review), one ``field`` as the report names it. Empty: all."""

    reason: str | None = None
    entity: str | None = None
    field: str | None = None

    @classmethod
    def of(cls, reason: str | None, entity: str | None, field: str | None) -> DriftFilters:
        reason, entity, field = (
            v.strip() if v and v.strip() else None for v in (reason, entity, field)
        )
        if reason is not None and reason not in REASONS:
            raise BadRequest(f"unknown reason {reason!r}; expected one of {list(REASONS)}")
        if entity is not None and entity not in ENTITIES:
            raise BadRequest(f"unknown entity {entity!r}; expected one of {list(ENTITIES)}")
        if field is not None and len(field) > 64:
            raise BadRequest("field longer than 64 characters")
        return cls(reason, entity, field)

    def params(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def drift_rows_statement(
    run_id: str, f: DriftFilters, limit: int, after: int | None = None
) -> Select:
    """The run's differences after ``after`` (a ``drift_id``), in ``drift_id`` order."""
    d = sync_drift
    stmt = select(
        d.c.drift_id,
        d.c.entity,
        d.c.learner_id,
        d.c.trainee_id,
        d.c.onefile_id,
        d.c.picsweb_key,
        d.c.field,
        d.c.onefile_value,
        d.c.picsweb_value,
        d.c.reason,
        d.c.detail,
    ).where(d.c.run_id == run_id)
    if f.reason:
        stmt = stmt.where(d.c.reason == f.reason)
    if f.entity:
        stmt = stmt.where(d.c.entity == f.entity)
    if f.field:
        stmt = stmt.where(d.c.field == f.field)
    if after is not None:
        stmt = stmt.where(d.c.drift_id > after)
    return stmt.order_by(d.c.drift_id).limit(limit)


def drift_counts_statement(run_id: str) -> Select:
    """The run's differences per reason, entity and field."""
    d = sync_drift
    return (
        select(d.c.reason, d.c.entity, d.c.field, func.count().label("n"))
        .where(d.c.run_id == run_id)
        .group_by(d.c.reason, d.c.entity, d.c.field)
        .order_by(d.c.reason, d.c.entity, d.c.field)
        .limit(MAX_DRIFT_GROUPS)
    )


def report_counts_statement(run_id: str) -> Select:
    """The counts ``report_drift`` recorded for the run (none: the report did not run)."""
    c = sync_run_count
    return (
        select(c.c.name, c.c.value)
        .where(c.c.run_id == run_id, c.c.stage == STAGE)
        .order_by(c.c.name)
        .limit(MAX_REPORT_COUNTS)
    )


def drift_learners_statement(trainee_ids: list[int], learner_ids: list[int]) -> Select:
    """The PICSWeb trainees of a page's rows: by trainee ID, or by OneFile learner ID for a
    row that names only the learner (both unique in PICSWeb)."""
    t = pw.trainee
    return (
        select(t.c.trainee_id, t.c.first_name, t.c.surname, t.c.onefile_learner_id)
        .where(or_(t.c.trainee_id.in_(trainee_ids), t.c.onefile_learner_id.in_(learner_ids)))
        .limit(2 * MAX_DRIFT + 1)
    )


def all_statements() -> dict[str, Select]:
    """Every statement above, for the LIMIT and SQL Server checks of tests/sync_page."""
    return {
        "drift_rows": drift_rows_statement(
            "r", DriftFilters("unexplained", "review", "attended"), DEFAULT_DRIFT, 42
        ),
        "drift_rows_first": drift_rows_statement("r", DriftFilters(), DEFAULT_DRIFT),
        "drift_counts": drift_counts_statement("r"),
        "drift_report_counts": report_counts_statement("r"),
        "drift_learners": drift_learners_statement([1, 2], [700_001]),
    }
