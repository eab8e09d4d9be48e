"""The routes of one run's drift report (``sync_page.drift_view``): the page of its rows
``runs/<run_id>/drift``, the CSV download ``runs/<run_id>/drift.csv`` and the JSON API
``api/runs/<run_id>/drift``, each filterable by reason, entity and field and read in keyset
pages. Added by ``sync_page.app.create_app`` before its ``runs/{run_id:path}`` routes,
which would otherwise take the sub-path for part of a run id (run ids hold ``:`` and
``+``, never ``/``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response

from sync_page import drift_view
from sync_page.change_routes import csv_cell, known_run
from sync_page.drift_labels import REASONS, reason_label
from sync_page.drift_view import DriftFilters
from sync_page.queries.page import Page
from sync_page.rendering import csv_download, page

Synced = Callable[..., bool]  # sync_page.sources.synced: whether the sync's tables exist yet
DRIFT_TABLE = ("sync_drift",)


def add_routes(
    app: FastAPI, reader: Callable[..., Any], json: Callable[..., Response], synced: Synced
) -> None:
    """The HTML, JSON and CSV routes of a run's drift; ``reader`` guards them as every route."""
    guarded = [Depends(reader)]

    @app.get("/api/runs/{run_id:path}/drift", dependencies=guarded)
    def api_run_drift(
        run_id: str,
        reason: str | None = None,
        entity: str | None = None,
        field: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: str | None = None,
    ) -> Response:
        filters = DriftFilters.of(reason, entity, field)
        run = known_run(app.state.sources, synced, run_id)
        found = drift_page(app.state.sources, synced, run, filters, limit, before)
        return json(
            {
                "run_id": run_id,
                "dry_run": run["dry_run"],
                "drift": found.rows,
                "next": found.next_cursor,
                **found.extra,
            }
        )

    @app.get("/runs/{run_id:path}/drift.csv", dependencies=guarded)
    def run_drift_csv(
        run_id: str,
        reason: str | None = None,
        entity: str | None = None,
        field: str | None = None,
    ) -> Response:
        filters = DriftFilters.of(reason, entity, field)
        run = known_run(app.state.sources, synced, run_id)
        return csv_download(csv_lines(app.state.sources, synced, run, filters), "drift", run_id)

    @app.get("/runs/{run_id:path}/drift", response_class=HTMLResponse, dependencies=guarded)
    def run_drift_page(
        request: Request,
        run_id: str,
        reason: str | None = None,
        entity: str | None = None,
        field: str | None = None,
        before: str | None = None,
    ) -> Response:
        filters = DriftFilters.of(reason, entity, field)
        run = known_run(app.state.sources, synced, run_id)
        summary = read_summary(app.state.sources, synced, run)
        found = drift_page(app.state.sources, synced, run, filters, None, before)
        return page(
            request,
            "drift.html",
            root="../../",
            run=run,
            drift=summary,
            drift_rows=found,
            drift_filters=filters.params(),
            drift_first_page=before is None,
            reasons=[(r, reason_label(r)) for r in REASONS],
            entities=drift_view.ENTITIES,
        )


def read_summary(sources: Any, synced: Synced, run: dict[str, Any]) -> dict[str, Any]:
    """The run's drift counts (staging), for the run page and the drift page."""
    with sources.staging().connect() as conn:
        return summary_of(conn, synced, run)


def summary_of(conn: Any, synced: Synced, run: dict[str, Any]) -> dict[str, Any]:
    """The run's drift counts over an open staging connection."""
    return drift_view.drift_summary(conn, run, synced(conn, DRIFT_TABLE))


def drift_page(
    sources: Any,
    synced: Synced,
    run: dict[str, Any],
    filters: DriftFilters,
    limit: int | None,
    before: str | None,
) -> Page:
    """One page of the run's differences (staging) with their learners (PICSWeb)."""
    picsweb, staging = sources.picsweb(), sources.staging()
    with ExitStack() as stack:
        pconn = stack.enter_context(picsweb.connect())
        same = staging is picsweb or staging.url == picsweb.url
        sconn = pconn if same else stack.enter_context(staging.connect())
        held = sconn if synced(sconn, DRIFT_TABLE) else None
        return drift_view.drift_page(run, held, pconn, filters, limit, before)


def csv_lines(
    sources: Any, synced: Synced, run: dict[str, Any], filters: DriftFilters
) -> Iterator[str]:
    """The run's differences as CSV, read in keyset pages of MAX_DRIFT rows: memory stays
    flat however many the report holds; a cell starting like a formula gets a quote."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(drift_view.CSV_COLUMNS)
    cursor = None
    while True:
        found = drift_page(sources, synced, run, filters, drift_view.MAX_DRIFT, cursor)
        for row in found.rows:
            writer.writerow([csv_cell(row[name]) for name in drift_view.CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        cursor = found.next_cursor
        if cursor is None:
            return
