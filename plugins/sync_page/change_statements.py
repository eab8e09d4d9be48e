"""The statements of one run's changes row by row (``sync_page.changes`` reads them page
by page): each bounded by a LIMIT, each a keyset range (never OFFSET), each compiled for
SQL Server too (tests/sync_page/test_run_changes.py), and the filters they share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, literal, or_, select

from picsweb_sync.run import dry_run
from picsweb_sync.storage.project_tables import CHANGE_SETS, sync_audit, sync_reject
from picsweb_sync.storage.project_tables.picsweb_changes import VALUE_TYPES
from sync_page import change_learners
from sync_page.queries.page import DIRECTIONS, BadRequest

MAX_CHANGES = 500
DEFAULT_CHANGES = 100
CSV_COLUMNS = (
    "direction",
    "status",
    "entity",
    "entity_key",
    "learner",
    "trainee_id",
    "onefile_learner_id",
    "subject",
    "field",
    "old_value",
    "new_value",
    "reason",
)
CURSOR_KINDS = (str, int, str, str, str)

PW_UPDATES = CHANGE_SETS["picsweb_updates"]
PW_INSERTS = CHANGE_SETS["picsweb_review_inserts"]
OF_UPDATES = CHANGE_SETS["onefile_updates"]
OF_CREATES = CHANGE_SETS["review_uploads"]
DRY_UPDATE_SETS = (dry_run.QUALIFICATIONS, dry_run.REFLECTED, dry_run.REVIEWS)
INSERT_FIELDS = tuple(
    c.name for c in PW_INSERTS.c if c.name not in ("run_id", "merge_name", "created_at")
)
CREATE_FIELDS = {"created_from_picsweb_review": "review_id", **dry_run.REVIEW_CREATE_FIELDS}
REASON_FIELD = re.compile(r"^(conflict|refused): (\w+) ")


@dataclass(frozen=True)
class Filters:
    """Which changes to list: ``direction`` is the system written (``picsweb``: OneFile →
    PICSWeb, ``onefile``: PICSWeb → OneFile); ``entity`` and ``field`` as the audit names
    them. Empty means all."""

    direction: str | None = None
    entity: str | None = None
    field: str | None = None

    @classmethod
    def of(cls, direction: str | None, entity: str | None, field: str | None) -> Filters:
        direction, entity, field = (
            v.strip() if v and v.strip() else None for v in (direction, entity, field)
        )
        if direction is not None and direction not in DIRECTIONS:
            raise BadRequest(
                f"unknown direction {direction!r}; expected one of {sorted(DIRECTIONS)}"
            )
        for name, value in (("entity", entity), ("field", field)):
            if value is not None and len(value) > 64:
                raise BadRequest(f"{name} longer than 64 characters")
        return cls(direction, entity, field)

    def wants(self, system: str, entity: str | None = None) -> bool:
        """Whether a segment of this system (and fixed entity) can hold matching rows."""
        if self.direction is not None and self.direction != system:
            return False
        return entity is None or self.entity is None or self.entity == entity

    def params(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def _after(columns: list[Any], values: list[Any]) -> Any:
    """Rows strictly after ``values`` in the order of ``columns`` (a keyset condition)."""
    terms = []
    for n, column in enumerate(columns):
        equal = [columns[i] == values[i] for i in range(n)]
        terms.append(and_(*equal, column > values[n]))
    return or_(*terms)


# ----- statements ---------------------------------------------------------------------------
def audit_statement(run_id: str, f: Filters, limit: int, after: int | None = None) -> Select:
    """A real run's audit rows after ``after``, in ``audit_id`` order: a range of the
    ``(run_id, audit_id)`` index."""
    a = sync_audit
    stmt = select(
        a.c.audit_id,
        a.c.system,
        a.c.entity,
        a.c.entity_key,
        a.c.field,
        a.c.old_value,
        a.c.new_value,
    ).where(a.c.run_id == run_id)
    if f.direction:
        stmt = stmt.where(a.c.system == f.direction)
    if f.entity:
        stmt = stmt.where(a.c.entity == f.entity)
    if f.field:
        stmt = stmt.where(a.c.field == f.field)
    if after is not None:
        stmt = stmt.where(a.c.audit_id > after)
    return stmt.order_by(a.c.audit_id).limit(limit)


def pw_updates_statement(
    run_id: str, f: Filters, limit: int, after: tuple[str, int] | None = None
) -> Select:
    t = PW_UPDATES
    values = [t.c[f"{side}_{kind}"] for side in ("old", "new") for kind in VALUE_TYPES]
    stmt = select(t.c.merge_name, t.c.change_no, t.c.table_name, t.c.entity_key, t.c.field, *values)
    stmt = stmt.where(t.c.run_id == run_id, t.c.merge_name.in_(DRY_UPDATE_SETS))
    if f.entity:
        stmt = stmt.where(t.c.table_name == f.entity)
    if f.field:
        stmt = stmt.where(t.c.field == f.field)
    if after is not None:
        stmt = stmt.where(_after([t.c.merge_name, t.c.change_no], list(after)))
    return stmt.order_by(t.c.merge_name, t.c.change_no).limit(limit)


def pw_inserts_statement(run_id: str, f: Filters, limit: int, start: int | None = None) -> Select:
    t = PW_INSERTS
    stmt = select(*(t.c[name] for name in INSERT_FIELDS))
    stmt = stmt.where(t.c.run_id == run_id, t.c.merge_name == dry_run.REVIEWS)
    if f.field:
        stmt = stmt.where(t.c[f.field].isnot(None))
    if start is not None:
        stmt = stmt.where(t.c.onefile_system_id >= start)
    return stmt.order_by(t.c.onefile_system_id).limit(limit)


def of_updates_statement(run_id: str, f: Filters, limit: int, after: int | None = None) -> Select:
    t = OF_UPDATES
    stmt = select(t.c.change_no, t.c.entity, t.c.entity_id, t.c.field, t.c.new)
    stmt = stmt.where(t.c.run_id == run_id, t.c.merge_name == dry_run.LEARNING_AIMS)
    if f.entity:
        stmt = stmt.where(t.c.entity == f.entity)
    if f.field:
        stmt = stmt.where(t.c.field == f.field)
    if after is not None:
        stmt = stmt.where(t.c.change_no > after)
    return stmt.order_by(t.c.change_no).limit(limit)


def of_creates_statement(run_id: str, limit: int, start: int | None = None) -> Select:
    t = OF_CREATES
    columns = [t.c.trainee_id, *(t.c[c] for c in CREATE_FIELDS.values())]
    stmt = select(*columns).where(t.c.run_id == run_id, t.c.merge_name == dry_run.REVIEW_CREATES)
    if start is not None:
        stmt = stmt.where(t.c.review_id >= start)
    return stmt.order_by(t.c.review_id).limit(limit)


def _like(text: str) -> str:
    return re.sub(r"([\\%_\[])", r"\\\1", text)


def rejects_statement(
    run_id: str, f: Filters, limit: int, after: tuple[str, str, str] | None = None
) -> Select:
    """The run's conflicts and refusals: changes it decided on but did not (or, in a dry
    run, would not) make, with the reason."""
    r = sync_reject
    source = func.coalesce(r.c.source_id, literal(""))
    stmt = select(r.c.stage, r.c.entity, source.label("source_id"), r.c.reason).where(
        r.c.run_id == run_id,
        or_(
            r.c.reason.like("conflict%"),
            r.c.reason.like("refused%"),
            r.c.stage.like("%\\_refused", escape="\\"),
        ),
    )
    to_onefile = r.c.stage.like("push%")
    if f.direction == "onefile":
        stmt = stmt.where(to_onefile)
    elif f.direction == "picsweb":
        stmt = stmt.where(~to_onefile)
    if f.entity:
        stmt = stmt.where(r.c.entity == f.entity)
    if f.field:
        field = _like(f.field)
        stmt = stmt.where(
            or_(
                r.c.reason.like(f"conflict: {field} %", escape="\\"),
                r.c.reason.like(f"refused: {field} %", escape="\\"),
            )
        )
    if after is not None:
        stmt = stmt.where(_after([r.c.stage, source, r.c.reason], list(after)))
    return stmt.order_by(r.c.stage, source, r.c.reason).limit(limit)


def all_statements() -> dict[str, Select]:
    """Every statement above, for the LIMIT and SQL Server checks of tests/sync_page."""
    f = Filters("picsweb", "review", "attended")
    return {
        "changes_audit": audit_statement("r", f, DEFAULT_CHANGES, 5),
        "changes_pw_updates": pw_updates_statement("r", f, DEFAULT_CHANGES, ("dry_run:reviews", 3)),
        "changes_pw_inserts": pw_inserts_statement("r", f, DEFAULT_CHANGES, 7),
        "changes_of_updates": of_updates_statement(
            "r", Filters(entity="LearningAim"), DEFAULT_CHANGES, 2
        ),
        "changes_of_creates": of_creates_statement("r", DEFAULT_CHANGES, 9),
        "changes_rejects": rejects_statement(
            "r", f, DEFAULT_CHANGES, ("load_reviews", "12", "conflict")
        ),
        **change_learners.all_statements(),
    }
