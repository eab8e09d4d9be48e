"""The project's own tables (``sync_*``) and the small helpers that write and read them, one
module per concern:

- ``common``: the metadata, shared column types, the run partition, naive-UTC timestamps
- ``staging``: the parsed OneFile frames, by run and organisation
- ``picsweb_changes``: the shapes of PICSWeb field changes and review inserts
- ``change_sets``: what the merges decided, for the loads and pushes
- ``picsweb_work``: the PICSWeb writes' work tables, in the PICSWeb database
- ``outbox``: what the pushes send to OneFile, with its queries
- ``rejects``, ``audit_log``: rows set aside; every field changed
- ``drift``: what still differs after each run, with its reason (the drift report)
- ``run_record``: each run's record, summary, counts and task errors
- ``coordination``: writers' locks and load marks
- ``basis``: what each change set and each PICSWeb row written is based on
- ``call_budget``: OneFile's call budget, shared by every task and process
- ``retention``: purging per-run rows

Every name is also importable from here (``project_tables.read_change_set``, ...), as it was
when this was one module. The sync creates the tables itself, idempotently
(:func:`ensure_project_tables`), in the staging database and, for the work tables and the
audit of PICSWeb writes (:data:`PICSWEB_SIDE_TABLES`), in the PICSWeb database (by default
they are the same database).
"""

from __future__ import annotations

from contextlib import nullcontext

from sqlalchemy import Table, inspect
from sqlalchemy.engine import Connection, Engine

from picsweb_sync.storage.project_tables.audit_log import audit, audit_text, sync_audit
from picsweb_sync.storage.project_tables.basis import (
    newer_row_bases,
    record_row_bases,
    sync_change_basis,
    sync_row_basis,
)
from picsweb_sync.storage.project_tables.call_budget import sync_call_budget, sync_call_slot
from picsweb_sync.storage.project_tables.change_sets import (
    CHANGE_SETS,
    read_change_set,
    replace_change_set,
)
from picsweb_sync.storage.project_tables.common import project_metadata, utcnow
from picsweb_sync.storage.project_tables.coordination import sync_load_mark, sync_lock
from picsweb_sync.storage.project_tables.drift import drift_counts, record_drift, sync_drift
from picsweb_sync.storage.project_tables.outbox import (
    AIM_UPDATE,
    FINAL_STATES,
    OUTBOX_STATES,
    REVIEW_CREATE,
    enqueue_outbox,
    mark_outbox,
    outbox_rows,
    pending_outbox,
    restart_create,
    set_payload,
    sync_outbox,
    unknown_creates,
    unknown_outcome,
    unlinked_upload_visits,
)
from picsweb_sync.storage.project_tables.picsweb_changes import (
    VALUE_TYPES,
    gather_field_values,
    picsweb_field_kinds,
    spread_field_changes,
)
from picsweb_sync.storage.project_tables.picsweb_work import (
    PICSWEB_SIDE_TABLES,
    sync_picsweb_work,
    sync_review_insert_work,
)
from picsweb_sync.storage.project_tables.rejects import (
    add_rejects,
    read_rejects,
    record_rejects,
    sync_reject,
)
from picsweb_sync.storage.project_tables.retention import PURGED_TABLES, purge, purge_statement
from picsweb_sync.storage.project_tables.run_record import (
    finish_run,
    record_counts,
    record_task_error,
    run_counts,
    start_run,
    sync_run,
    sync_run_count,
    sync_run_summary,
    sync_task_error,
    task_errors,
)
from picsweb_sync.storage.project_tables.staging import STAGING, read_staging, replace_staging

__all__ = [
    "newer_row_bases",
    "record_row_bases",
    "sync_change_basis",
    "sync_drift",
    "sync_row_basis",
    "AIM_UPDATE",
    "CHANGE_SETS",
    "FINAL_STATES",
    "OUTBOX_STATES",
    "PICSWEB_SIDE_TABLES",
    "PURGED_TABLES",
    "REVIEW_CREATE",
    "STAGING",
    "VALUE_TYPES",
    "add_rejects",
    "drift_counts",
    "audit",
    "audit_text",
    "enqueue_outbox",
    "ensure_project_tables",
    "finish_run",
    "gather_field_values",
    "mark_outbox",
    "outbox_rows",
    "pending_outbox",
    "picsweb_field_kinds",
    "project_metadata",
    "purge",
    "purge_statement",
    "read_change_set",
    "read_rejects",
    "read_staging",
    "record_counts",
    "record_drift",
    "record_rejects",
    "record_task_error",
    "replace_change_set",
    "replace_staging",
    "restart_create",
    "run_counts",
    "set_payload",
    "spread_field_changes",
    "start_run",
    "sync_audit",
    "sync_call_budget",
    "sync_call_slot",
    "sync_load_mark",
    "sync_lock",
    "sync_outbox",
    "sync_picsweb_work",
    "sync_reject",
    "sync_review_insert_work",
    "sync_run",
    "sync_run_count",
    "sync_run_summary",
    "sync_task_error",
    "task_errors",
    "unknown_creates",
    "unknown_outcome",
    "unlinked_upload_visits",
    "utcnow",
]


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
