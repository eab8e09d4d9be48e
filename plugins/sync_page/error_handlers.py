"""How the sync page answers a failure: JSON for the API (and any caller that does not ask
for HTML), a page for a person.

A run the staging database does not hold is a "not found" page; a 401 page links to
Airflow's login; a parameter the page cannot use (``queries.BadRequest``) is a 400; a
database that cannot be read is a 503 that names only what failed (the statement and the
driver's message stay in the api-server's log, no connection detail reaches the browser).
"""

from __future__ import annotations

import logging

from airflow.api_fastapi.app import get_auth_manager
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from sync_page.change_routes import UnknownRun
from sync_page.queries.page import BadRequest
from sync_page.rendering import airflow_base, page, root_of, wants_json

log = logging.getLogger(__name__)


def add_error_handlers(app: FastAPI) -> None:
    """The app's answers to an HTTP error, a bad request and a database error."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if wants_json(request):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        if isinstance(exc, UnknownRun):
            return page(request, "not_found.html", 404, run_id=exc.run_id, detail=exc.detail)
        login = None
        if exc.status_code == 401:
            login = get_auth_manager().get_url_login()
            if login.startswith("/"):  # relative to Airflow's base URL, like every link here
                login = airflow_base(root_of(request)) + login.lstrip("/")
        response = page(
            request,
            "error.html",
            exc.status_code,
            code=exc.status_code,
            detail=exc.detail,
            login=login,
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return await http_error(request, HTTPException(400, str(exc)))

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError) -> Response:
        # The statement and driver message stay in the api-server's log; the answer says
        # only what failed (no connection details reach the browser).
        log.error("sync page: database error: %s", exc.__class__.__name__, exc_info=exc)
        detail = (
            f"The sync's database could not be read ({exc.__class__.__name__}): has the sync "
            "run yet, and are its connections set?"
        )
        return await http_error(request, HTTPException(503, detail))
