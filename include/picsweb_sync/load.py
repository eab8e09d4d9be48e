"""Load: a merge's PICSWeb change set written to PICSWeb in one transaction.

Each change is applied only where PICSWeb still holds the value the merge read
(``picsweb_sync.db.apply_updates``), so a rerun after success changes and audits nothing,
and a row someone edited in between is left alone and reported as a conflict: the next
run merges it again from what PICSWeb then holds.
"""

from __future__ import annotations

import logging

import pandas as pd

from picsweb_sync import db, project_tables
from picsweb_sync.runtime import RunContext

log = logging.getLogger(__name__)


def load_qualifications(ctx: RunContext) -> dict[str, int]:
    ctx.require_qualifications()
    with ctx.staging.connect() as conn:
        updates = project_tables.read_change_set(
            conn, ctx.run_id, "picsweb_updates", "qualifications"
        )
    with ctx.picsweb.begin() as conn:
        result = db.apply_updates(conn, ctx.run_id, updates, work_key="qualifications")
    return _report(ctx, "load_qualifications", result, inserted=0)


def load_reviews(ctx: RunContext) -> dict[str, int]:
    ctx.require_download()
    with ctx.staging.connect() as conn:
        updates = project_tables.read_change_set(conn, ctx.run_id, "picsweb_updates", "reviews")
        inserts = project_tables.read_change_set(conn, ctx.run_id, "picsweb_review_inserts")
    with ctx.picsweb.begin() as conn:
        result = db.apply_updates(conn, ctx.run_id, updates, work_key="reviews")
        keys = db.insert_reviews(conn, ctx.run_id, inserts) if len(inserts) else None
    inserted = 0 if keys is None else int(keys["inserted"].sum())
    return _report(ctx, "load_reviews", result, inserted=inserted)


def _report(ctx: RunContext, stage: str, result: db.ApplyResult, inserted: int) -> dict[str, int]:
    counts = {
        "fields_changed": len(result.applied),
        "already_equal": len(result.unchanged),
        "conflicts": len(result.conflicts),
        "reviews_inserted": inserted,
    }
    conflicts = result.conflicts
    rejects = pd.DataFrame(
        {
            "entity": conflicts["table"],
            "source_id": conflicts["key"].map(str),
            "reason": (
                "conflict: "
                + conflicts["field"].astype(str)
                + " changed in PICSWeb since the merge read it (now "
                + conflicts["current"].map(repr)
                + ", merge saw "
                + conflicts["old"].map(repr)
                + "); left for the next run"
            ),
            "raw": None,
        }
    )
    with ctx.staging.begin() as conn:
        project_tables.record_rejects(conn, ctx.run_id, stage, rejects)
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
    for reason in rejects["reason"]:
        log.warning("%s", reason)
    log.info("%s: %s", stage, counts)
    return counts
