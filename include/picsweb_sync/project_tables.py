"""The project's own tables (``sync_*``): staging, change sets, work tables, outbox, rejects,
audit and run records, and the small helpers that write and read them.

Every table that holds one run's data is keyed by ``run_id`` (the Airflow run id), and
staging also by ``organisation_id``, so a retried task replaces exactly its own rows and
two runs never see each other's. Those tables carry ``created_at`` (naive UTC, set on
insert) so :func:`purge` can drop them after a retention period; audit and run records are
kept. The sync creates the tables itself, idempotently (:func:`ensure_project_tables`),
in the staging database and, for the work tables and the audit of PICSWeb writes, in the
PICSWeb database (by default they are the same database).

All datetimes here are naive UTC, like the parsed OneFile frames.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Time,
    Unicode,
    UnicodeText,
    UniqueConstraint,
    delete,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Delete

from picsweb_sync import picsweb_tables
from picsweb_sync.sqlframes import plain, read_frame, replace_partition, to_records, value_kind

project_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Unbounded: OneFile documents no string lengths, and staging must hold whatever it sends
# (a value too long for its PICSWeb column is a reject, decided when parsing, not an
# overflow here). NVARCHAR(max) on SQL Server, since OneFile text is Unicode.
_TEXT = UnicodeText()
# Instants keep their microseconds on SQL Server too (DATETIME rounds to 1/300 s).
_INSTANT = DateTime().with_variant(mssql.DATETIME2(), "mssql")
# Generated surrogate keys: SQLite only autoincrements an INTEGER PRIMARY KEY.
_SURROGATE = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    """Now as naive UTC, the project's convention for its own timestamps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _stamp(when: dt.datetime | None) -> dt.datetime:
    """``when`` (aware, or naive UTC) as naive UTC; now when not given."""
    if when is None:
        return utcnow()
    return when if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)


def _run_id() -> Column:
    return Column("run_id", String(250), nullable=False)


def _created_at() -> Column:
    return Column("created_at", _INSTANT, nullable=False, default=utcnow)


def _partitioned(name: str, *columns: Column, by: tuple[str, ...] = ("run_id",)) -> Table:
    """A table of per-run rows: ``run_id`` first, ``created_at`` last, indexed by partition."""
    table = Table(name, project_metadata, _run_id(), *columns, _created_at())
    Index(None, *(table.c[col] for col in by))
    return table


# ----- staging: the parsed OneFile frames (docs/architecture.md), one table per entity ---
def _staging(entity: str, *columns: Column) -> Table:
    return _partitioned(
        f"sync_stage_{entity}",
        Column("organisation_id", BigInteger, nullable=False),
        *columns,
        Column("raw", UnicodeText),
        by=("run_id", "organisation_id"),
    )


STAGING: dict[str, Table] = {
    "learners": _staging(
        "learner",
        Column("learner_id", BigInteger, nullable=False),
        Column("first_name", _TEXT),
        Column("last_name", _TEXT),
        Column("email", _TEXT),
        Column("mis_id", _TEXT),
        Column("uln", _TEXT),
        Column("default_assessor_id", BigInteger),
        Column("last_modified", _INSTANT),
    ),
    "assessors": _staging(
        "assessor",
        Column("assessor_id", BigInteger, nullable=False),
        Column("first_name", _TEXT),
        Column("last_name", _TEXT),
        Column("email", _TEXT),
        Column("role", Integer),
    ),
    "learning_aims": _staging(
        "learning_aim",
        Column("learning_aim_id", BigInteger, nullable=False),
        Column("learner_id", BigInteger),
        Column("code", _TEXT),
        Column("title", _TEXT),
        Column("total_elements", Integer),
        Column("elements_done", Integer),
        Column("registration_number", _TEXT),
        Column("registration_date", Date),
        Column("certificate_applied_date", Date),
        Column("certificate_received_date", Date),
    ),
    "reviews": _staging(
        "review",
        Column("review_id", BigInteger, nullable=False),
        Column("learner_id", BigInteger),
        Column("assessor_id", BigInteger),
        Column("scheduled_for", _INSTANT),
        Column("status", Integer),
        Column("started_on", _INSTANT),
        Column("learner_signed_on", _INSTANT),
        Column("end_time", _INSTANT),
        Column("visit_id", BigInteger),
    ),
}

