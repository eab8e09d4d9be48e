"""How the sync page answers: HTML pages from its Jinja2 templates, and JSON.

Every link inside the pages is relative (:func:`root_of` is the way from a page to the app's
root, :func:`airflow_base` to Airflow's), so the page works behind a reverse proxy that
serves Airflow under a path of its own. No answer is cached by the browser but the static
files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sync_page.queries.history import SUMMARY_COUNTS

HERE = Path(__file__).parent


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


def environment() -> Environment:
    """The templates' Jinja2 environment, with the filters and globals they use."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _quote
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.globals["summary_counts"] = SUMMARY_COUNTS
    env.globals["urlencode"] = lambda params: urlencode({k: v for k, v in params.items() if v})
    return env


def root_of(request: Request) -> str:
    """The relative path from the request's page to the app's root (``./`` or ``../``...)."""
    path = request.scope.get("path", "/")
    mounted = request.scope.get("root_path", "")
    if mounted and path.startswith(mounted):
        path = path[len(mounted) :]
    depth = max(path.count("/") - 1, 0)
    return "../" * depth or "./"


def airflow_base(root: str) -> str:
    """Airflow's base URL, relative to a page whose way to the app's root is ``root``."""
    return "../" if root == "./" else root + "../"


def page(
    request: Request, template: str, status: int = 200, root: str | None = None, **context: Any
) -> HTMLResponse:
    """``template`` rendered with ``context``, its relative links, and the DAG's id."""
    root = root or root_of(request)
    env: Environment = request.app.state.templates
    html = env.get_template(template).render(
        root=root,
        airflow=airflow_base(root),
        dag_id=request.app.state.sources.dag_id,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def json_response(data: Any, status: int = 200) -> JSONResponse:
    """``data`` as JSON (datetimes and dataclasses encoded the FastAPI way)."""
    return JSONResponse(
        jsonable_encoder(data), status_code=status, headers={"Cache-Control": "no-store"}
    )


def wants_json(request: Request) -> bool:
    """Whether a failure is answered as JSON: an API route, or a caller not asking for HTML."""
    path = request.scope.get("path", "")
    return "/api/" in path or "text/html" not in request.headers.get("accept", "")


def csv_download(lines: Iterable[str], kind: str, run_id: str) -> StreamingResponse:
    """A run's rows as a streamed CSV attachment named ``<kind>-<run id>.csv`` (the run id
    kept to safe file-name characters), never cached."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{kind}-{name}.csv"',
            "Cache-Control": "no-store",
        },
    )
