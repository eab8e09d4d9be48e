"""The drift report of each run: every difference left between OneFile and PICSWeb after
the run, with its reason (``picsweb_sync.rules.drift``), for the sync page and the summary.

Per run, replaced whole by a rerun of ``report_drift`` (one transaction), purged with the
run's other rows (it names learners). Indexed for the page: one run's rows in ``drift_id``
order (keyset pages), and its counts by reason.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import BigInteger, Column, Identity, Index, String, UnicodeText, func, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import SURROGATE, partitioned
from picsweb_sync.storage.project_tables.storable_text import storable_texts
from picsweb_sync.storage.sqlframes import replace_partition

sync_drift = partitioned(
    "sync_drift",
    Column("drift_id", SURROGATE, Identity(), primary_key=True),
    Column("entity", String(20), nullable=False),
    Column("learner_id", BigInteger),
    Column("trainee_id", BigInteger),
    Column("onefile_id", BigInteger),
    Column("picsweb_key", BigInteger),
    Column("field", String(64), nullable=False),
    Column("onefile_value", UnicodeText),
    Column("picsweb_value", UnicodeText),
    Column("reason", String(30), nullable=False),
    Column("detail", UnicodeText),
)
Index(None, sync_drift.c.run_id, sync_drift.c.drift_id)
Index(None, sync_drift.c.run_id, sync_drift.c.reason)

_TEXTS = ("onefile_value", "picsweb_value", "detail")


def record_drift(conn: Connection, run_id: str, report: pd.DataFrame) -> int:
    """Replace the run's drift rows by ``report`` (the columns of
    ``picsweb_sync.rules.drift.COLUMNS``), in the caller's transaction."""
    texts = {name: storable_texts(report[name]) for name in _TEXTS}
    return replace_partition(conn, sync_drift, {"run_id": run_id}, report.assign(**texts))


def drift_counts(conn: Connection, run_id: str) -> dict[str, int]:
    """The run's differences per reason (only reasons that occur)."""
    rows = conn.execute(
        select(sync_drift.c.reason, func.count())
        .where(sync_drift.c.run_id == run_id)
        .group_by(sync_drift.c.reason)
    )
    return {str(reason): int(n) for reason, n in rows}
