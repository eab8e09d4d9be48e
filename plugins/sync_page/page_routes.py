"""The sync page's HTML pages and static files.

``./`` (the run history, newest first, paged, and its charts), ``./runs/<run_id>`` (one
run, with what still differs after it (``sync_page.drift_routes``) and its changes row by
row: ``?direction=&entity=&field=&before=``), ``./audit?q=&by=``
(the audit search) and ``./static/<file>`` (plotly.min.js from the plotly wheel, the page's
JS and CSS). Every route depends on :func:`~sync_page.access.reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.engine import Engine

from sync_page import change_routes, changes, drift_routes
from sync_page.access import Reader
from sync_page.change_routes import UnknownRun
from sync_page.queries.audit import SEARCH_KINDS
from sync_page.queries.history import RUN_TYPES, run_history
from sync_page.queries.one_run import run_detail
from sync_page.queries.page import DIRECTIONS, Page
from sync_page.rendering import HERE, page
from sync_page.sources import read_audit, synced


def _plotly_js() -> Path:
    import plotly  # only its file: never imported at the api-server's start

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


STATIC: dict[str, Callable[[], Path]] = {
    "plotly.min.js": _plotly_js,
    "sync_page.js": lambda: HERE / "static" / "sync_page.js",
    "sync_page.css": lambda: HERE / "static" / "sync_page.css",
}


def add_page_routes(app: FastAPI) -> None:
    """The HTML and static routes, reading from ``app.state.sources``."""

    def staging() -> Engine:
        return app.state.sources.staging()

    no_runs = Page([], None)

    @app.get("/", response_class=HTMLResponse)
    def history_page(
        request: Request,
        _: Reader,
        before: str | None = None,
        type: str | None = None,  # noqa: A002
        outcome: str | None = None,
    ) -> Response:
        with staging().connect() as conn:
            ran = synced(conn)
            runs = (
                run_history(conn, None, before, type or None, outcome or None) if ran else no_runs
            )
        return page(
            request,
            "history.html",
            root="./",
            runs=runs.rows,
            next_cursor=runs.next_cursor,
            filters={"type": type or "", "outcome": outcome or ""},
            first_page=before is None,
            synced=ran,
            run_types=("dry_run", *RUN_TYPES),
        )

    @app.get("/runs/{run_id:path}", response_class=HTMLResponse)
    def run_page(
        request: Request,
        _: Reader,
        run_id: str,
        direction: str | None = None,
        entity: str | None = None,
        field: str | None = None,
        before: str | None = None,
    ) -> Response:
        filters = changes.Filters.of(direction, entity, field)
        with staging().connect() as conn:
            detail = run_detail(conn, run_id) if synced(conn) else None
            drift = drift_routes.summary_of(conn, synced, detail["run"]) if detail else None
        if detail is None:
            raise UnknownRun(run_id)
        found = change_routes.changes_page(
            app.state.sources, synced, detail["run"], filters, None, before
        )
        return page(
            request,
            "run.html",
            root="../",
            **detail,
            drift=drift,
            changes=found,
            change_filters=filters.params(),
            change_first_page=before is None,
            change_options=change_routes.options(detail.get("field_changes") or []),
            directions=DIRECTIONS,
        )

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(
        request: Request,
        _: Reader,
        q: str = "",
        by: str = "auto",
        before: str | None = None,
    ) -> Response:
        found = read_audit(app.state.sources, q, by, None, before) if q.strip() else None
        return page(request, "audit.html", root="./", q=q, by=by, page=found, kinds=SEARCH_KINDS)

    @app.get("/static/{name}")
    def static(_: Reader, name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "Not found")
        media = "text/css" if name.endswith(".css") else "text/javascript"
        return FileResponse(
            STATIC[name](),
            media_type=media,
            headers={"Cache-Control": "private, max-age=3600"},
        )
