"""How runs side by side take turns: named locks with a heartbeat and a fencing token
(``picsweb_sync.run.locks``), and what each run's loads were based on, so a stale load refuses
(``picsweb_sync.run.freshness``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table, Unicode

from picsweb_sync.storage.project_tables.common import EPOCH, INSTANT, project_metadata

# What each run's loads were based on: a load of OneFile data extracted earlier than data
# another run has already loaded (over an overlapping review window) would undo newer
# changes, so it refuses (``picsweb_sync.run.freshness``).
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
# Named locks with a heartbeat and a fencing token (``picsweb_sync.run.locks``): runs side by
# side (backfills, a scheduled run beside them) take turns at writing. Every claim adds one
# to ``token``; a holder writes only while the row still has its token (``locks.Fence``).
# Times are seconds since 1970 on the database's clock (``database_epoch``), never a
# worker's own clock. A new name: versions before the token kept their locks in
# ``sync_lock`` (no token, times by each worker's clock), which this version leaves alone;
# the sync creates this table itself like its other tables, so no table is ever altered.
sync_lock = Table(
    "sync_fenced_lock",
    project_metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Unicode(500)),
    Column("token", BigInteger, nullable=False),  # claims so far: the holder's fence
    Column("acquired_at", EPOCH),
    Column("heartbeat_at", EPOCH),
)
