"""Generated sync history for the sync page's tests and benchmark: PICSWeb learners with
qualifications and reviews, and a year (or more) of daily runs with their summaries,
counts, rejects, outbox rows and audit rows, as a real run writes them
(sync_page.queries documents the audit's entity keys).

``History`` keeps what was written, so the tests compare the page's answers with plain
Python over the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import (
    ensure_project_tables,
    sync_audit,
    sync_outbox,
    sync_reject,
    sync_run,
    sync_run_count,
    sync_run_summary,
)
from sync_demo.picsweb_db import create_picsweb_tables
from tests.sync_page import run_stories

FIRST_NAMES = ["Amy", "Ben", "Chloe", "Dev", "Ella", "Finn", "Grace", "Hari", "Isla", "Jack"]
SURNAMES = ["Smith", "Jones", "Patel", "Khan", "Brown", "Taylor", "Wilson", "Evans", "Wright"]
# A name no generated learner shares, with the characters a LIKE pattern must escape.
UNIQUE = {"first_name": "Zoë", "surname": "O'Brien_100%"}
START = dt.datetime(2025, 1, 1, 2, 0, tzinfo=dt.UTC).replace(tzinfo=None)  # naive UTC
TQ_FIELDS = ["elements_done", "total_elements", "registration_number", "registration_date"]
AIM_FIELDS = ["RegistrationNumber", "RegistrationDate"]
REJECT_REASONS = [
    "missing learner ID",
    "conflict: PICSWeb changed since the merge",
    "registration number too long (41 > 30 characters)",
    "unknown qualification code: ZZ99",
]


@dataclass
class History:
    runs: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    trainees: list[dict[str, Any]] = field(default_factory=list)
    qualifications: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    stories: Any = None  # tests.sync_page.run_stories.Stories, with 109 days or more

    def run(self, run_id: str) -> dict[str, Any]:
        return next(r for r in self.runs if r["run_id"] == run_id)

    def keys_of_trainee(self, trainee_id: int) -> set[tuple[str, str, str]]:
        """(system, entity, entity_key) of everything of one learner the audit may name."""
        keys = set()
        for q in self.qualifications:
            if q["trainee_id"] == trainee_id:
                keys.add(("picsweb", "trainee_qualification", str(q["tq_id"])))
                if q["onefile_learning_aim_id"] is not None:
                    keys.add(("onefile", "LearningAim", str(q["onefile_learning_aim_id"])))
        for r in self.reviews:
            if r["trainee_id"] == trainee_id:
                keys.add(("picsweb", "review", str(r["review_id"])))
                if r["onefile_system_id"] is not None:
                    keys.add(("onefile", "Review", str(r["onefile_system_id"])))
        return keys

    def audit_of(self, keys: set[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """Audit rows of ``keys``, newest first (the page's order)."""
        rows = [a for a in self.audit if (a["system"], a["entity"], a["entity_key"]) in keys]
        return sorted(rows, key=lambda a: (a["changed_at"], a["audit_id"]), reverse=True)


def _run_type(day: int) -> tuple[str, bool]:
    if day % 30 == 7:
        return "manual", True  # a dry run
    if day % 10 == 3:
        return "manual", False
    if day % 45 == 11:
        return "backfill", False
    return "scheduled", False


def write_learners(engine: sa.Engine, trainees: int = 300, seed: int = 5) -> History:
    """PICSWeb learners: two qualifications and two reviews each (the first learner has
    the :data:`UNIQUE` name)."""
    rng = random.Random(seed)
    history = History()
    create_picsweb_tables(engine)
    for n in range(1, trainees + 1):
        name = (
            UNIQUE
            if n == 1
            else {
                "first_name": rng.choice(FIRST_NAMES),
                "surname": rng.choice(SURNAMES),
            }
        )
        onefile_id = 700_000 + n if n % 5 else None  # every 5th learner not linked yet
        history.trainees.append({"trainee_id": n, **name, "onefile_learner_id": onefile_id})
        for k in (1, 2):
            tq_id = n * 10 + k
            aim = 500_000 + tq_id if k == 1 or n % 2 else None
            history.qualifications.append(
                {
                    "tq_id": tq_id,
                    "trainee_id": n,
                    "qualification_code": f"Q{k}{n % 7}",
                    "onefile_learning_aim_id": aim,
                }
            )
            history.reviews.append(
                {
                    "review_id": n * 10 + k,
                    "trainee_id": n,
                    "review_type": "Progress",
                    "scheduled_date": dt.date(2025, 1, 1) + dt.timedelta(days=n + k),
                    "onefile_system_id": 900_000 + n * 10 + k if k == 1 else None,
                }
            )
    with engine.begin() as conn:
        conn.execute(sa.insert(pw.trainee), history.trainees)
        conn.execute(sa.insert(pw.trainee_qualification), history.qualifications)
        conn.execute(sa.insert(pw.review), history.reviews)
    return history


def write_history(
    engine: sa.Engine, history: History, days: int = 400, changes_per_run: int = 12, seed: int = 7
) -> History:
    """``days`` daily runs (scheduled, manual, backfill, dry runs; some failed; every 50th
    without a summary row) with their audit, rejects, outbox rows and stage counts."""
    rng = random.Random(seed)
    ensure_project_tables(engine)
    audit_id = 0
    for day in range(days):
        started = START + dt.timedelta(days=day)
        run_type, dry_run = _run_type(day)
        run_id = f"{run_type}__{started.isoformat()}+00:00"
        failed = day % 17 == 5
        ended = started + dt.timedelta(seconds=60 + day % 300)
        run = {
            "run_id": run_id,
            "started_at": started,
            "ended_at": ended,
            "outcome": "failed" if failed else "success",
            "failure": "extract_learners: OneFile answered 500" if failed else None,
        }
        history.runs.append(run)
        picsweb_changes = onefile_changes = 0
        if not dry_run:
            for _ in range(changes_per_run):
                q = rng.choice(history.qualifications)
                audit_id += 1
                to_onefile = q["onefile_learning_aim_id"] is not None and rng.random() < 0.3
                if to_onefile:
                    row = (
                        "onefile",
                        "LearningAim",
                        q["onefile_learning_aim_id"],
                        rng.choice(AIM_FIELDS),
                    )
                    onefile_changes += 1
                else:
                    row = ("picsweb", "trainee_qualification", q["tq_id"], rng.choice(TQ_FIELDS))
                    picsweb_changes += 1
                history.audit.append(
                    {
                        "audit_id": audit_id,
                        "run_id": run_id,
                        "system": row[0],
                        "entity": row[1],
                        "entity_key": str(row[2]),
                        "field": row[3],
                        "old_value": None if rng.random() < 0.3 else str(rng.randint(0, 50)),
                        "new_value": str(rng.randint(0, 50)),
                        "changed_at": started + dt.timedelta(seconds=30),
                    }
                )
            if day % 9 == 0:  # a review linked in both systems
                r = rng.choice([r for r in history.reviews if r["onefile_system_id"]])
                for system, entity, key, fld, new in (
                    (
                        "picsweb",
                        "review",
                        r["review_id"],
                        "onefile_system_id",
                        r["onefile_system_id"],
                    ),
                    (
                        "onefile",
                        "Review",
                        r["onefile_system_id"],
                        "created_from_picsweb_review",
                        r["review_id"],
                    ),
                ):
                    audit_id += 1
                    history.audit.append(
                        {
                            "audit_id": audit_id,
                            "run_id": run_id,
                            "system": system,
                            "entity": entity,
                            "entity_key": str(key),
                            "field": fld,
                            "old_value": None,
                            "new_value": str(new),
                            "changed_at": started + dt.timedelta(seconds=40),
                        }
                    )
        rejects = []
        for k in range(day % 4):
            rejects.append(
                {
                    "run_id": run_id,
                    "stage": "merge_qualifications" if k % 2 else "extract_learners",
                    "organisation_id": 1,
                    "entity": "learning_aim",
                    "source_id": str(1000 + k),
                    "reason": REJECT_REASONS[(day + k) % len(REJECT_REASONS)],
                    "raw": json.dumps({"ID": 1000 + k}),
                }
            )
        history.rejects.extend(rejects)
        if day % 13 == 0:
            for k, state in enumerate(("pending", "failed", "sent")):
                history.outbox.append(
                    {
                        "run_id": run_id,
                        "kind": "learning_aim_update",
                        "target_id": 500_000 + k,
                        "payload": "{}",
                        "state": state,
                        "attempts": k,
                        "last_error": "HTTP 503" if state == "failed" else None,
                        "updated_at": ended,
                    }
                )
        pending = sum(1 for o in history.outbox if o["run_id"] == run_id and o["state"] != "sent")
        for stage, counts in (
            ("extract_learners[1]", {"learners": 40 + day % 5}),
            (
                "merge_qualifications",
                {"picsweb_updates": picsweb_changes, "onefile_updates": onefile_changes},
            ),
        ):
            for name, value in counts.items():
                history.counts.append(
                    {"run_id": run_id, "stage": stage, "name": name, "value": value}
                )
        conflicts = sum(1 for r in rejects if r["reason"].startswith("conflict"))
        summary = {
            "learners_extracted": 40 + day % 5,
            "learning_aims_extracted": 80,
            "assessors_extracted": 3,
            "reviews_extracted": 20,
            "picsweb_fields_changed": picsweb_changes,
            "picsweb_reviews_created": 0,
            "onefile_fields_changed": onefile_changes,
            "onefile_reviews_created": 0,
            "rejects": len(rejects),
            "conflicts": conflicts,
            "outbox_pending": pending,
            "dry_run": dry_run,
            "rejects_by_kind": {},
        }
        if day % 50 != 49:  # a run that never got its summary row still shows
            history.summaries[run_id] = {
                "run_id": run_id,
                "dag_id": "onefile_picsweb_sync",
                "run_type": run_type,
                "dry_run": dry_run,
                "interval_start": started - dt.timedelta(days=1),
                "interval_end": started,
                "first_ended_at": ended,
                "summary": json.dumps(summary),
                "thresholds_crossed": None,
                "updated_at": ended,
            }
    # Runs started at the same instant (a manual run beside a scheduled one): the history's
    # cursor must tell them apart.
    for twin_of in history.runs[20:days:100]:
        twin = {**twin_of, "run_id": twin_of["run_id"].replace("__", "__twin_", 1)}
        history.runs.append(twin)
    with engine.begin() as conn:
        conn.execute(sa.insert(sync_run), history.runs)
        conn.execute(sa.insert(sync_run_summary), list(history.summaries.values()))
        # Explicit audit IDs (the identity is GENERATED BY DEFAULT): the tests know them.
        conn.execute(sa.insert(sync_audit), history.audit)
        if history.rejects:
            conn.execute(sa.insert(sync_reject), history.rejects)
        if history.outbox:
            conn.execute(sa.insert(sync_outbox), history.outbox)
        conn.execute(sa.insert(sync_run_count), history.counts)
    if days > max(run_stories.RETRIED, run_stories.NEWER):
        history.stories = run_stories.write_stories(engine, history)
    return history
