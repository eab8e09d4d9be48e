"""The sync page: a FastAPI app the Airflow api-server mounts at ``/onefile-sync``.

Pages (server-rendered HTML) and a JSON API over the same queries (``sync_page.queries``):

====================================  ============================================
``./``                                run history (newest first, paged) and charts
``./runs/<url-quoted run_id>``        one run, with its changes row by row
                                      (``?direction=&entity=&field=&before=``)
``./runs/<run_id>/changes.csv``       all its changes as CSV (same filters, streamed)
``./runs/<run_id>/drift``             what still differs after it, row by row
                                      (``?reason=&entity=&field=&before=``)
``./runs/<run_id>/drift.csv``         all its differences as CSV (same filters, streamed)
``./audit?q=&by=``                    audit search for a learner or a review
``./api/runs?limit=&before=&type=``   run history page as JSON (keyset cursor)
``./api/runs/<run_id>``               one run as JSON
``./api/runs/<run_id>/changes``       its changes, a keyset page (``sync_page.changes``)
``./api/runs/<run_id>/drift``         its differences, a keyset page (``sync_page.drift_view``)
``./api/chart?days=``                 one point per run, for the charts
``./api/audit?q=&by=&limit=&before=`` audit search as JSON
``./static/<file>``                   plotly.min.js (from the plotly wheel), JS, CSS
====================================  ============================================

This module builds the app from its parts: the pages (``sync_page.page_routes``), the JSON
API (``sync_page.api_routes``), one run's changes (``sync_page.change_routes``) and what
still differs after it (``sync_page.drift_routes``), the answers to failures (``sync_page.error_handlers``), who may read (``sync_page.access``: every route
depends on its ``reader``) and where the data comes from (``sync_page.sources``: engines
made at the first request, never at import). Every link inside the pages is relative
(``sync_page.rendering``), so the page works behind a reverse proxy that serves Airflow
under a path of its own.
"""

from __future__ import annotations

from fastapi import FastAPI

from sync_page import change_routes, drift_routes
from sync_page.access import reader
from sync_page.api_routes import add_api_routes
from sync_page.error_handlers import add_error_handlers
from sync_page.page_routes import add_page_routes
from sync_page.rendering import environment, json_response
from sync_page.sources import Sources, synced

URL_PREFIX = "/onefile-sync"


def create_app(sources: Sources | None = None) -> FastAPI:
    """The sync page's app; ``sources`` defaults to the Airflow connections (at first use)."""
    app = FastAPI(
        title="OneFile sync",
        description="Run history, run details and audit search of the OneFile-PICSWeb sync.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sources = sources or Sources.from_airflow()
    app.state.templates = environment()
    add_error_handlers(app)
    # First: the ``{run_id:path}`` routes of the API and the pages would take the sub-path
    # of a run's changes (and drift) as part of the run id.
    change_routes.add_routes(app, reader, json_response, synced)
    drift_routes.add_routes(app, reader, json_response, synced)
    add_api_routes(app)
    add_page_routes(app)
    return app
