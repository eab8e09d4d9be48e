"""Work tables in the PICSWeb database, filled and read by ``picsweb_sync.storage.picsweb_writes``:
a load's field changes and review inserts are copied next to PICSWeb's tables so each
(table, field) is classified and applied in one set-based statement.

Partitioned by run and by the load that fills them (``work_key``: ``qualifications``,
``reviews``): the two loads of one run may run side by side.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, String, Table

from picsweb_sync.storage.project_tables.audit_log import sync_audit
from picsweb_sync.storage.project_tables.basis import sync_row_basis
from picsweb_sync.storage.project_tables.common import partitioned
from picsweb_sync.storage.project_tables.picsweb_changes import (
    field_change_columns,
    review_insert_columns,
    value_columns,
)

sync_picsweb_work = partitioned(
    "sync_picsweb_work",
    Column("work_key", String(30), nullable=False),
    *field_change_columns(),
    *value_columns("cur"),
    Column("outcome", String(10)),
    # Each (table, field) is classified and applied by its own statements: they find
    # their rows through the whole key, not by scanning the run's other fields.
    by=("run_id", "work_key", "table_name", "field"),
)
sync_review_insert_work = partitioned(
    "sync_review_insert_work", *review_insert_columns(), Column("existed", Boolean)
)

# What must live in the PICSWeb database, to commit or roll back with PICSWeb's changes,
# when staging has a database of its own.
PICSWEB_SIDE_TABLES: tuple[Table, ...] = (
    sync_picsweb_work,
    sync_review_insert_work,
    sync_audit,
    sync_row_basis,
)
