"""The sync page plugin: Airflow mounts its FastAPI app at ``/onefile-sync`` (api-server
only) and links it from the UI navigation (``external_views``, shown inside the UI).

Every Airflow component imports this file: it imports nothing but ``AirflowPlugin``. The
app (FastAPI, Jinja2, the queries) is built the first time the api-server reads
``fastapi_apps``; no database is touched before the first request.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/onefile-sync"
URL_ROUTE = "onefile-sync"


class _LazyApps:
    """``fastapi_apps``, built on first access and then kept."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: Any, owner: type | None = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from sync_page.app import create_app

            self._apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "OneFile sync"}]
        return self._apps


class SyncPagePlugin(AirflowPlugin):
    name = "onefile_sync_page"
    fastapi_apps = _LazyApps()
    # Relative to Airflow's base URL (the UI's <base href>): works behind a proxy path.
    external_views = [
        {
            "name": "OneFile sync",
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": URL_ROUTE,
            "destination": "nav",
            # A button of its own in the navigation bar (not inside a menu).
            "nav_top_level": True,
        }
    ]
