"""Load: a merge's PICSWeb change set written to PICSWeb in one transaction.

Each change is applied only where PICSWeb still holds the value the merge read
(``picsweb_sync.picsweb_writes.apply_updates``), so a rerun after success changes and audits nothing,
and a row someone edited in between is left alone and reported as a conflict: the next
run merges it again from what PICSWeb then holds.

Each load holds its lock (``picsweb_sync.locks``) so runs side by side take turns, and
refuses, changing nothing, when another run has already loaded OneFile data extracted
later than its own (``picsweb_sync.freshness``): a cleared load of an old run never undoes
what newer runs brought in.

In a **dry run** (``ctx.dry_run``) a load only reads PICSWeb: it classifies the change
set exactly as the real load would (``picsweb_sync.picsweb_writes.classify_updates``: would change,
already equal, would conflict) and finds which downloaded reviews PICSWeb does not hold
yet (would be inserted). It records the same counts and conflict rejects as a real load,
and what it would change as the run's ``dry_run:*`` change sets (``picsweb_sync.dry_run``),
with no statement that writes PICSWeb, no lock and no freshness mark (a later real load
of older data must not be refused because of a run that changed nothing). It still
refuses, as the real load would, when a newer run already loaded newer data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pandas as pd
from sqlalchemy.engine import Connection

from picsweb_sync import dry_run, freshness, locks, picsweb_writes, project_tables
from picsweb_sync.runtime import RunContext, skip_task

log = logging.getLogger(__name__)


def load_qualifications(ctx: RunContext) -> dict[str, int]:
    ctx.require_qualifications()
    if ctx.dry_run:
        return _dry_run_load(ctx, "load_qualifications", "qualifications")
    with ctx.lock(locks.QUALIFICATIONS):
        basis = _fresh_basis(ctx, freshness.QUALIFICATIONS, None)
        with ctx.staging.connect() as conn:
            updates = project_tables.read_change_set(
                conn, ctx.run_id, "picsweb_updates", "qualifications"
            )
        with ctx.picsweb.begin() as conn:
            result = picsweb_writes.apply_updates(
                conn, ctx.run_id, updates, work_key="qualifications"
            )
        _mark(ctx, freshness.QUALIFICATIONS, basis)
    return _report(ctx, "load_qualifications", result, inserted=0)


def load_reviews(ctx: RunContext) -> dict[str, int]:
    ctx.require_download()
    if ctx.dry_run:
        return _dry_run_load(ctx, "load_reviews", "reviews")
    with ctx.lock(locks.REVIEWS):
        basis = _fresh_basis(ctx, freshness.REVIEWS, (ctx.plan.review_from, ctx.plan.review_to))
        with ctx.staging.connect() as conn:
            updates = project_tables.read_change_set(conn, ctx.run_id, "picsweb_updates", "reviews")
            inserts = project_tables.read_change_set(conn, ctx.run_id, "picsweb_review_inserts")
        with ctx.picsweb.begin() as conn:
            result = picsweb_writes.apply_updates(conn, ctx.run_id, updates, work_key="reviews")
            keys = (
                picsweb_writes.insert_reviews(conn, ctx.run_id, inserts) if len(inserts) else None
            )
        _mark(ctx, freshness.REVIEWS, basis)
    inserted = 0 if keys is None else int(keys["inserted"].sum())
    return _report(ctx, "load_reviews", result, inserted=inserted)


def _dry_run_load(ctx: RunContext, stage: str, merge_name: str) -> dict[str, int]:
    """What the load would do, read-only on PICSWeb (see the module doc)."""
    reviews = merge_name == "reviews"
    if reviews:
        _fresh_basis(ctx, freshness.REVIEWS, (ctx.plan.review_from, ctx.plan.review_to))
    else:
        _fresh_basis(ctx, freshness.QUALIFICATIONS, None)
    with ctx.staging.connect() as conn:
        updates = project_tables.read_change_set(conn, ctx.run_id, "picsweb_updates", merge_name)
        inserts = (
            project_tables.read_change_set(conn, ctx.run_id, "picsweb_review_inserts")
            if reviews
            else None
        )
    with ctx.picsweb.connect() as conn:
        result = picsweb_writes.classify_updates(conn, updates)
        new = None
        if inserts is not None:
            held = picsweb_writes.reviews_with_onefile_ids(conn, inserts["onefile_system_id"])
            new = inserts[~inserts["onefile_system_id"].isin(held["onefile_system_id"])]

    def record(conn) -> None:
        dry_run.record_load(conn, ctx.run_id, merge_name, result.applied, new)

    log.info("dry run: PICSWeb is only read; nothing is written")
    return _report(ctx, stage, result, inserted=0 if new is None else len(new), record=record)


def _fresh_basis(
    ctx: RunContext, stage: str, window: tuple[dt.datetime, dt.datetime] | None
) -> freshness.Basis | None:
    """What this load is based on; skips the task (changing nothing) when another run has
    already loaded newer OneFile data (``picsweb_sync.freshness``)."""
    with ctx.staging.connect() as conn:
        extracted = freshness.extracted_at(conn, ctx.run_id, stage)
        if extracted is None:  # nothing staged (purged, or nothing extracted): nothing to undo
            return None
        window = window and tuple(_naive_utc(t) for t in window)
        basis = freshness.Basis(extracted, *(window or (None, None)))
        newer = freshness.newer_load(conn, ctx.run_id, stage, basis)
    if newer is not None:
        skip_task(freshness.refusal(newer, basis, stage, ctx.task_label))
    return basis


def _mark(ctx: RunContext, stage: str, basis: freshness.Basis | None) -> None:
    if basis is not None:
        with ctx.staging.begin() as conn:
            freshness.record_load(conn, ctx.run_id, stage, basis)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)


def _report(
    ctx: RunContext,
    stage: str,
    result: picsweb_writes.ApplyResult,
    inserted: int,
    record: Callable[[Connection], None] | None = None,
) -> dict[str, int]:
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
        if record is not None:
            record(conn)
        project_tables.record_rejects(conn, ctx.run_id, stage, rejects)
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
    for reason in rejects["reason"]:
        log.warning("%s", reason)
    log.info("%s: %s", stage, counts)
    return counts
