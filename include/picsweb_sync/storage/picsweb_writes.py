"""The set-based writes to PICSWeb, with their work tables.

Writes to PICSWeb are set-based and guarded. :func:`apply_updates` loads a run's field
changes into a work table in the PICSWeb database, then per (table, field) classifies every
change in one statement and applies it in one ``UPDATE ... FROM``, only where the row still
holds the value the merge read (text compared exactly, whatever the database's collation:
:class:`ExactText`). A row edited in between is a *conflict*, reported and left
alone; a rerun after success finds every row already at its new value and does nothing.
The caller owns the transaction, so a failure anywhere leaves nothing behind.
:func:`classify_updates` is the same classification, read-only (a dry run);
:func:`insert_reviews` and :func:`link_review` write new reviews and their OneFile IDs
exactly once.

Layering: this module builds on the table definitions and their queries
(``picsweb_sync.storage.picsweb_tables``, ``picsweb_sync.storage.project_tables``), which build on the
frame helpers (``picsweb_sync.storage.sqlframes``); none of those imports this one.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import (
    CHAR,
    NCHAR,
    Column,
    ColumnElement,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.functions import FunctionElement

from picsweb_sync.storage import picsweb_tables
from picsweb_sync.storage.project_tables import ensure_project_tables
from picsweb_sync.storage.project_tables.audit_log import audit
from picsweb_sync.storage.project_tables.basis import newer_row_bases, record_row_bases
from picsweb_sync.storage.project_tables.common import stamp
from picsweb_sync.storage.project_tables.picsweb_changes import (
    gather_field_values,
    picsweb_field_kinds,
    spread_field_changes,
)
from picsweb_sync.storage.project_tables.picsweb_work import (
    PICSWEB_SIDE_TABLES,
    sync_picsweb_work,
    sync_review_insert_work,
)
from picsweb_sync.storage.sqlframes import (
    read_frame,
    replace_partition,
    select_in_chunks,
    value_kind,
)

__all__ = [
    "ApplyResult",
    "ConcurrentChangeError",
    "ExactChar",
    "ExactText",
    "apply_statement",
    "apply_updates",
    "classify_statement",
    "classify_updates",
    "insert_new_statement",
    "insert_reviews",
    "link_review",
    "link_reviews",
    "mark_existing_statement",
    "missing_statement",
    "reviews_already_linked",
    "reviews_with_onefile_ids",
]

CONFLICT_OUTCOMES = ("conflict", "missing")


class ConcurrentChangeError(RuntimeError):
    """A PICSWeb row changed between the check and the update; the task should be retried."""


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_updates` did with each change (the input rows plus ``outcome`` and
    ``current``, the value found in PICSWeb).

    ``applied``: written and audited. ``unchanged``: the row already held the new value.
    ``conflicts``: the row held neither the old nor the new value (``conflict``), or is gone
    (``missing``): not written, reported so the next run reconsiders it. ``stale``: the row
    was last written from newer OneFile data (``project_tables.basis``): refused.
    """

    applied: pd.DataFrame
    unchanged: pd.DataFrame
    conflicts: pd.DataFrame
    stale: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Refused, not compared: the row was last written from OneFile data newer than this
    change's basis (``newer_at``, ``newer_run``: that write's basis and run)."""


MSSQL_EXACT_COLLATION = "Latin1_General_100_BIN2"


class ExactText(FunctionElement):
    """A text expression compared exactly (code point for code point), whatever the
    collation of its column or database. Wrap both sides of the comparison.

    PICSWeb's SQL Server compares text with the database's default collation, which is
    case-insensitive, and T-SQL's ``=`` ignores trailing spaces, so ``'ab' = 'AB '`` holds
    there. Compiled per dialect: on SQL Server ``(expr + N'|') COLLATE
    Latin1_General_100_BIN2`` (a binary collation; the sentinel character keeps trailing
    spaces significant); on PostgreSQL ``expr COLLATE "C"`` (overriding, say, a
    case-insensitive ICU collation); elsewhere (SQLite, binary by default) the expression
    itself.
    """

    inherit_cache = True
    name = "exact_text"

    def __init__(self, expr: ColumnElement) -> None:
        super().__init__(expr)
        self.type = expr.type


class ExactChar(ExactText):
    """:class:`ExactText` for a fixed-length ``CHAR`` column, whose trailing spaces are
    padding, not data (SQL Server and PostgreSQL both pad and compare them away): on SQL
    Server only the binary collation, no sentinel."""

    inherit_cache = True
    name = "exact_char"


def _exact_argument(element: ExactText, compiler: Any, **kw: Any) -> str:
    (argument,) = element.clauses
    return compiler.process(argument.self_group(), **kw)


@compiles(ExactText)
def _exact_default(element: ExactText, compiler: Any, **kw: Any) -> str:
    return _exact_argument(element, compiler, **kw)


@compiles(ExactText, "postgresql")
def _exact_postgresql(element: ExactText, compiler: Any, **kw: Any) -> str:
    return f'{_exact_argument(element, compiler, **kw)} COLLATE "C"'


@compiles(ExactText, "mssql")
def _exact_mssql(element: ExactText, compiler: Any, **kw: Any) -> str:
    return f"({_exact_argument(element, compiler, **kw)} + N'|') COLLATE {MSSQL_EXACT_COLLATION}"


@compiles(ExactChar, "mssql")
def _exact_char_mssql(element: ExactChar, compiler: Any, **kw: Any) -> str:
    return f"{_exact_argument(element, compiler, **kw)} COLLATE {MSSQL_EXACT_COLLATION}"


def _same(a: ColumnElement, b: ColumnElement, target: Column) -> ColumnElement:
    """NULL-safe equality that T-SQL understands too (no ``IS NOT DISTINCT FROM``) of two
    values of the PICSWeb column ``target``; text compares exactly (:class:`ExactText`)."""
    if value_kind(target.type) != "text":
        equal = a == b
    else:
        exact = ExactChar if isinstance(target.type, CHAR | NCHAR) else ExactText
        equal = exact(a) == exact(b)
    return or_(equal, a.is_(None) & b.is_(None))


def _field_target(table_name: str, field: str) -> tuple[Table, ColumnElement, ColumnElement, str]:
    table = picsweb_tables.metadata.tables[table_name]
    column = table.c[field]
    return table, picsweb_tables.primary_key(table), column, value_kind(column.type)


def _work_group(run_id: str, work_key: str, table_name: str, field: str) -> ColumnElement:
    work = sync_picsweb_work.c
    return (
        (work.run_id == run_id)
        & (work.work_key == work_key)
        & (work.table_name == table_name)
        & (work.field == field)
    )


def classify_statement(run_id: str, table_name: str, field: str, work_key: str = "all") -> Update:
    """Record, for one (table, field) of the run, each row's current value and outcome.

    One ``UPDATE ... FROM`` joining the work rows to PICSWeb's rows by key, so each row is
    looked up and compared once (a correlated lookup was evaluated once per mention, six
    index probes a row). A work row whose PICSWeb row is gone is not joined and keeps no
    outcome: :func:`missing_statement` marks it next.
    """
    _, key, column, kind = _field_target(table_name, field)
    work = sync_picsweb_work.c
    outcome = case(
        (_same(column, work[f"new_{kind}"], column), "unchanged"),
        (_same(column, work[f"old_{kind}"], column), "applied"),
        else_="conflict",
    )
    return (
        update(sync_picsweb_work)
        .where(key == work.entity_key, _work_group(run_id, work_key, table_name, field))
        .values({work[f"cur_{kind}"]: column, work.outcome: outcome})
    )


def missing_statement(run_id: str, table_name: str, field: str, work_key: str = "all") -> Update:
    """After :func:`classify_statement`: the group's rows it did not reach, whose PICSWeb
    row is gone, are ``missing``."""
    return (
        update(sync_picsweb_work)
        .where(
            _work_group(run_id, work_key, table_name, field),
            sync_picsweb_work.c.outcome.is_(None),
        )
        .values(outcome="missing")
    )


def apply_statement(run_id: str, table_name: str, field: str, work_key: str = "all") -> Update:
    """One ``UPDATE ... FROM`` for one (table, field): rows classified ``applied`` that
    still hold the old value (re-checked, so a concurrent edit is never overwritten)."""
    table, key, column, kind = _field_target(table_name, field)
    work = sync_picsweb_work.c
    return (
        update(table)
        .where(
            key == work.entity_key,
            _work_group(run_id, work_key, table_name, field),
            work.outcome == "applied",
            _same(column, work[f"old_{kind}"], column),
        )
        .values({column: work[f"new_{kind}"]})
    )


def apply_updates(
    conn: Connection,
    run_id: str,
    updates: pd.DataFrame,
    now: dt.datetime | None = None,
    *,
    work_key: str = "all",
    basis_at: dt.datetime | None = None,
) -> ApplyResult:
    """Apply a ``picsweb_updates`` change set (``table``, ``key``, ``field``, ``old``,
    ``new``, ``rule``) to PICSWeb, set-based, auditing each field actually changed.

    ``basis_at`` (or a ``basis_at`` column, per change, where it is not null): when the
    OneFile data each change comes from was extracted. A change to a row the sync last wrote
    from newer OneFile data is refused (``stale``), and every row applied or found equal
    records this basis (``project_tables.basis``), in this transaction. Without any basis,
    nothing is judged or recorded (the data layer's own tests; every stage passes one).

    Run inside ``engine.begin()`` on the PICSWeb database. Raises
    :class:`ConcurrentChangeError` (the transaction then rolls back) if a row changes
    between classification and update, so the audit never records a change not made.
    """
    ensure_project_tables(conn, PICSWEB_SIDE_TABLES)
    updates, basis, stale = _without_stale(conn, updates, basis_at)
    changes = updates.drop(columns="basis_at", errors="ignore")
    rows = spread_field_changes(changes)
    partition = {"run_id": run_id, "work_key": work_key}
    replace_partition(conn, sync_picsweb_work, partition, rows)
    groups = rows[["table_name", "field"]].drop_duplicates()
    for table_name, field_name in groups.itertuples(index=False):
        conn.execute(classify_statement(run_id, table_name, field_name, work_key))
        conn.execute(missing_statement(run_id, table_name, field_name, work_key))
        group = _work_group(run_id, work_key, table_name, field_name)
        expected = conn.execute(
            select(func.count())
            .select_from(sync_picsweb_work)
            .where(group, sync_picsweb_work.c.outcome == "applied")
        ).scalar_one()
        written = conn.execute(apply_statement(run_id, table_name, field_name, work_key)).rowcount
        if written != expected:
            raise ConcurrentChangeError(
                f"{table_name}.{field_name}: {expected - written} row(s) changed during the update"
            )
    result = _read_outcomes(conn, run_id, work_key, updates)
    applied = result[result["outcome"] == "applied"]
    audit(
        conn,
        run_id,
        pd.DataFrame(
            {
                "system": "picsweb",
                "entity": applied["table"],
                "entity_key": applied["key"],
                "field": applied["field"],
                "old": applied["old"],
                "new": applied["new"],
            }
        ),
        now,
    )
    if basis is not None:
        held = result["outcome"].isin(("applied", "unchanged")).to_numpy()
        record_row_bases(
            conn,
            run_id,
            pd.DataFrame(
                {
                    "table_name": result["table"][held],
                    "entity_key": result["key"][held],
                    "basis_at": basis[held],
                }
            ),
        )
    return ApplyResult(
        applied=applied,
        unchanged=result[result["outcome"] == "unchanged"],
        conflicts=result[result["outcome"].isin(CONFLICT_OUTCOMES)],
        stale=stale,
    )


def _without_stale(
    conn: Connection, updates: pd.DataFrame, basis_at: dt.datetime | None
) -> tuple[pd.DataFrame, pd.Series | None, pd.DataFrame]:
    """``updates`` split by each change's basis: (the changes to compare, their bases or
    ``None`` when no basis is known, the stale changes with ``newer_at``/``newer_run``)."""
    updates = updates.reset_index(drop=True)
    basis = _write_basis(updates, basis_at)
    if basis is None or not len(updates):
        return updates, basis, updates.iloc[0:0]
    newer = newer_row_bases(conn, updates["table"], updates["key"], basis)
    refused = newer["newer_at"].notna().to_numpy()
    stale = pd.concat([updates[refused], newer[refused]], axis=1).assign(outcome="stale")
    kept = updates[~refused].reset_index(drop=True)
    return kept, basis[~refused].reset_index(drop=True), stale


def _write_basis(updates: pd.DataFrame, basis_at: dt.datetime | None) -> pd.Series | None:
    """Each change's basis (naive UTC): its own ``basis_at`` where given, else the call's;
    ``None`` when neither says."""
    scalar = None if basis_at is None else stamp(basis_at)
    if "basis_at" in updates.columns:
        own = pd.to_datetime(updates["basis_at"], utc=True).dt.tz_localize(None)
        if scalar is not None:
            own = own.fillna(pd.Timestamp(scalar))
        if own.isna().any():
            raise ValueError("a change without a basis: every write says what data it is from")
        return own.astype("datetime64[us]")
    if scalar is None:
        return None
    return pd.Series([scalar] * len(updates), dtype="datetime64[us]")


def _read_outcomes(
    conn: Connection, run_id: str, work_key: str, updates: pd.DataFrame
) -> pd.DataFrame:
    """The input changes with the ``outcome`` and ``current`` the work table recorded."""
    work = sync_picsweb_work.c
    cur = [c for c in sync_picsweb_work.c if c.name.startswith("cur_")]
    found = read_frame(
        conn,
        select(work.change_no, work.table_name, work.field, work.outcome, *cur)
        .where(work.run_id == run_id, work.work_key == work_key)
        .order_by(work.change_no),
    )
    return updates.reset_index(drop=True).assign(
        outcome=found["outcome"].to_numpy(),
        current=gather_field_values(found, "cur").to_numpy(),
    )


def classify_updates(
    conn: Connection, updates: pd.DataFrame, *, basis_at: dt.datetime | None = None
) -> ApplyResult:
    """What :func:`apply_updates` would do with a ``picsweb_updates`` change set, read-only.

    For a dry run: PICSWeb is only read (``SELECT`` of each changed row's current value, a
    bounded ``IN`` list per (table, field)); no work table is filled, nothing is written or
    audited. Each change gets the outcome the real classification gives it: ``missing``
    (the row is gone), ``unchanged`` (it already holds the new value), ``applied`` (it
    still holds the value the merge read: would change) or ``conflict``. Values compare as
    :class:`ExactText` does: text exactly, a ``CHAR`` column's trailing padding ignored.
    With a basis (``basis_at`` or a ``basis_at`` column), a change the real write would
    refuse as stale is ``stale``, as :func:`apply_updates` judges it.
    """
    updates, _, stale = _without_stale(conn, updates, basis_at)
    updates = updates.drop(columns="basis_at", errors="ignore")
    rows = spread_field_changes(updates)  # the same guard: only known, non-key fields
    outcomes = pd.Series("missing", index=rows.index, dtype=object)
    current = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    if len(rows):
        kinds = picsweb_field_kinds(rows["table_name"], rows["field"]).to_numpy()
        old, new = gather_field_values(rows, "old"), gather_field_values(rows, "new")
        for (table_name, field), group in rows.groupby(["table_name", "field"], sort=False):
            _, key, column, _ = _field_target(table_name, field)
            found = select_in_chunks(
                conn,
                lambda chunk, key=key, column=column: select(
                    key.label("entity_key"), column.label("current")
                ).where(key.in_(chunk)),
                group["entity_key"],
            )
            now = dict(
                zip(
                    (int(k) for k in found["entity_key"]),
                    found["current"].astype(object).where(found["current"].notna(), None),
                    strict=True,
                )
            )
            same = functools.partial(_same_value, char=isinstance(column.type, CHAR | NCHAR))
            for index, entity_key in zip(group.index, group["entity_key"], strict=True):
                if int(entity_key) not in now:
                    continue  # missing
                value = now[int(entity_key)]
                current[index] = value
                if same(value, new[index], kinds[index]):
                    outcomes[index] = "unchanged"
                elif same(value, old[index], kinds[index]):
                    outcomes[index] = "applied"
                else:
                    outcomes[index] = "conflict"
    result = updates.reset_index(drop=True).assign(
        outcome=outcomes.to_numpy(), current=current.to_numpy()
    )
    return ApplyResult(
        applied=result[result["outcome"] == "applied"],
        unchanged=result[result["outcome"] == "unchanged"],
        conflicts=result[result["outcome"].isin(CONFLICT_OUTCOMES)],
        stale=stale,
    )


def _same_value(a: Any, b: Any, kind: str, *, char: bool = False) -> bool:
    """:func:`_same` in Python, for values read back: NULL equals only NULL; text exactly
    (a fixed-length ``CHAR``'s trailing spaces are padding); other kinds by value."""
    if a is None or b is None:
        return a is None and b is None
    if kind == "text":
        a, b = str(a), str(b)
        return a.rstrip(" ") == b.rstrip(" ") if char else a == b
    if kind == "int":
        return int(a) == int(b)
    if kind == "datetime":
        return pd.Timestamp(a) == pd.Timestamp(b)
    if kind == "date":
        return pd.Timestamp(a).date() == pd.Timestamp(b).date()
    return a == b


# ----- new PICSWeb reviews ------------------------------------------------------------------
def mark_existing_statement(run_id: str) -> Update:
    """Flag the run's review inserts whose OneFile review is already in PICSWeb."""
    work = sync_review_insert_work.c
    review = picsweb_tables.review.c
    already = exists().where(review.onefile_system_id == work.onefile_system_id)
    return (
        update(sync_review_insert_work)
        .where(work.run_id == run_id)
        .values(existed=case((already, True), else_=False))
    )


def insert_new_statement(run_id: str) -> Insert:
    """``INSERT INTO review ... SELECT`` of the run's reviews not yet in PICSWeb."""
    work = sync_review_insert_work.c
    names = [c.name for c in picsweb_tables.review.c if c.name != "review_id"]
    source = select(*(work[name] for name in names)).where(work.run_id == run_id, ~work.existed)
    return insert(picsweb_tables.review).from_select(names, source)


def insert_reviews(
    conn: Connection,
    run_id: str,
    inserts: pd.DataFrame,
    now: dt.datetime | None = None,
    *,
    basis_at: dt.datetime | None = None,
) -> pd.DataFrame:
    """Insert ``picsweb_review_inserts`` rows, skipping any whose ``onefile_system_id`` is
    already in PICSWeb, so a retry inserts nothing twice.

    Returns ``onefile_system_id``, ``review_id`` (the generated key) and ``inserted`` for
    every input row. The keys are read back by ``onefile_system_id`` (unique) rather than
    with ``RETURNING``/``OUTPUT``, which SQL Server refuses on tables with triggers.
    Each inserted review's non-null fields are audited, and with ``basis_at`` (when the
    OneFile reviews were extracted) each inserted row records it (``project_tables.basis``).
    """
    ids = inserts["onefile_system_id"]
    if ids.isna().any() or ids.duplicated().any():
        raise ValueError("every review insert needs a distinct onefile_system_id")
    ensure_project_tables(conn, PICSWEB_SIDE_TABLES)
    replace_partition(conn, sync_review_insert_work, {"run_id": run_id}, inserts)
    conn.execute(mark_existing_statement(run_id))
    conn.execute(insert_new_statement(run_id))
    work = sync_review_insert_work.c
    review = picsweb_tables.review.c
    keys = read_frame(
        conn,
        select(work.onefile_system_id, review.review_id, work.existed)
        .join_from(
            sync_review_insert_work,
            picsweb_tables.review,
            review.onefile_system_id == work.onefile_system_id,
        )
        .where(work.run_id == run_id)
        .order_by(work.onefile_system_id),
    )
    keys = keys.assign(inserted=~keys.pop("existed"))
    new = inserts.merge(keys[keys["inserted"]][["onefile_system_id", "review_id"]])
    fields = new.melt(id_vars="review_id", var_name="field", value_name="new")
    fields = fields[fields["new"].notna()]
    audit(
        conn,
        run_id,
        pd.DataFrame(
            {
                "system": "picsweb",
                "entity": "review",
                "entity_key": fields["review_id"],
                "field": fields["field"],
                "old": None,
                "new": fields["new"],
            }
        ),
        now,
    )
    if basis_at is not None:
        record_row_bases(
            conn,
            run_id,
            pd.DataFrame(
                {
                    "table_name": picsweb_tables.review.name,
                    "entity_key": new["review_id"].drop_duplicates(),
                    "basis_at": stamp(basis_at),
                }
            ),
        )
    return keys


def link_review(conn: Connection, run_id: str, review_id: int, onefile_id: int) -> bool:
    """Record the OneFile Review ID of an uploaded PICSWeb review, audited.

    Only a review with no ID yet is written, so a retry never overwrites a link; returns
    whether this call wrote it.
    """
    review = picsweb_tables.review
    written = conn.execute(
        update(review)
        .where(review.c.review_id == review_id, review.c.onefile_system_id.is_(None))
        .values(onefile_system_id=onefile_id)
    ).rowcount
    if written:
        change = {"system": "picsweb", "entity": "review", "entity_key": review_id}
        row = {**change, "field": "onefile_system_id", "old": None, "new": onefile_id}
        audit(conn, run_id, pd.DataFrame([row]))
    return bool(written)


def link_reviews(
    conn: Connection, run_id: str, links: pd.DataFrame, now: dt.datetime | None = None
) -> list[bool]:
    """:func:`link_review` for many uploaded reviews (``review_id``, ``onefile_id``) in
    the caller's transaction, audited in one insert: whether each link was written."""
    review = picsweb_tables.review
    guarded = (
        update(review)
        .where(review.c.review_id == bindparam("b_review"), review.c.onefile_system_id.is_(None))
        .values(onefile_system_id=bindparam("b_onefile"))
    )
    written = [
        bool(conn.execute(guarded, {"b_review": int(r), "b_onefile": int(o)}).rowcount)
        for r, o in zip(links["review_id"], links["onefile_id"], strict=True)
    ]
    made = links[written]
    audit(
        conn,
        run_id,
        pd.DataFrame(
            {
                "system": "picsweb",
                "entity": "review",
                "entity_key": made["review_id"],
                "field": "onefile_system_id",
                "old": None,
                "new": made["onefile_id"],
            }
        ),
        now,
    )
    return written


def reviews_already_linked(conn: Connection, review_ids: Iterable[Any]) -> set[int]:
    """Which of these PICSWeb reviews already hold a OneFile Review ID (a query per
    ``sqlframes.MAX_IN_LIST`` IDs)."""
    review = picsweb_tables.review
    found = select_in_chunks(
        conn,
        lambda chunk: select(review.c.review_id).where(
            review.c.review_id.in_(chunk), review.c.onefile_system_id.is_not(None)
        ),
        review_ids,
    )
    return {int(r) for r in found["review_id"]}


def reviews_with_onefile_ids(conn: Connection, onefile_ids: Iterable[Any]) -> pd.DataFrame:
    """The PICSWeb ``review`` rows (every column, typed) whose ``onefile_system_id`` is one
    of ``onefile_ids`` (OneFile Review IDs; nulls and repeats ignored), ordered by it."""
    review = picsweb_tables.review
    return select_in_chunks(
        conn,
        lambda chunk: select(review).where(review.c.onefile_system_id.in_(chunk)),
        onefile_ids,
    ).sort_values("onefile_system_id", ignore_index=True)
