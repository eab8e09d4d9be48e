"""Runs with drift reports for the sync page's drift view, beside PICSWeb learners
(``history.write_learners``): a real run with many differences (several pages, every
reason, the three entities, formula-like values), stored by the report's own writer
(``project_tables.record_drift``) with the counts ``report_drift`` records; a run whose
report found nothing; a run before its report; and a dry run (which has none).

``DriftRuns.rows`` keeps the real run's rows in the page's order (``drift_id``, read back),
so the tests compare the page's answers with plain Python over the same rows.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.rules.drift import COLUMNS, REASONS, counts_by_reason
from picsweb_sync.storage.project_tables import (
    record_counts,
    record_drift,
    sync_drift,
    sync_run,
    sync_run_summary,
)
from tests.sync_page.history import History
from tests.sync_page.run_changes_data import _run_rows

DRIFTED = "scheduled__2026-03-01T03:00:00+00:00"
CLEAN = "scheduled__2026-03-02T03:00:00+00:00"
NO_REPORT = "scheduled__2026-03-03T03:00:00+00:00"
DRY = "manual__2026-03-04T03:00:00+00:00"
STAGE = "report_drift"
# Values a spreadsheet would take for a formula: the CSV quotes them.
FORMULAS = ("=SUM(A1:A9)", "+44 20 7946 0000", "@cmd")
FIELDS = {
    "learner": ("link",),
    "qualification": ("elements_done", "registration_number", "certificate_applied_date"),
    "review": ("attended", "officer_id", "onefile_system_id"),
}


@dataclass
class DriftRuns:
    rows: list[dict[str, Any]] = field(default_factory=list)  # DRIFTED's, drift_id order
    by_trainee: dict[str, Any] = field(default_factory=dict)  # a row naming its trainee
    by_learner: dict[str, Any] = field(default_factory=dict)  # a row naming only the learner


def _report(history: History, size: int) -> pd.DataFrame:
    """``size`` differences over every reason, entity and field, in the report's order."""
    rng = random.Random(3)
    linked = [t for t in history.trainees if t["onefile_learner_id"] is not None]
    rows = []
    for n in range(size):
        reason = REASONS[n % len(REASONS)] if n >= 3 else "unexplained"
        entity = ("learner", "qualification", "review")[n % 3]
        name = FIELDS[entity][(n // 3) % len(FIELDS[entity])]
        trainee = rng.choice(linked)
        only_learner = entity == "learner" or n % 7 == 0  # the learner's ID alone
        value = f"{FORMULAS[n % len(FORMULAS)]} {n}" if n % 11 == 0 else f"of-{n}"
        rows.append(
            {
                "entity": entity,
                "learner_id": trainee["onefile_learner_id"] if n % 13 else 1_000_000 + n,
                "trainee_id": None if only_learner else trainee["trainee_id"],
                "onefile_id": 900_000 + n if entity != "learner" else None,
                "picsweb_key": 10 * trainee["trainee_id"] + 1 if entity != "learner" else None,
                "field": name,
                "onefile_value": value,
                "picsweb_value": None if n % 5 == 0 else f"pw-{n}",
                "reason": reason,
                "detail": f"detail {n}" if n % 2 else None,
            }
        )
    order = {reason: n for n, reason in enumerate(REASONS)}
    rows.sort(key=lambda r: order[r["reason"]])  # unexplained first, as the report
    report = pd.DataFrame(rows, columns=COLUMNS)
    for name in ("learner_id", "trainee_id", "onefile_id", "picsweb_key"):
        report[name] = report[name].astype("Int64")
    return report


def write_drift_runs(engine: sa.Engine, history: History, size: int = 1234) -> DriftRuns:
    started = dt.datetime(2026, 3, 1, 3, 0, tzinfo=dt.UTC).replace(tzinfo=None)
    runs, summaries = [], []
    for n, (run_id, dry) in enumerate(
        ((DRIFTED, False), (CLEAN, False), (NO_REPORT, False), (DRY, True))
    ):
        run, summary = _run_rows(run_id, started + dt.timedelta(days=n), dry=dry)
        runs.append(run)
        summaries.append(summary)
    report = _report(history, size)
    empty = report.iloc[0:0]
    with engine.begin() as conn:
        conn.execute(sa.insert(sync_run), runs)
        conn.execute(sa.insert(sync_run_summary), summaries)
        for run_id, found in ((DRIFTED, report), (CLEAN, empty)):
            record_drift(conn, run_id, found)
            counts = {f"drift_{r}": n for r, n in counts_by_reason(found).items()}
            record_counts(conn, run_id, STAGE, counts)
    written = DriftRuns()
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(sync_drift).where(sync_drift.c.run_id == DRIFTED).order_by("drift_id")
        )
        written.rows = [dict(r._mapping) for r in stored]
    written.by_trainee = next(r for r in written.rows if r["trainee_id"] is not None)
    written.by_learner = next(
        r
        for r in written.rows
        if r["trainee_id"] is None and r["learner_id"] is not None and r["learner_id"] < 1_000_000
    )
    return written
