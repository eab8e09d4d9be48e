"""The sync page: a FastAPI app the Airflow api-server mounts at ``/onefile-sync``.

Pages (server-rendered HTML) and a JSON API over the same queries (``sync_page.queries``):

====================================  ============================================
``./``                                run history (newest first, paged) and charts
``./runs/<url-quoted run_id>``        one run, with its changes row by row
                                      (``?direction=&entity=&field=&before=``)
``./runs/<run_id>/changes.csv``       all its changes as CSV (same filters, streamed)
``./audit?q=&by=``                    audit search for a learner or a review
``./api/runs?limit=&before=&type=``   run history page as JSON (keyset cursor)
``./api/runs/<run_id>``               one run as JSON
``./api/runs/<run_id>/changes``       its changes, a keyset page (``sync_page.changes``)
``./api/chart?days=``                 one point per run, for the charts
``./api/audit?q=&by=&limit=&before=`` audit search as JSON
``./static/<file>``                   plotly.min.js (from the plotly wheel), JS, CSS
====================================  ============================================

Every link inside the pages is relative, so the page works behind a reverse proxy that
serves Airflow under a path of its own.

Access: Airflow does not guard the apps plugins mount, so every route here depends on
:func:`reader`: the caller must be authenticated by Airflow's auth manager (the UI's JWT
cookie, or ``Authorization: Bearer <token>`` from ``POST /auth/token``) and allowed to
read the sync DAG's runs (``is_authorized_dag(GET, RUN)``). A missing, malformed, expired
or revoked token is answered 401, a user the auth manager denies 403; neither gets data.

Data: the ``sync_*`` tables of the staging database (``[onefile_sync] staging_conn_id``)
and PICSWeb's learners (``[onefile_sync] picsweb_conn_id``), both ``picsweb_db`` by default
as in the DAG; engines are made at the first request, never at import.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from sync_page import change_routes, changes, queries
from sync_page.change_routes import UnknownRun

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
URL_PREFIX = "/onefile-sync"
DEFAULT_DAG_ID = "onefile_picsweb_sync"
DEFAULT_CONN_ID = "picsweb_db"
CONFIG_SECTION = "onefile_sync"


def _plotly_js() -> Path:
    import plotly  # only its file: never imported at the api-server's start

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


STATIC: dict[str, Callable[[], Path]] = {
    "plotly.min.js": _plotly_js,
    "sync_page.js": lambda: HERE / "static" / "sync_page.js",
    "sync_page.css": lambda: HERE / "static" / "sync_page.css",
}


# ----- configuration and data sources ---------------------------------------------------------
def _config(key: str, fallback: str) -> str:
    from airflow.configuration import conf

    return conf.get(CONFIG_SECTION, key, fallback=fallback) or fallback


def engine_for_airflow_connection(conn_id: str) -> Engine:
    """The engine of an Airflow connection, looked up the api-server's way
    (``airflow.models.Connection``: secrets backends, environment, metadata DB), not the
    Task SDK's, which is meant for tasks."""
    from airflow.models.connection import Connection

    from picsweb_sync.storage.engines import engine_for_connection

    return engine_for_connection(conn_id, Connection.get_connection_from_secrets)


@dataclass
class Sources:
    """Where the page reads from: engines made on first use (never at import).

    ``picsweb``/``staging`` give the engine of each database; by default the Airflow
    connections of ``[onefile_sync] picsweb_conn_id`` and ``staging_conn_id``.
    """

    picsweb: Callable[[], Engine]
    staging: Callable[[], Engine]
    dag_id: str = DEFAULT_DAG_ID

    @classmethod
    def from_airflow(cls) -> Sources:
        def engine(key: str) -> Callable[[], Engine]:
            def make() -> Engine:
                return engine_for_airflow_connection(_config(key, DEFAULT_CONN_ID))

            return make

        return cls(
            picsweb=engine("picsweb_conn_id"),
            staging=engine("staging_conn_id"),
            dag_id=_config("dag_id", DEFAULT_DAG_ID),
        )

    def audit_engines(self) -> list[Engine]:
        """The databases holding ``sync_audit``: PICSWeb's (its own writes) and staging's
        (OneFile writes), once when they are the same database."""
        picsweb, staging = self.picsweb(), self.staging()
        same = picsweb is staging or picsweb.url == staging.url
        return [picsweb] if same else [picsweb, staging]


