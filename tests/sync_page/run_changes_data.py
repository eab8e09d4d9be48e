"""Two runs for the changes rows of the sync page, beside the generated history: a real
run with many audit rows (several pages of them, in both directions) and conflicts and
refusals among its rejects, and a dry run whose change sets are recorded by the dry run's
own writers (``picsweb_sync.run.dry_run``), so the page is compared with
``dry_run.would_change`` over the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.run import dry_run
from picsweb_sync.storage.project_tables import sync_audit, sync_reject, sync_run, sync_run_summary
from tests.sync_page.history import History

REAL = "manual__2026-02-01T03:00:00+00:00"
DRY = "manual__2026-02-02T03:00:00+00:00"
FIRST_AUDIT_ID = 10_000_000  # above the generated history's explicit IDs
CONFLICT = (
    "conflict: elements_done changed in PICSWeb since the merge read it (now 9, merge saw 7);"
    " left for the next run"
)
REFUSED = (
    "refused: registration_number was last written from OneFile data extracted at"
    " 2026-02-01 05:00:00 UTC (run scheduled__x), newer than this change's; not written"
)


@dataclass
class ChangeRuns:
    audit: list[dict[str, Any]] = field(default_factory=list)  # REAL's, in audit_id order
    rejects: list[dict[str, Any]] = field(default_factory=list)  # both runs'
    dry_tq: dict[str, Any] = field(default_factory=dict)  # a qualification the dry run changes


def _run_rows(run_id: str, started: dt.datetime, dry: bool) -> tuple[dict, dict]:
    run = {
        "run_id": run_id,
        "started_at": started,
        "ended_at": started + dt.timedelta(minutes=3),
        "outcome": "success",
        "failure": None,
    }
    summary = {
        "run_id": run_id,
        "dag_id": "onefile_picsweb_sync",
        "run_type": "manual",
        "dry_run": dry,
        "interval_start": started - dt.timedelta(days=1),
        "interval_end": started,
        "first_ended_at": run["ended_at"],
        "summary": json.dumps({"dry_run": dry}),
        "thresholds_crossed": None,
        "updated_at": run["ended_at"],
    }
    return run, summary


def write_change_runs(engine: sa.Engine, history: History, changes: int = 1234) -> ChangeRuns:
    rng = random.Random(11)
    written = ChangeRuns()
    started = dt.datetime(2026, 2, 1, 3, 0, tzinfo=dt.UTC).replace(tzinfo=None)
    kinds = [
        ("picsweb", "trainee_qualification", lambda q, r: q["tq_id"], "elements_done"),
        ("picsweb", "trainee_qualification", lambda q, r: q["tq_id"], "registration_number"),
        ("picsweb", "review", lambda q, r: r["review_id"], "attended"),
        ("onefile", "LearningAim", lambda q, r: q["onefile_learning_aim_id"], "RegistrationNumber"),
        ("onefile", "Review", lambda q, r: r["onefile_system_id"], "created_from_picsweb_review"),
    ]
    n = 0
    while len(written.audit) < changes:
        system, entity, key_of, name = kinds[n % len(kinds)]
        n += 1
        q = rng.choice(history.qualifications)
        r = next(x for x in history.reviews if x["trainee_id"] == q["trainee_id"])
        key = key_of(q, r)
        if key is None:
            continue
        written.audit.append(
            {
                "audit_id": FIRST_AUDIT_ID + len(written.audit),
                "run_id": REAL,
                "system": system,
                "entity": entity,
                "entity_key": str(key),
                "field": name,
                "old_value": None if n % 4 == 0 else f"old-{n}",
                "new_value": f"new-{n}",
                "changed_at": started + dt.timedelta(seconds=n),
            }
        )
    conflicted = history.qualifications[4]
    for run_id, stage in ((REAL, "load_qualifications"), (DRY, "load_qualifications")):
        written.rejects += [
            {
                "run_id": run_id,
                "stage": stage,
                "organisation_id": None,
                "entity": "trainee_qualification",
                "source_id": str(conflicted["tq_id"]),
                "reason": CONFLICT,
                "raw": None,
            },
            {
                "run_id": run_id,
                "stage": stage,
                "organisation_id": None,
                "entity": "trainee_qualification",
                "source_id": str(history.qualifications[6]["tq_id"]),
                "reason": REFUSED,
                "raw": None,
            },
            {  # not a change the run decided on: not listed among its changes
                "run_id": run_id,
                "stage": "extract_learners",
                "organisation_id": 1,
                "entity": "learning_aim",
                "source_id": "77",
                "reason": "missing learner ID",
                "raw": "{}",
            },
        ]
    real, real_summary = _run_rows(REAL, started, dry=False)
    dry, dry_summary = _run_rows(DRY, started + dt.timedelta(days=1), dry=True)
    with engine.begin() as conn:
        conn.execute(sa.insert(sync_run), [real, dry])
        conn.execute(sa.insert(sync_run_summary), [real_summary, dry_summary])
        conn.execute(sa.insert(sync_audit), written.audit)
        conn.execute(sa.insert(sync_reject), written.rejects)
        _write_dry_run(conn, history, written)
    return written


def _write_dry_run(conn: sa.Connection, history: History, written: ChangeRuns) -> None:
    """The change sets a dry run records, through its own writers."""
    tq = history.qualifications[2]
    written.dry_tq = tq
    quals = pd.DataFrame(
        {
            "table": ["trainee_qualification"] * 3,
            "key": [tq["tq_id"], tq["tq_id"], history.qualifications[3]["tq_id"]],
            "field": ["elements_done", "registration_date", "elements_done"],
            "old": [7, None, 1],
            "new": [12, dt.date(2026, 1, 30), 2],
            "rule": ["progress"] * 3,
        }
    )
    dry_run.record_load(conn, DRY, "qualifications", quals)
    review = history.reviews[0]
    reviews = pd.DataFrame(
        {
            "table": ["review"],
            "key": [review["review_id"]],
            "field": ["start_time"],
            "old": [None],
            "new": [dt.time(9, 30)],
            "rule": ["rule_6"],
        }
    )
    inserts = pd.DataFrame(
        {
            "trainee_id": [history.trainees[1]["trainee_id"]],
            "review_type": ["Progress"],
            "scheduled_date": [dt.date(2026, 2, 3)],
            "start_time": [dt.time(10, 0)],
            "end_time": [None],
            "officer_id": [None],
            "attended": ["Y"],
            "actual_date": [None],
            "trainee_signed_date": [None],
            "onefile_system_id": [990_001],
        }
    )
    dry_run.record_load(conn, DRY, "reviews", reviews, inserts)
    aim = next(q for q in history.qualifications if q["onefile_learning_aim_id"])
    aims = pd.DataFrame(
        {
            "entity": ["LearningAim"],
            "entity_id": [aim["onefile_learning_aim_id"]],
            "field": ["RegistrationNumber"],
            "old": [None],
            "new": ["REG-9"],
            "rule": ["fill_blank"],
        }
    )
    dry_run.record_aim_updates(conn, DRY, aims)
    upload = history.reviews[3]
    uploads = pd.DataFrame(
        {
            "review_id": [upload["review_id"]],
            "trainee_id": [upload["trainee_id"]],
            "learner_id": [700_000 + upload["trainee_id"]],
            "organisation_id": [1],
            "assessor_id": [5001],
            "visit_type_id": [3],
            "scheduled_for": ["2026-02-04T09:00:00Z"],
            "visit_from": ["2026-02-04T09:00:00Z"],
            "visit_to": ["2026-02-04T10:00:00Z"],
        }
    )
    dry_run.record_review_creates(conn, DRY, uploads)
