"""The evidence of the on-demand report: what the latest real run recorded.

A difference the rules would still change is explained only by what a run did about it
(:mod:`picsweb_sync.rules.drift.evidence`): the latest run of the sync that ended and was
not a dry run (``sync_run`` and its ``sync_run_summary``) gives its rejects, conflicts,
change sets, audit and the outbox, through the per-run report's own reader
(:func:`picsweb_sync.stages.drift.run_evidence`). A run still going is passed over: its
change sets are half made and its loads half done. With no such run (or no ``sync_*``
tables yet: the sync never ran) the evidence is the outbox alone, or nothing.

OneFile's side is read now, so two things differ from the per-run report: the rows this read
set aside join the run's rejects, and what the run sent to OneFile is not laid over OneFile's
rows (they already hold it, or what OneFile holds since).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsweb_sync.rules import drift
from picsweb_sync.stages.drift import run_evidence
from picsweb_sync.storage.project_tables import sync_outbox, sync_run, sync_run_summary


@dataclass(frozen=True)
class LastRun:
    """The run whose evidence explains the report."""

    run_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str

    def as_json(self) -> dict[str, str | None]:
        return {
            "run_id": self.run_id,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "outcome": self.outcome,
        }


def latest_statement() -> sa.Select:
    """The latest run that ended and was not a dry run (a run recorded before summaries
    were kept counts as real)."""
    run, summary = sync_run.c, sync_run_summary.c
    return (
        sa.select(run.run_id, run.started_at, run.ended_at, run.outcome)
        .select_from(sync_run.outerjoin(sync_run_summary, run.run_id == summary.run_id))
        .where(run.outcome != "running")
        .where(sa.or_(summary.dry_run.is_(None), summary.dry_run == sa.false()))
        .order_by(run.started_at.desc(), run.run_id.desc())
        .limit(1)
    )


def running_statement() -> sa.Select:
    return sa.select(sync_run.c.run_id).where(sync_run.c.outcome == "running").limit(1)


@dataclass(frozen=True)
class Found:
    """The run found (``None``: none), whether one is going now, and whether the sync's
    tables exist at all."""

    run: LastRun | None
    running: str | None
    tables: bool


def find_last_run(conn: Connection) -> Found:
    names = set(sa.inspect(conn).get_table_names())
    wanted = {sync_run.name, sync_run_summary.name, sync_outbox.name}
    if not wanted <= names:
        return Found(None, None, tables=False)
    row = conn.execute(latest_statement()).first()
    running = conn.execute(running_statement()).scalar()
    run = None if row is None else LastRun(row.run_id, row.started_at, row.ended_at, row.outcome)
    return Found(run, running, tables=True)


def evidence_now(
    conn: Connection | None,
    found: Found,
    *,
    download: bool,
    upload: bool,
    window: tuple[datetime, datetime],
    fresh_rejects: pd.DataFrame,
) -> drift.RunEvidence:
    """The latest run's evidence (``conn``: the staging database, read-only), with this
    read's rejects added and only the PICSWeb side of the run's audit kept."""
    if found.tables and conn is not None:
        run_id = found.run.run_id if found.run else None
        evidence = run_evidence(
            conn, run_id, download=download, upload=upload, qualifications=True, window=window
        )
    else:
        evidence = drift.RunEvidence(
            download=download, upload=upload, qualifications=True, window=window
        )
    rejects = [frame for frame in (evidence.rejects, fresh_rejects) if len(frame)]
    audited = evidence.audited
    return dataclasses.replace(
        evidence,
        rejects=pd.concat(rejects, ignore_index=True) if rejects else evidence.rejects,
        audited=audited[audited["system"].eq("picsweb")].reset_index(drop=True),
    )


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
