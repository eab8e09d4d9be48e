"""A failed run's record as the sync leaves it (``sync_run``, ``sync_run_summary``,
``sync_task_error``), for the alert tests: what the notifier reads to write its mail."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from picsweb_sync.storage import project_tables as pt


def record_failed_run(
    engine: sa.Engine,
    run_id: str,
    *,
    dag_id: str,
    failure: str,
    summary: dict[str, Any] | None = None,
    crossed: str | None = None,
    run_type: str = "manual",
    interval: tuple[datetime | None, datetime | None] = (None, None),
    errors: Iterable[tuple[str, str]] = (),
) -> None:
    """The run started, failed with ``failure``, its summary (if any) recorded, and each
    ``(task, error)`` kept as that task's second try's error."""
    with engine.begin() as conn:
        pt.start_run(conn, run_id)
        pt.finish_run(conn, run_id, "failed", failure=failure)
        conn.execute(
            sa.insert(pt.sync_run_summary).values(
                run_id=run_id,
                dag_id=dag_id,
                run_type=run_type,
                dry_run=False,
                interval_start=interval[0],
                interval_end=interval[1],
                summary=None if summary is None else json.dumps(summary),
                thresholds_crossed=crossed,
                updated_at=pt.utcnow(),
            )
        )
        for task, error in errors:
            pt.record_task_error(conn, run_id, task, 2, error)
