"""The audit: every field the sync changed in either system, old and new value as text.
Kept for good (never purged); the sync page searches it by row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Column, Identity, Index, String, Table, Unicode, UnicodeText
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import (
    INSTANT,
    SURROGATE,
    as_objects,
    project_metadata,
    run_id_column,
    stamp,
)
from picsweb_sync.storage.sqlframes import bulk_insert

sync_audit = Table(
    "sync_audit",
    project_metadata,
    Column("audit_id", SURROGATE, Identity(), primary_key=True),
    run_id_column(),
    Column("system", String(10), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("entity_key", Unicode(100), nullable=False),
    Column("field", String(64), nullable=False),
    Column("old_value", UnicodeText),
    Column("new_value", UnicodeText),
    Column("changed_at", INSTANT, nullable=False),
    Index(None, "run_id"),
    # The sync page's changes of one run, page after page in audit_id order (keyset).
    Index(None, "run_id", "audit_id"),
    # The sync page's audit search: every change of one learner's rows, newest first.
    Index(None, "entity", "entity_key", "changed_at"),
)


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
            "old_value": as_objects(rows["old"]).map(audit_text),
            "new_value": as_objects(rows["new"]).map(audit_text),
        }
    ).assign(run_id=run_id, changed_at=stamp(now))
    return bulk_insert(conn, sync_audit, frame)
