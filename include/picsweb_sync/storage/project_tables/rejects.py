"""Rejects: rows set aside with the stage, OneFile ID, raw JSON and a reason, counted in the
run's summary and listed by the report.

A reject must always be storable, whatever the row it sets aside held: its text columns are
written through :func:`~picsweb_sync.storage.project_tables.storable_text.storable_texts` (a NUL or a
lone surrogate as its ``\\uXXXX`` escape, any other text unchanged). The parsers' rejects
need it not (their reasons and ``raw`` are ASCII JSON already); it keeps every other stage's
reject, e.g. one quoting a message from OneFile, from failing the task that records it."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import BigInteger, Column, String, UnicodeText, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import partitioned
from picsweb_sync.storage.project_tables.storable_text import storable_texts
from picsweb_sync.storage.sqlframes import bulk_insert, read_frame, replace_partition

sync_reject = partitioned(
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
    return replace_partition(conn, sync_reject, partition, _storable(frame))


def add_rejects(conn: Connection, run_id: str, stage: str, frame: pd.DataFrame) -> int:
    """Append rejects that happen once by construction (e.g. a review that could not be
    linked, whose outbox row is then closed), where :func:`record_rejects` would replace."""
    return bulk_insert(conn, sync_reject, _storable(frame).assign(run_id=run_id, stage=stage))


_TEXT_COLUMNS = ("entity", "source_id", "reason", "raw")


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text a reject keeps made storable (unchanged when it is)."""
    texts = {name: storable_texts(frame[name]) for name in _TEXT_COLUMNS if name in frame}
    return frame.assign(**texts) if texts else frame


def read_rejects(conn: Connection, run_id: str) -> pd.DataFrame:
    """Every reject of the run, for the report."""
    columns = [c for c in sync_reject.c if c.name not in ("run_id", "created_at")]
    return read_frame(conn, select(*columns).where(sync_reject.c.run_id == run_id))
