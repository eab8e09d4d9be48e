"""OneFile's call budget, shared by every task and process (``picsweb_sync.run.call_budget``):
per customer, a row that claimants lock in turn, a ring of one row per call the limit
allows in a period, each stamped with when its last call may have started, and the limits
its holders were configured with.

Times are seconds since 1970 on the database's own clock (double precision), so every
worker, whatever its own clock says, shares one timeline. The tables are small and bounded
(the limit's number of rows per customer, one per configured limit) and never purged.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from picsweb_sync.storage.project_tables.common import EPOCH, project_metadata

sync_call_budget = Table(
    "sync_call_budget",
    project_metadata,
    # The customer: a hash of the base URL and customer token (onefile.limiter.budget_key).
    Column("budget_key", String(64), primary_key=True),
    Column("calls", Integer, nullable=False),  # the ring's size: the limit per period
    Column("paused_until", EPOCH, nullable=False),  # after a 429: nobody calls before
    Column("claims", BigInteger, nullable=False),  # bumped by every claim: its row lock
)
sync_call_slot = Table(
    "sync_call_slot",
    project_metadata,
    Column("budget_key", String(64), primary_key=True),
    Column("slot_no", Integer, primary_key=True),
    Column("used_until", EPOCH, nullable=False),  # the latest start of its last call
)
# The limits the budget's holders were configured with (a connection's calls_per_minute
# and rate period), each with when a holder last claimed under it: the budget keeps the
# lowest limit seen lately (``picsweb_sync.run.call_budget``). A table of its own, so a staging
# database made by an earlier version gains it like any missing table.
sync_call_limit = Table(
    "sync_call_limit",
    project_metadata,
    Column("budget_key", String(64), primary_key=True),
    Column("calls", Integer, primary_key=True),
    Column("period_ms", Integer, primary_key=True),  # the period, in milliseconds
    Column("seen_at", EPOCH, nullable=False),  # the last claim under this limit
)
BUDGET_TABLES = (sync_call_budget, sync_call_slot, sync_call_limit)