# ----- before the first run -------------------------------------------------------------------
_SYNCED: set[str] = set()
SYNC_TABLES = ("sync_run", "sync_run_summary", "sync_audit")


def synced(conn: Connection, tables: tuple[str, ...] = SYNC_TABLES) -> bool:
    """Whether the sync's ``tables`` exist in this database (the first run creates them):
    until then the page shows no runs instead of an error. Remembered once true."""
    key = f"{conn.engine.url.render_as_string(hide_password=True)} {tables}"
    if key in _SYNCED:
        return True
    inspector = inspect(conn)
    if all(inspector.has_table(name) for name in tables):
        _SYNCED.add(key)
        return True
    return False


# ----- access ---------------------------------------------------------------------------------
class NotAuthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})


async def reader(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Any:
    """The Airflow user of the request, if Airflow's auth manager lets them read the sync
    DAG's runs: 401 without a valid credential, 403 when denied."""
    try:
        user = await get_user(request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException as exc:
        # Airflow answers a malformed, badly signed or revoked token with 403; for this
        # page every failed authentication is a 401 (log in again), 403 means "denied".
        if exc.status_code in (401, 403):
            raise NotAuthenticated() from None
        raise
    sources: Sources = request.app.state.sources
    allowed = get_auth_manager().is_authorized_dag(
        method="GET",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=sources.dag_id),
        user=user,
    )
    if not allowed:
        raise HTTPException(403, f"Not allowed to read the runs of DAG {sources.dag_id}")
    return user


Reader = Annotated[Any, Depends(reader)]


# ----- rendering ------------------------------------------------------------------------------
def _quote(value: Any) -> str:
    return quote(str(value), safe="")


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _quote
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.globals["summary_counts"] = queries.SUMMARY_COUNTS
    env.globals["urlencode"] = lambda params: urlencode({k: v for k, v in params.items() if v})
    return env


def _root(request: Request) -> str:
    """The relative path from the request's page to the app's root (``./`` or ``../``...)."""
    path = request.scope.get("path", "/")
    mounted = request.scope.get("root_path", "")
    if mounted and path.startswith(mounted):
        path = path[len(mounted) :]
    depth = max(path.count("/") - 1, 0)
    return "../" * depth or "./"


def _airflow_base(root: str) -> str:
    """Airflow's base URL, relative to a page whose way to the app's root is ``root``."""
    return "../" if root == "./" else root + "../"


def _page(
    request: Request, template: str, status: int = 200, root: str | None = None, **context: Any
) -> HTMLResponse:
    root = root or _root(request)
    env: Environment = request.app.state.templates
    html = env.get_template(template).render(
        root=root,
        airflow=_airflow_base(root),
        dag_id=request.app.state.sources.dag_id,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(data), status_code=status, headers={"Cache-Control": "no-store"}
    )


def _wants_json(request: Request) -> bool:
    path = request.scope.get("path", "")
    return "/api/" in path or "text/html" not in request.headers.get("accept", "")


# ----- the app --------------------------------------------------------------------------------
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
    app.state.templates = _environment()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        if isinstance(exc, UnknownRun):
            return _page(request, "not_found.html", 404, run_id=exc.run_id, detail=exc.detail)
        login = None
        if exc.status_code == 401:
            login = get_auth_manager().get_url_login()
            if login.startswith("/"):  # relative to Airflow's base URL, like every link here
                login = _airflow_base(_root(request)) + login.lstrip("/")
        response = _page(
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

    @app.exception_handler(queries.BadRequest)
    async def bad_request(request: Request, exc: queries.BadRequest) -> Response:
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

    def staging() -> Engine:
        return app.state.sources.staging()

    no_runs = queries.Page([], None)

    # ----- JSON API ----------------------------------------------------------------------
    @app.get("/api/runs")
    def api_runs(
        _: Reader,
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: str | None = None,
        type: str | None = None,  # noqa: A002 - the documented parameter name
        outcome: str | None = None,
    ) -> Response:
        with staging().connect() as conn:
            page = (
                queries.run_history(conn, limit, before, type, outcome) if synced(conn) else no_runs
            )
        return _json({"runs": page.rows, "next": page.next_cursor})

    @app.get("/api/chart")
    def api_chart(_: Reader, days: Annotated[int, Query(ge=1, le=3660)] = 365) -> Response:
        with staging().connect() as conn:
            return _json({"points": queries.chart_points(conn, days) if synced(conn) else []})

    # Before /api/runs/{run_id:path} and /runs/{run_id:path}, which would take the
    # sub-path as part of the run id.
    change_routes.add_routes(app, reader, _json, synced)

    @app.get("/api/runs/{run_id:path}")
    def api_run(_: Reader, run_id: str) -> Response:
        with staging().connect() as conn:
            detail = queries.run_detail(conn, run_id) if synced(conn) else None
        if detail is None:
            raise HTTPException(404, f"no sync run {run_id!r}")
        return _json(detail)

    @app.get("/api/audit")
    def api_audit(
        _: Reader,
        q: str,
        by: str = "auto",
        limit: Annotated[int | None, Query(ge=1)] = None,
        before: str | None = None,
    ) -> Response:
        page = _audit(app.state.sources, q, by, limit, before)
        return _json({"changes": page.rows, "next": page.next_cursor, **page.extra})

    # ----- pages -------------------------------------------------------------------------
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
            page = (
                queries.run_history(conn, None, before, type or None, outcome or None)
                if ran
                else no_runs
            )
        return _page(
            request,
            "history.html",
            root="./",
            runs=page.rows,
            next_cursor=page.next_cursor,
            filters={"type": type or "", "outcome": outcome or ""},
            first_page=before is None,
            synced=ran,
            run_types=("dry_run", *queries.RUN_TYPES),
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
            detail = queries.run_detail(conn, run_id) if synced(conn) else None
        if detail is None:
            raise UnknownRun(run_id)
        page = change_routes.changes_page(
            app.state.sources, synced, detail["run"], filters, None, before
        )
        return _page(
            request,
            "run.html",
            root="../",
            **detail,
            changes=page,
            change_filters=filters.params(),
            change_first_page=before is None,
            change_options=change_routes.options(detail.get("field_changes") or []),
            directions=queries.DIRECTIONS,
        )

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(
        request: Request,
        _: Reader,
        q: str = "",
        by: str = "auto",
        before: str | None = None,
    ) -> Response:
        page = _audit(app.state.sources, q, by, None, before) if q.strip() else None
        return _page(
            request, "audit.html", root="./", q=q, by=by, page=page, kinds=queries.SEARCH_KINDS
        )

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

    return app


def _audit(sources: Sources, q: str, by: str, limit: int | None, before: str | None):
    picsweb = sources.picsweb()
    with picsweb.connect() as pconn:
        audit_conns = []
        try:
            for engine in sources.audit_engines():
                conn = pconn if engine is picsweb else engine.connect()
                if synced(conn, ("sync_audit",)):
                    audit_conns.append(conn)
                elif conn is not pconn:
                    conn.close()
            return queries.audit_search(pconn, audit_conns, q, by, limit, before)
        finally:
            for conn in audit_conns:
                if conn is not pconn:
                    conn.close()