# ----- PICSWeb field changes: one typed value column per kind, so the set-based UPDATE
# compares and assigns values of the target column's own type on every dialect ---------
VALUE_TYPES = {
    "int": BigInteger(),
    "text": Unicode(400),
    "date": Date(),
    "time": Time(),
    "datetime": DateTime(),
}


def _value_columns(*sides: str) -> list[Column]:
    return [Column(f"{side}_{kind}", sql) for side in sides for kind, sql in VALUE_TYPES.items()]


def _field_change_columns() -> list[Column]:
    return [
        Column("change_no", Integer, nullable=False),
        Column("table_name", String(64), nullable=False),
        Column("entity_key", BigInteger, nullable=False),
        Column("field", String(64), nullable=False),
        Column("rule", String(64)),
        *_value_columns("old", "new"),
    ]


def _review_insert_columns() -> list[Column]:
    """``review`` minus its generated key: the ``picsweb_review_inserts`` shape."""
    return [
        Column(col.name, col.type, nullable=col.nullable)
        for col in picsweb_tables.review.c
        if col.name != "review_id"
    ]


def _change_set(name: str, *columns: Column) -> Table:
    """A change set table, partitioned by run and by the merge that wrote it: the
    qualification and review merges both decide PICSWeb field changes, and rerunning one
    must not wipe the other's."""
    return _partitioned(
        name,
        Column("merge_name", String(30), nullable=False),
        *columns,
        by=("run_id", "merge_name"),
    )


CHANGE_SETS: dict[str, Table] = {
    "picsweb_updates": _change_set("sync_cs_picsweb_update", *_field_change_columns()),
    "picsweb_review_inserts": _change_set("sync_cs_review_insert", *_review_insert_columns()),
    "onefile_updates": _change_set(
        "sync_cs_onefile_update",
        Column("change_no", Integer, nullable=False),
        Column("entity", String(40), nullable=False),
        Column("entity_id", BigInteger, nullable=False),
        Column("field", String(64), nullable=False),
        Column("old", UnicodeText),  # JSON: OneFile wire values are strings or ints
        Column("new", UnicodeText),
        Column("rule", String(64)),
    ),
    "review_uploads": _change_set(
        "sync_cs_review_upload",
        Column("review_id", BigInteger, nullable=False),
        Column("trainee_id", BigInteger),
        Column("learner_id", BigInteger),
        Column("organisation_id", BigInteger),
        Column("assessor_id", BigInteger),
        Column("visit_type_id", Integer),
        Column("scheduled_for", String(20)),
        Column("visit_from", String(20)),
        Column("visit_to", String(20)),
    ),
}

# ----- work tables in the PICSWeb database (see picsweb_sync.db.apply_updates) ----------
# Partitioned by run and by the load that fills them (``work_key``: ``qualifications``,
# ``reviews``): the two loads of one run may run side by side.
sync_picsweb_work = _partitioned(
    "sync_picsweb_work",
    Column("work_key", String(30), nullable=False),
    *_field_change_columns(),
    *_value_columns("cur"),
    Column("outcome", String(10)),
    by=("run_id", "work_key"),
)
sync_review_insert_work = _partitioned(
    "sync_review_insert_work", *_review_insert_columns(), Column("existed", Boolean)
)

