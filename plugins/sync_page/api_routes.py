"""The sync page's JSON API: the run history, the chart's points, one run, the audit search.

``./api/runs?limit=&before=&type=`` (a keyset page), ``./api/chart?days=``,
``./api/runs/<run_id>`` (with its drift counts, ``sync_page.drift_view``) and ``./api/audit?q=&by=&limit=&before=``; one run's changes
(``./api/runs/<run_id>/changes``) are ``sync_page.change_routes``', its differences row by
row (``./api/runs/<run_id>/drift``) ``sync_page.drift_routes``'. Every route depends on
:func:`~sync_page.access.reader`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from sync_page import drift_routes
from sync_page.access import Reader
from sync_page.queries.history import chart_points, run_history
from sync_page.queries.one_run import run_detail
from sync_page.queries.page import Page
from sync_page.rendering import json_response
from sync_page.sources import read_audit, synced


def add_api_routes(app: FastAPI) -> None:
    """The JSON routes, reading from ``app.state.sources``."""

    def staging() -> Engine:
        return app.state.sources.staging()

    no_runs = Page([], None)

    @app.get("/api/runs")
    def api_runs(
        _: Reader,
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: str | None = None,
        type: str | None = None,  # noqa: A002 - the documented parameter name
        outcome: str | None = None,
    ) -> Response:
        with staging().connect() as conn:
            page = run_history(conn, limit, before, type, outcome) if synced(conn) else no_runs
        return json_response({"runs": page.rows, "next": page.next_cursor})

    @app.get("/api/chart")
    def api_chart(_: Reader, days: Annotated[int, Query(ge=1, le=3660)] = 365) -> Response:
        with staging().connect() as conn:
            return json_response({"points": chart_points(conn, days) if synced(conn) else []})

    @app.get("/api/runs/{run_id:path}")
    def api_run(_: Reader, run_id: str) -> Response:
        with staging().connect() as conn:
            detail = run_detail(conn, run_id) if synced(conn) else None
            if detail is not None:
                detail["drift"] = drift_routes.summary_of(conn, synced, detail["run"])
        if detail is None:
            raise HTTPException(404, f"no sync run {run_id!r}")
        return json_response(detail)

    @app.get("/api/audit")
    def api_audit(
        _: Reader,
        q: str,
        by: str = "auto",
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: str | None = None,
    ) -> Response:
        page = read_audit(app.state.sources, q, by, limit, before)
        return json_response({"changes": page.rows, "next": page.next_cursor, **page.extra})
