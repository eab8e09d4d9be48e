"""How runs side by side take turns: named locks with a heartbeat (``picsweb_sync.locks``)
and what each run's loads were based on, so a stale load refuses
(``picsweb_sync.freshness``)."""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Unicode

from picsweb_sync.project_tables.common import INSTANT, project_metadata

# What each run's loads were based on: a load of OneFile data extracted earlier than data
# another run has already loaded (over an overlapping review window) would undo newer
# changes, so it refuses (``picsweb_sync.freshness``).
sync_load_mark = Table(
    "sync_load_mark",
    project_metadata,
    Column("run_id", String(250), primary_key=True),
    Column("stage", String(40), primary_key=True),
    Column("extracted_at", INSTANT, nullable=False),
    Column("window_from", INSTANT),
    Column("window_to", INSTANT),
    Column("loaded_at", INSTANT, nullable=False),
)
# Named locks with a heartbeat (``picsweb_sync.locks``): runs side by side (backfills,
# a scheduled run beside them) take turns at writing.
sync_lock = Table(
    "sync_lock",
    project_metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Unicode(500)),
    Column("acquired_at", INSTANT),
    Column("heartbeat_at", INSTANT),
)
