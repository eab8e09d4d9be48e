"""The routes of one run's changes row by row (``sync_page.changes``): the JSON API
``api/runs/<run_id>/changes`` and the CSV download ``runs/<run_id>/changes.csv``, and what
the run page uses to list them. Added by ``sync_page.app.create_app`` before its
``runs/{run_id:path}`` routes, which would otherwise take the sub-path for part of a run
id (run ids hold ``:`` and ``+``, never ``/``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import Response

from sync_page import changes
from sync_page.queries.history import run_row
from sync_page.queries.one_run import run_statement
from sync_page.queries.page import Page
from sync_page.rendering import csv_download

Synced = Callable[..., bool]  # sync_page.app.synced: whether the sync's tables exist yet


class UnknownRun(HTTPException):
    """A run this page's staging database does not hold (mistyped, purged, or a run of
    another deployment's staging database): a page that says so, for a person."""

    def __init__(self, run_id: str) -> None:
        super().__init__(404, f"No sync run {run_id!r}")
        self.run_id = run_id


def add_routes(
    app: FastAPI, reader: Callable[..., Any], json: Callable[..., Response], synced: Synced
) -> None:
    """The JSON and CSV routes of a run's changes; ``reader`` guards them as every route."""
    guarded = [Depends(reader)]

    @app.get("/api/runs/{run_id:path}/changes", dependencies=guarded)
    def api_run_changes(
        run_id: str,
        direction: str | None = None,
        entity: str | None = None,
        field: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: str | None = None,
    ) -> Response:
        filters = changes.Filters.of(direction, entity, field)
        run = known_run(app.state.sources, synced, run_id)
        page = changes_page(app.state.sources, synced, run, filters, limit, before)
        return json(
            {
                "run_id": run_id,
                "dry_run": run["dry_run"],
                "changes": page.rows,
                "next": page.next_cursor,
                **page.extra,
            }
        )

    @app.get("/runs/{run_id:path}/changes.csv", dependencies=guarded)
    def run_changes_csv(
        run_id: str,
        direction: str | None = None,
        entity: str | None = None,
        field: str | None = None,
    ) -> Response:
        filters = changes.Filters.of(direction, entity, field)
        run = known_run(app.state.sources, synced, run_id)
        return csv_download(csv_lines(app.state.sources, synced, run, filters), "changes", run_id)


def known_run(sources: Any, synced: Synced, run_id: str) -> dict[str, Any]:
    """The run's history row (is it a dry run?), or :class:`UnknownRun`."""
    with sources.staging().connect() as conn:
        row = conn.execute(run_statement(run_id)).first() if synced(conn) else None
    if row is None:
        raise UnknownRun(run_id)
    return run_row(row)


def changes_page(
    sources: Any,
    synced: Synced,
    run: dict[str, Any],
    filters: changes.Filters,
    limit: int | None,
    before: str | None,
) -> Page:
    """One page of the run's changes: the audit in each database holding it (a real run)
    or the dry run's change sets (staging), and the learners from PICSWeb."""
    picsweb, staging = sources.picsweb(), sources.staging()
    with ExitStack() as stack:
        pconn = stack.enter_context(picsweb.connect())
        same = staging is picsweb or staging.url == picsweb.url
        sconn = pconn if same else stack.enter_context(staging.connect())
        audit_conns = []
        if not run["dry_run"]:
            for engine in sources.audit_engines():
                conn = pconn if engine is picsweb else sconn
                if synced(conn, ("sync_audit",)):
                    audit_conns.append(conn)
        return changes.run_changes(run, sconn, audit_conns, pconn, filters, limit, before)


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a value starting like a formula gets a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_lines(
    sources: Any, synced: Synced, run: dict[str, Any], filters: changes.Filters
) -> Iterator[str]:
    """The run's changes as CSV, read in keyset pages of MAX_CHANGES rows: memory stays
    flat however many changes the run made."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(changes.CSV_COLUMNS)
    cursor = None
    while True:
        page = changes_page(sources, synced, run, filters, changes.MAX_CHANGES, cursor)
        for row in page.rows:
            writer.writerow([csv_cell(row[name]) for name in changes.CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        cursor = page.next_cursor
        if cursor is None:
            return


def options(field_changes: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The entities and fields the run changed (the run page's per-field counts), offered
    in the filters."""
    return {
        "entities": sorted({str(f["entity"]) for f in field_changes if f.get("entity")}),
        "fields": sorted({str(f["field"]) for f in field_changes if f.get("field")}),
    }
