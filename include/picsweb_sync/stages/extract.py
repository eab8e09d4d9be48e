"""Extract: one organisation's OneFile rows into this run's staging partition.

Each function is one mapped task (one organisation). It reads everything first, parses
it (a row that does not parse, has a value that does not fit the column it lands in, or is
not a JSON object at all becomes a reject with its reason: see
:mod:`picsweb_sync.onefile.fields`) and then replaces its own
staging partition and rejects in one transaction: a retry after a crash, a timeout or a
manual clear leaves exactly one copy of the organisation's rows, and two runs never
see each other's data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.names import ASSESSOR_ROLES, LEARNER_ROLE
from picsweb_sync.run.runtime import RunContext, skip_task
from picsweb_sync.storage import project_tables
from picsweb_sync.storage.project_tables.common import database_now

log = logging.getLogger(__name__)


def extract_learners(ctx: RunContext, organisation_id: int) -> dict[str, int]:
    if not ctx.plan.does_qualifications and not ctx.plan.does_uploads:
        skip_task("learners are not needed in a reviews-only (backfill) run")
    read_at = database_now(ctx.staging)
    rows = ctx.onefile().search_users(organisation_id, role=LEARNER_ROLE)
    return _stage(ctx, "learners", organisation_id, rows, onefile_fields.parse_learners, read_at)


def extract_assessors(ctx: RunContext, organisation_id: int) -> dict[str, int]:
    hook = ctx.onefile()
    read_at = database_now(ctx.staging)
    rows = [row for role in ASSESSOR_ROLES for row in hook.search_users(organisation_id, role=role)]
    return _stage(ctx, "assessors", organisation_id, rows, onefile_fields.parse_assessors, read_at)


def extract_learning_aims(ctx: RunContext, organisation_id: int) -> dict[str, int]:
    ctx.require_qualifications()
    read_at = database_now(ctx.staging)
    rows = ctx.onefile().search_learning_aims(organisation_id=organisation_id)
    parse = onefile_fields.parse_learning_aims
    return _stage(ctx, "learning_aims", organisation_id, rows, parse, read_at)


def extract_reviews(ctx: RunContext, organisation_id: int) -> dict[str, int]:
    ctx.require_download()
    read_at = database_now(ctx.staging)
    rows = ctx.onefile().search_reviews(
        organisation_id, date_from=ctx.plan.review_from, date_to=ctx.plan.review_to
    )
    return _stage(ctx, "reviews", organisation_id, rows, onefile_fields.parse_reviews, read_at)


def _stage(
    ctx: RunContext,
    entity: str,
    organisation_id: int,
    rows: Iterable[Any],  # a search's page elements as OneFile sent them, objects or not
    parse: Callable[[list[Any], int], onefile_fields.Parsed],
    read_at: dt.datetime,
) -> dict[str, int]:
    """Stage what OneFile sent, stamped ``read_at`` (the staging database's clock just
    before the first search call): the data is at least that new, and every worker's
    extracts are stamped by one clock, so the basis of a write (``freshness``) never
    depends on which worker's clock ran ahead."""
    rows = list(rows)
    parsed = parse(rows, organisation_id)
    frame: pd.DataFrame = parsed.frame.assign(created_at=read_at)
    counts = {"staged": len(frame), "rejected": len(parsed.rejects)}
    with ctx.staging.begin() as conn:
        project_tables.replace_staging(conn, ctx.run_id, entity, organisation_id, frame)
        project_tables.record_rejects(
            conn, ctx.run_id, f"extract_{entity}", parsed.rejects, organisation_id
        )
        project_tables.record_counts(
            conn, ctx.run_id, f"extract_{entity}[{organisation_id}]", counts
        )
    log.info(
        "organisation %s: staged %d %s, rejected %d",
        organisation_id,
        counts["staged"],
        entity,
        counts["rejected"],
    )
    return {"organisation_id": organisation_id, **counts}
