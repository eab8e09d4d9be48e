"""A run's field changes to existing PICSWeb rows: set-based, guarded, audited.

:func:`apply_updates` loads a run's field changes into a work table in the PICSWeb
database, then per (table, field) classifies every change in one statement and applies it
in one ``UPDATE ... FROM``, only where the row still holds the value the merge read (text
compared exactly, whatever the database's collation: :mod:`.exact_text`). A row edited in
between is a *conflict*, reported and left alone; a rerun after success finds every row
already at its new value and does nothing. A change to a row the sync last wrote from newer
OneFile data is refused as *stale* (``project_tables.basis``). The caller owns the
transaction, so a failure anywhere leaves nothing behind. :func:`classify_updates` is the
same classification, read-only (a dry run).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import CHAR, NCHAR, ColumnElement, Table, case, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update

from picsweb_sync.storage import picsweb_tables
from picsweb_sync.storage.picsweb_writes.exact_text import same, same_value
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
    "apply_statement",
    "apply_updates",
    "classify_statement",
    "classify_updates",
    "missing_statement",
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
        (same(column, work[f"new_{kind}"], column), "unchanged"),
        (same(column, work[f"old_{kind}"], column), "applied"),
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
            same(column, work[f"old_{kind}"], column),
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
    :class:`~.exact_text.ExactText` does: text exactly, a ``CHAR`` column's trailing padding ignored.
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
            equal = functools.partial(same_value, char=isinstance(column.type, CHAR | NCHAR))
            for index, entity_key in zip(group.index, group["entity_key"], strict=True):
                if int(entity_key) not in now:
                    continue  # missing
                value = now[int(entity_key)]
                current[index] = value
                if equal(value, new[index], kinds[index]):
                    outcomes[index] = "unchanged"
                elif equal(value, old[index], kinds[index]):
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
