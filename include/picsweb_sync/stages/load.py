"""Load: a merge's PICSWeb change set written to PICSWeb in one transaction.

Each change is applied only where PICSWeb still holds the value the merge read
(``picsweb_sync.storage.picsweb_writes.apply_updates``), so a rerun after success changes and audits nothing,
and a row someone edited in between is left alone and reported as a conflict: the next
run merges it again from what PICSWeb then holds.

Each load holds its lock (``picsweb_sync.run.locks``) so runs side by side take turns, and
refuses, changing nothing, when another run has already loaded OneFile data extracted
later than its own (``picsweb_sync.run.freshness``): a cleared load of an old run never undoes
what newer runs brought in.

In a **dry run** (``ctx.dry_run``) a load only reads PICSWeb: it classifies the change
set exactly as the real load would (``picsweb_sync.storage.picsweb_writes.classify_updates``: would change,
already equal, would conflict) and finds which downloaded reviews PICSWeb does not hold
yet (would be inserted). It records the same counts and conflict rejects as a real load,
and what it would change as the run's ``dry_run:*`` change sets (``picsweb_sync.run.dry_run``),
with no statement that writes PICSWeb, no lock and no freshness mark (a later real load
of older data must not be refused because of a run that changed nothing). It still
refuses, as the real load would, when a newer run already loaded newer data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import pandas as pd
from sqlalchemy.engine import Connection

from picsweb_sync.run import dry_run, freshness, locks
from picsweb_sync.run.runtime import RunContext, skip_task
from picsweb_sync.storage import picsweb_writes, project_tables
from picsweb_sync.storage.project_tables.run_record import record_refusal

log = logging.getLogger(__name__)

# The load task of each freshness stage (a refusal is kept under its task's name).
LOAD_TASKS = {freshness.QUALIFICATIONS: "load_qualifications", freshness.REVIEWS: "load_reviews"}


def load_qualifications(ctx: RunContext) -> dict[str, int]:
    ctx.require_qualifications()
    if ctx.dry_run:
        return _dry_run_load(ctx, "load_qualifications", "qualifications")
    with ctx.lock(locks.QUALIFICATIONS) as fence:
        with ctx.staging.connect() as conn:
            updates = project_tables.read_change_set(
                conn, ctx.run_id, "picsweb_updates", "qualifications"
            )
            basis = _fresh_basis(ctx, conn, freshness.QUALIFICATIONS, not updates.empty)
        with _fenced_writes(ctx, fence) as (picsweb, staging):
            result = picsweb_writes.apply_updates(
                picsweb, ctx.run_id, updates, work_key="qualifications", basis_at=_at(basis)
            )
            _mark(ctx, staging, freshness.QUALIFICATIONS, basis)
    return _report(ctx, "load_qualifications", result, inserted=0)


def load_reviews(ctx: RunContext) -> dict[str, int]:
    ctx.require_download()
    if ctx.dry_run:
        return _dry_run_load(ctx, "load_reviews", "reviews")
    with ctx.lock(locks.REVIEWS) as fence:
        with ctx.staging.connect() as conn:
            updates = project_tables.read_change_set(conn, ctx.run_id, "picsweb_updates", "reviews")
            inserts = project_tables.read_change_set(conn, ctx.run_id, "picsweb_review_inserts")
            changes = not (updates.empty and inserts.empty)
            basis = _fresh_basis(ctx, conn, freshness.REVIEWS, changes)
        with _fenced_writes(ctx, fence) as (picsweb, staging):
            result = picsweb_writes.apply_updates(
                picsweb, ctx.run_id, updates, work_key="reviews", basis_at=_at(basis)
            )
            keys = (
                picsweb_writes.insert_reviews(picsweb, ctx.run_id, inserts, basis_at=_at(basis))
                if len(inserts)
                else None
            )
            _mark(ctx, staging, freshness.REVIEWS, basis)
    inserted = 0 if keys is None else int(keys["inserted"].sum())
    return _report(ctx, "load_reviews", result, inserted=inserted)


@contextmanager
def _fenced_writes(ctx: RunContext, fence: locks.Fence) -> Iterator[tuple[Connection, Connection]]:
    """A PICSWeb write transaction and a staging one, committed only while this task still
    holds its lock: the lock's fencing token is checked in the staging transaction, which
    keeps the lock's row locked until PICSWeb has committed, so a holder that lost the lock
    (paused past its staleness, a skewed clock) writes nothing. Both are one transaction
    when PICSWeb and staging are one database (the default)."""
    if ctx.picsweb_conn_id == ctx.staging_conn_id:
        with ctx.picsweb.begin() as conn:
            fence.check(conn)
            yield conn, conn
        return
    with ctx.staging.begin() as staging:
        fence.check(staging)
        with ctx.picsweb.begin() as picsweb:
            yield picsweb, staging


def _dry_run_load(ctx: RunContext, stage: str, merge_name: str) -> dict[str, int]:
    """What the load would do, read-only on PICSWeb (see the module doc)."""
    reviews = merge_name == "reviews"
    with ctx.staging.connect() as conn:
        updates = project_tables.read_change_set(conn, ctx.run_id, "picsweb_updates", merge_name)
        inserts = (
            project_tables.read_change_set(conn, ctx.run_id, "picsweb_review_inserts")
            if reviews
            else None
        )
        changes = not (updates.empty and (inserts is None or inserts.empty))
        stage_name = freshness.REVIEWS if reviews else freshness.QUALIFICATIONS
        basis = _fresh_basis(ctx, conn, stage_name, changes)
    with ctx.picsweb.connect() as conn:
        result = picsweb_writes.classify_updates(conn, updates, basis_at=_at(basis))
        new = None
        if inserts is not None:
            held = picsweb_writes.reviews_with_onefile_ids(conn, inserts["onefile_system_id"])
            new = inserts[~inserts["onefile_system_id"].isin(held["onefile_system_id"])]

    def record(conn) -> None:
        dry_run.record_load(conn, ctx.run_id, merge_name, result.applied, new)

    log.info("dry run: PICSWeb is only read; nothing is written")
    return _report(ctx, stage, result, inserted=0 if new is None else len(new), record=record)


def _fresh_basis(
    ctx: RunContext, conn: Connection, stage: str, changes: bool
) -> freshness.Basis | None:
    """The basis the run's ``stage`` change set was merged from (read in ``conn``, with the
    change set); skips the task, changing nothing, when another run has already loaded
    newer OneFile data, or when a change set has no basis to judge it by
    (``picsweb_sync.run.freshness``). ``None``: no basis and nothing to change."""
    basis = freshness.change_basis(conn, ctx.run_id, stage)
    if basis is None:
        if changes:
            reason = freshness.no_basis(stage, ctx.task_label)
            _refuse(ctx, conn, stage, "no_basis", reason)
        return None
    newer = freshness.newer_load(conn, ctx.run_id, stage, basis)
    if newer is not None:
        reason = freshness.refusal(newer, basis, stage, ctx.task_label)
        _refuse(ctx, conn, stage, "stale", reason, newer, basis)
    return basis


def _refuse(
    ctx: RunContext,
    conn: Connection,
    stage: str,
    kind: str,
    reason: str,
    newer: freshness.Newer | None = None,
    basis: freshness.Basis | None = None,
) -> NoReturn:
    """Keep the refusal for the run's page (``sync_load_refusal``: a skipped task's log is
    folded away in the UI), committed in ``conn`` (the staging connection the load read
    its change set in: no second connection waiting on the first's locks), then skip."""
    record_refusal(
        conn,
        ctx.run_id,
        LOAD_TASKS[stage],
        kind,
        reason,
        try_number=ctx.try_number,
        newer_run_id=None if newer is None else newer.run_id,
        newer_extracted_at=None if newer is None else newer.extracted_at,
        extracted_at=None if basis is None else basis.extracted_at,
    )
    conn.commit()
    skip_task(reason)


def _at(basis: freshness.Basis | None) -> dt.datetime | None:
    return None if basis is None else basis.extracted_at


def _mark(ctx: RunContext, conn: Connection, stage: str, basis: freshness.Basis | None) -> None:
    """Record what the load was based on, unless its change set came from no OneFile data."""
    if basis is not None and basis.staged_rows:
        freshness.record_load(conn, ctx.run_id, stage, basis)


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
    if len(result.stale):
        counts["refused_stale"] = len(result.stale)
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
    rejects = pd.concat([rejects, stale_rejects(result.stale)], ignore_index=True)
    with ctx.staging.begin() as conn:
        if record is not None:
            record(conn)
        project_tables.record_rejects(conn, ctx.run_id, stage, rejects)
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
    for reason in rejects["reason"]:
        log.warning("%s", reason)
    log.info("%s: %s", stage, counts)
    return counts


def stale_rejects(stale: pd.DataFrame) -> pd.DataFrame:
    """The changes refused because their PICSWeb row was last written from newer OneFile
    data (``picsweb_writes.ApplyResult.stale``), as rejects naming that write."""
    if stale.empty:
        return pd.DataFrame(columns=["entity", "source_id", "reason", "raw"])
    return pd.DataFrame(
        {
            "entity": stale["table"],
            "source_id": stale["key"].map(str),
            "reason": (
                "refused: "
                + stale["field"].astype(str)
                + " was last written from OneFile data extracted at "
                + stale["newer_at"].map(lambda t: f"{t:%Y-%m-%d %H:%M:%S} UTC")
                + " (run "
                + stale["newer_run"].astype(str)
                + "), newer than this change's; not written"
            ),
            "raw": None,
        }
    )