# ----- outbox, rejects, audit, run record ----------------------------------------------
# ``skipped``: not sent, because re-checked just before sending it no longer applied
# (the PICSWeb row or the OneFile value changed since the merge, or another run did it);
# ``last_error`` says why.
OUTBOX_STATES = ("pending", "sent", "failed", "rejected", "skipped")
FINAL_STATES = ("sent", "rejected", "skipped")
# Outbox kinds.
AIM_UPDATE = "learning_aim_update"
REVIEW_CREATE = "review_create"
sync_outbox = _partitioned(
    "sync_outbox",
    Column("outbox_id", _SURROGATE, Identity(), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("target_id", BigInteger, nullable=False),
    Column("payload", UnicodeText, nullable=False),
    Column("state", String(10), nullable=False),
    Column("visit_id", BigInteger),
    Column("result_id", BigInteger),
    Column("attempts", Integer, nullable=False),
    Column("last_error", UnicodeText),
    Column("updated_at", _INSTANT, nullable=False),
)
UniqueConstraint(sync_outbox.c.run_id, sync_outbox.c.kind, sync_outbox.c.target_id)

sync_reject = _partitioned(
    "sync_reject",
    Column("stage", String(64), nullable=False),
    Column("organisation_id", BigInteger),
    Column("entity", String(40)),
    # Unbounded: a bad ID or a reason quoting a long value must fit whatever OneFile sent.
    Column("source_id", UnicodeText),
    Column("reason", UnicodeText, nullable=False),
    Column("raw", UnicodeText),
    by=("run_id", "stage"),
)

sync_audit = Table(
    "sync_audit",
    project_metadata,
    Column("audit_id", _SURROGATE, Identity(), primary_key=True),
    _run_id(),
    Column("system", String(10), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("entity_key", Unicode(100), nullable=False),
    Column("field", String(64), nullable=False),
    Column("old_value", UnicodeText),
    Column("new_value", UnicodeText),
    Column("changed_at", _INSTANT, nullable=False),
    Index(None, "run_id"),
    # The sync page's audit search: every change of one learner's rows, newest first.
    Index(None, "entity", "entity_key", "changed_at"),
)

sync_run = Table(
    "sync_run",
    project_metadata,
    Column("run_id", String(250), primary_key=True),
    Column("started_at", _INSTANT, nullable=False),
    Column("ended_at", _INSTANT),
    Column("outcome", String(20), nullable=False),
    # Why a failed run failed: each failed task and its error (no secrets), by record_failure.
    Column("failure", UnicodeText),
    Index(None, "started_at"),  # the run history, newest first, a page at a time
)
# What each run was and what it did, for the sync page, the run's note in the Airflow UI
# and the alerts (``picsweb_sync.summary``). One row per run: written by ``start_run``
# (type, dry run, interval), completed by ``finish_run`` / ``record_failure``.
sync_run_summary = Table(
    "sync_run_summary",
    project_metadata,
    Column("run_id", String(250), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    # scheduled, manual, backfill, asset_triggered, operator_triggered (DagRunType values)
    Column("run_type", String(30), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("interval_start", _INSTANT),
    Column("interval_end", _INSTANT),
    # When the run first ended: its original duration survives a later rerun of a task.
    Column("first_ended_at", _INSTANT),
    # JSON object of counts (``picsweb_sync.summary.SUMMARY_KEYS`` and breakdowns).
    Column("summary", UnicodeText),
    # The thresholds the run crossed, as text naming each threshold and the numbers.
    Column("thresholds_crossed", UnicodeText),
    Column("updated_at", _INSTANT, nullable=False),
)
# The error of each failed task try, written by the task itself as it fails
# (``runtime.run_stage``), so ``record_failure`` can say why without reading task logs.
sync_task_error = Table(
    "sync_task_error",
    project_metadata,
    _run_id(),
    Column("task", String(250), nullable=False),
    Column("try_number", Integer),
    Column("error", UnicodeText, nullable=False),
    Column("failed_at", _INSTANT, nullable=False),
    Index(None, "run_id"),
)
# What each run's loads were based on: a load of OneFile data extracted earlier than data
# another run has already loaded (over an overlapping review window) would undo newer
# changes, so it refuses (``picsweb_sync.freshness``).
sync_load_mark = Table(
    "sync_load_mark",
    project_metadata,
    Column("run_id", String(250), primary_key=True),
    Column("stage", String(40), primary_key=True),
    Column("extracted_at", _INSTANT, nullable=False),
    Column("window_from", _INSTANT),
    Column("window_to", _INSTANT),
    Column("loaded_at", _INSTANT, nullable=False),
)
# Named locks with a heartbeat (``picsweb_sync.locks``): runs side by side (backfills,
# a scheduled run beside them) take turns at writing.
sync_lock = Table(
    "sync_lock",
    project_metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Unicode(500)),
    Column("acquired_at", _INSTANT),
    Column("heartbeat_at", _INSTANT),
)
# Counts live in their own rows: parallel (mapped) tasks of one run write them at once.
sync_run_count = Table(
    "sync_run_count",
    project_metadata,
    _run_id(),
    Column("stage", String(100), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", BigInteger, nullable=False),
    Index(None, "run_id", "stage"),
)

PURGED_TABLES: tuple[Table, ...] = tuple(
    table for table in project_metadata.sorted_tables if "created_at" in table.c
)


# What must live in the PICSWeb database, to commit or roll back with PICSWeb's changes,
# when staging has a database of its own.
PICSWEB_SIDE_TABLES: tuple[Table, ...] = (sync_picsweb_work, sync_review_insert_work, sync_audit)


def ensure_project_tables(
    bind: Engine | Connection, tables: tuple[Table, ...] | None = None
) -> None:
    """Create the missing ``sync_*`` tables and indexes (idempotent; existing tables are
    otherwise left alone); all of them, or only ``tables``.

    Indexes added in a later version are created on tables an earlier version made.
    """
    project_metadata.create_all(bind, tables=tables, checkfirst=True)
    wanted = project_metadata.sorted_tables if tables is None else tables
    with bind.begin() if isinstance(bind, Engine) else nullcontext(bind) as conn:
        inspector = inspect(conn)
        for table in wanted:
            present = {index["name"] for index in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in present:
                    index.create(conn)


# ----- staging ------------------------------------------------------------------------------
def replace_staging(
    conn: Connection, run_id: str, entity: str, organisation_id: int, frame: pd.DataFrame
) -> int:
    """Replace this run's staged ``entity`` rows of one organisation (a retried extract)."""
    partition = {"run_id": run_id, "organisation_id": organisation_id}
    return replace_partition(conn, STAGING[entity], partition, frame)


def read_staging(
    conn: Connection, run_id: str, entity: str, organisation_id: int | None = None
) -> pd.DataFrame:
    """This run's staged ``entity`` frame (all organisations unless one is named)."""
    table = STAGING[entity]
    stmt = select(*(c for c in table.c if c.name not in ("run_id", "created_at")))
    stmt = stmt.where(table.c.run_id == run_id)
    if organisation_id is not None:
        stmt = stmt.where(table.c.organisation_id == organisation_id)
    return read_frame(conn, stmt)


# ----- change sets --------------------------------------------------------------------------
def picsweb_field_kinds(tables: pd.Series, fields: pd.Series) -> pd.Series:
    """The value kind of each (PICSWeb table, field); unknown names and keys are errors.

    This is the guard that the sync only ever writes existing, non-key PICSWeb columns.
    """
    pairs = pd.DataFrame({"table": tables, "field": fields})
    known = {
        (table.name, col.name): value_kind(col.type)
        for table in picsweb_tables.metadata.tables.values()
        for col in table.c
        if not col.primary_key
    }
    kinds = pd.Series(list(zip(pairs["table"], pairs["field"], strict=True)), index=pairs.index)
    kinds = kinds.map(known)
    bad = pairs[kinds.isna()].drop_duplicates()
    if not bad.empty:
        raise ValueError(f"not updatable PICSWeb fields: {bad.to_records(index=False).tolist()}")
    unsupported = set(kinds) - set(VALUE_TYPES)
    if unsupported:
        raise ValueError(f"no change-set value column for kinds {sorted(unsupported)}")
    return kinds


def _objects(series: pd.Series) -> pd.Series:
    """Plain Python objects, ``None`` for missing (the change sets' ``old``/``new`` form)."""
    values = series.astype(object)
    return values.where(series.notna(), None)


def spread_field_changes(updates: pd.DataFrame) -> pd.DataFrame:
    """``picsweb_updates`` rows -> rows of the typed change tables (one value column per kind).

    ``change_no`` is the row's position, so results can be matched back to the input.
    """
    duplicated = updates.duplicated(["table", "key", "field"])
    if duplicated.any():
        raise ValueError(f"{int(duplicated.sum())} duplicate (table, key, field) change(s)")
    kinds = picsweb_field_kinds(updates["table"], updates["field"])
    rows = pd.DataFrame(
        {
            "change_no": range(len(updates)),
            "table_name": updates["table"].to_numpy(),
            "entity_key": updates["key"].to_numpy(),
            "field": updates["field"].to_numpy(),
            "rule": updates["rule"].to_numpy(),
        }
    )
    kinds = kinds.to_numpy()
    for side in ("old", "new"):
        values = _objects(updates[side]).to_numpy()
        for kind in VALUE_TYPES:
            rows[f"{side}_{kind}"] = pd.Series(values, dtype=object).where(kinds == kind, None)
    return rows


def gather_field_values(rows: pd.DataFrame, side: str) -> pd.Series:
    """The ``side`` (``old``/``new``/``cur``) value of each typed change row, as objects."""
    kinds = picsweb_field_kinds(rows["table_name"], rows["field"])
    values = pd.Series(None, index=rows.index, dtype=object)
    for kind in VALUE_TYPES:
        mask = kinds == kind
        values[mask] = rows.loc[mask, f"{side}_{kind}"].astype(object)
    return _objects(values)


def _json(series: pd.Series) -> pd.Series:
    return _objects(series).map(json.dumps)


def replace_change_set(
    conn: Connection, run_id: str, kind: str, frame: pd.DataFrame, merge_name: str = "all"
) -> int:
    """Replace this run's change set ``kind`` (a key of :data:`CHANGE_SETS`) written by
    ``merge_name`` by ``frame``.

    ``frame`` has the shape of docs/architecture.md for that kind.
    """
    if kind == "picsweb_updates":
        frame = spread_field_changes(frame)
    elif kind == "onefile_updates":
        frame = frame.assign(change_no=range(len(frame)), old=_json(frame["old"]))
        frame = frame.assign(new=_json(frame["new"]))
    partition = {"run_id": run_id, "merge_name": merge_name}
    return replace_partition(conn, CHANGE_SETS[kind], partition, frame)


def read_change_set(
    conn: Connection, run_id: str, kind: str, merge_name: str = "all"
) -> pd.DataFrame:
    """This run's change set ``kind`` of ``merge_name`` in the shape
    :func:`replace_change_set` was given."""
    table = CHANGE_SETS[kind]
    columns = [c for c in table.c if c.name not in ("run_id", "merge_name", "created_at")]
    order = [table.c.change_no] if "change_no" in table.c else []
    where = (table.c.run_id == run_id) & (table.c.merge_name == merge_name)
    frame = read_frame(conn, select(*columns).where(where).order_by(*order))
    if kind == "picsweb_updates":
        return pd.DataFrame(
            {
                "table": frame["table_name"],
                "key": frame["entity_key"],
                "field": frame["field"],
                "old": gather_field_values(frame, "old"),
                "new": gather_field_values(frame, "new"),
                "rule": frame["rule"],
            }
        )
    if kind == "onefile_updates":
        decoded = {side: frame[side].map(json.loads).astype(object) for side in ("old", "new")}
        return frame.drop(columns="change_no").assign(**decoded)
    return frame


# ----- outbox -------------------------------------------------------------------------------
def enqueue_outbox(
    conn: Connection, run_id: str, kind: str, items: pd.DataFrame, now: dt.datetime | None = None
) -> int:
    """Add ``items`` (``target_id``, ``payload`` dict) as pending sends; returns how many.

    Idempotent per run + kind + target: an item already queued (maybe already sent) is left
    as it is, so a retried merge never sends anything twice.
    """
    queued = read_frame(
        conn,
        select(sync_outbox.c.target_id).where(
            sync_outbox.c.run_id == run_id, sync_outbox.c.kind == kind
        ),
    )
    new = items[~items["target_id"].isin(queued["target_id"])]
    frame = pd.DataFrame(
        {
            "target_id": new["target_id"],
            "payload": new["payload"].map(lambda p: json.dumps(p, sort_keys=True)),
        }
    ).assign(run_id=run_id, kind=kind, state="pending", attempts=0, updated_at=_stamp(now))
    records = to_records(frame, sync_outbox)
    if records:
        conn.execute(insert(sync_outbox), records)
    return len(records)


_OUTBOX_COLUMNS = (
    sync_outbox.c.outbox_id,
    sync_outbox.c.kind,
    sync_outbox.c.target_id,
    sync_outbox.c.payload,
    sync_outbox.c.state,
    sync_outbox.c.visit_id,
    sync_outbox.c.result_id,
    sync_outbox.c.attempts,
    sync_outbox.c.last_error,
)


def outbox_rows(
    conn: Connection, run_id: str, kind: str | None = None, states: tuple[str, ...] = OUTBOX_STATES
) -> pd.DataFrame:
    """The run's outbox rows in ``states``, oldest first, with ``payload`` decoded."""
    stmt = select(*_OUTBOX_COLUMNS).where(
        sync_outbox.c.run_id == run_id, sync_outbox.c.state.in_(states)
    )
    if kind is not None:
        stmt = stmt.where(sync_outbox.c.kind == kind)
    frame = read_frame(conn, stmt.order_by(sync_outbox.c.outbox_id))
    return frame.assign(payload=frame["payload"].map(json.loads).astype(object))


def pending_outbox(conn: Connection, run_id: str, kind: str | None = None) -> pd.DataFrame:
    """Outbox rows still to send (``pending``, or ``failed`` and so worth retrying);
    ``visit_id`` tells a half-done review create."""
    return outbox_rows(conn, run_id, kind, ("pending", "failed"))


def unknown_outcome(table: Table = sync_outbox) -> ColumnElement[bool]:
    """Review creates whose outcome is unknown: the Visit was created and recorded, the
    Review call may or may not have reached OneFile, and nobody has found out yet."""
    return (
        (table.c.kind == REVIEW_CREATE)
        & table.c.visit_id.is_not(None)
        & table.c.result_id.is_(None)
        & table.c.state.not_in(FINAL_STATES)
    )


def unknown_creates(conn: Connection) -> pd.DataFrame:
    """Every review create of any run whose outcome is unknown, oldest first, with the
    payload it was sent with (recovery searches by what was sent, not by what PICSWeb
    holds now)."""
    stmt = select(*_OUTBOX_COLUMNS, sync_outbox.c.run_id).where(unknown_outcome())
    frame = read_frame(conn, stmt.order_by(sync_outbox.c.outbox_id))
    return frame.assign(payload=frame["payload"].map(json.loads).astype(object))


def unlinked_upload_visits(conn: Connection) -> list[int]:
    """VisitIDs of review creates, from any run, that OneFile may hold but PICSWeb does not
    yet know: their outcome is still unknown (see :func:`unknown_outcome`)."""
    visits = conn.execute(select(sync_outbox.c.visit_id).where(unknown_outcome()).distinct())
    return sorted(int(v) for v in visits.scalars())


def set_payload(conn: Connection, outbox_id: int, payload: Mapping[str, Any]) -> None:
    """Replace what an unsent outbox row will send (re-planned from the current state)."""
    conn.execute(
        update(sync_outbox)
        .where(sync_outbox.c.outbox_id == plain(outbox_id), sync_outbox.c.state != "sent")
        .values(payload=json.dumps(payload, sort_keys=True), updated_at=utcnow())
    )


def restart_create(conn: Connection, outbox_id: int, payload: Mapping[str, Any], note: str) -> None:
    """Start a review create afresh with ``payload``: its recorded visit is known to hold
    no review (searched for) and no longer fits the review, so it is let go (``note``)."""
    conn.execute(
        update(sync_outbox)
        .where(sync_outbox.c.outbox_id == plain(outbox_id), sync_outbox.c.result_id.is_(None))
        .values(
            payload=json.dumps(payload, sort_keys=True),
            visit_id=None,
            state="pending",
            last_error=note,
            updated_at=utcnow(),
        )
    )


def mark_outbox(
    conn: Connection,
    outbox_id: int,
    state: str,
    *,
    visit_id: int | None = None,
    result_id: int | None = None,
    error: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Record what OneFile answered for one outbox row.

    ``visit_id``/``result_id`` are only ever set, never cleared, so the VisitID recorded
    before the Review call survives a later failure. Every state but ``pending`` counts an
    attempt; ``error`` is the reason to show (no credentials or tokens in it).
    """
    if state not in OUTBOX_STATES:
        raise ValueError(f"unknown outbox state {state!r}; expected one of {OUTBOX_STATES}")
    values: dict[str, Any] = {"state": state, "updated_at": _stamp(now), "last_error": error}
    if state != "pending":
        values["attempts"] = sync_outbox.c.attempts + 1
    if visit_id is not None:
        values["visit_id"] = plain(visit_id)
    if result_id is not None:
        values["result_id"] = plain(result_id)
    done = conn.execute(
        update(sync_outbox).where(sync_outbox.c.outbox_id == plain(outbox_id)).values(values)
    )
    if done.rowcount != 1:
        raise LookupError(f"no outbox row {outbox_id}")


# ----- rejects, audit, run record ---------------------------------------------------------
def record_rejects(
    conn: Connection,
    run_id: str,
    stage: str,
    frame: pd.DataFrame,
    organisation_id: int | None = None,
) -> int:
    """Replace this run + stage (+ organisation) rejects by ``frame``
    (``entity``, ``source_id``, ``reason``, ``raw``), so a retried task counts once."""
    partition = {"run_id": run_id, "stage": stage, "organisation_id": organisation_id}
    return replace_partition(conn, sync_reject, partition, frame)


def add_rejects(conn: Connection, run_id: str, stage: str, frame: pd.DataFrame) -> int:
    """Append rejects that happen once by construction (e.g. a review that could not be
    linked, whose outbox row is then closed), where :func:`record_rejects` would replace."""
    records = to_records(frame.assign(run_id=run_id, stage=stage), sync_reject)
    if records:
        conn.execute(insert(sync_reject), records)
    return len(records)


def read_rejects(conn: Connection, run_id: str) -> pd.DataFrame:
    """Every reject of the run, for the report."""
    columns = [c for c in sync_reject.c if c.name not in ("run_id", "created_at")]
    return read_frame(conn, select(*columns).where(sync_reject.c.run_id == run_id))


def audit_text(value: Any) -> str | None:
    """An audited value as text: ISO for dates and times, ``str`` otherwise."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def audit(conn: Connection, run_id: str, rows: pd.DataFrame, now: dt.datetime | None = None) -> int:
    """Log changed fields: ``rows`` has ``system``, ``entity``, ``entity_key``, ``field``,
    ``old``, ``new``. Callers pass only fields that really changed."""
    frame = pd.DataFrame(
        {
            "system": rows["system"],
            "entity": rows["entity"],
            "entity_key": rows["entity_key"].map(str),
            "field": rows["field"],
            "old_value": _objects(rows["old"]).map(audit_text),
            "new_value": _objects(rows["new"]).map(audit_text),
        }
    ).assign(run_id=run_id, changed_at=_stamp(now))
    records = to_records(frame, sync_audit)
    if records:
        conn.execute(insert(sync_audit), records)
    return len(records)


def start_run(conn: Connection, run_id: str, now: dt.datetime | None = None) -> None:
    """Mark the run as running; a retry keeps the first start time."""
    reopened = conn.execute(
        update(sync_run).where(sync_run.c.run_id == run_id).values(outcome="running", ended_at=None)
    )
    if reopened.rowcount == 0:
        conn.execute(
            insert(sync_run).values(run_id=run_id, started_at=_stamp(now), outcome="running")
        )


def record_counts(conn: Connection, run_id: str, stage: str, counts: Mapping[str, int]) -> None:
    """Replace one stage's counts for the run (e.g. ``extract[123]``: learners=40, ...)."""
    frame = pd.DataFrame({"name": list(counts), "value": list(counts.values())})
    replace_partition(conn, sync_run_count, {"run_id": run_id, "stage": stage}, frame)


def run_counts(conn: Connection, run_id: str) -> dict[str, dict[str, int]]:
    """The run's counts, stage -> name -> value."""
    rows = conn.execute(
        select(sync_run_count.c.stage, sync_run_count.c.name, sync_run_count.c.value)
        .where(sync_run_count.c.run_id == run_id)
        .order_by(sync_run_count.c.stage, sync_run_count.c.name)
    )
    counts: dict[str, dict[str, int]] = {}
    for stage, name, value in rows:
        counts.setdefault(stage, {})[name] = value
    return counts


def finish_run(
    conn: Connection,
    run_id: str,
    outcome: str,
    now: dt.datetime | None = None,
    failure: str | None = None,
) -> None:
    """Close the run record with its outcome (and, for a failed run, why).

    The run's counts stay in ``sync_run_count`` only, the one place every task (and every
    rerun of a task) writes them: :func:`run_counts` reads them.
    """
    done = conn.execute(
        update(sync_run)
        .where(sync_run.c.run_id == run_id)
        .values(ended_at=_stamp(now), outcome=outcome, failure=failure)
    )
    if done.rowcount != 1:
        raise LookupError(f"run {run_id!r} was never started")


def record_task_error(
    conn: Connection,
    run_id: str,
    task: str,
    try_number: int | None,
    error: str,
    now: dt.datetime | None = None,
) -> None:
    """Keep one failed task try's error (already free of secrets) for the run record."""
    conn.execute(
        insert(sync_task_error).values(
            run_id=run_id, task=task, try_number=try_number, error=error, failed_at=_stamp(now)
        )
    )


def task_errors(conn: Connection, run_id: str) -> pd.DataFrame:
    """The run's task errors, the last try of each task first."""
    columns = [c for c in sync_task_error.c if c.name != "run_id"]
    stmt = select(*columns).where(sync_task_error.c.run_id == run_id)
    return read_frame(conn, stmt.order_by(sync_task_error.c.failed_at.desc()))


# ----- retention ----------------------------------------------------------------------------
def purge(
    conn: Connection,
    older_than_days: int,
    now: dt.datetime | None = None,
    tables: tuple[Table, ...] = PURGED_TABLES,
) -> dict[str, int]:
    """Delete per-run rows (staging, change sets, work tables, outbox, rejects) created more
    than ``older_than_days`` days before ``now``; audit and run records are kept.

    Staging and rejects hold learners' personal data, so they are not kept for ever.
    Returns rows deleted per table.
    """
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1: the current run needs its data")
    cutoff = _stamp(now) - dt.timedelta(days=older_than_days)
    return {
        table.name: conn.execute(purge_statement(table, cutoff)).rowcount
        for table in tables
        if table in PURGED_TABLES
    }


def purge_statement(table: Table, cutoff: dt.datetime) -> Delete:
    """Delete the rows of ``table`` created before ``cutoff``; never an outbox row whose
    outcome is still unknown (a review OneFile may hold that PICSWeb does not know yet)."""
    stmt = delete(table).where(table.c.created_at < cutoff)
    if table is sync_outbox:
        stmt = stmt.where(~unknown_outcome())
    return stmt
