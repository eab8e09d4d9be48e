"""The run's note in the Airflow UI: a short summary where the team looks first (the grid).

The Task SDK cannot write a DAG run's note, so this goes through Airflow's REST API with the
``airflow_api`` connection (type http: host, port and schema give the api-server's base URL,
e.g. ``http://airflow-api:8080``; login and password are an Airflow user allowed to edit DAG
runs). It signs in with ``POST /auth/token`` (the simple auth manager and FAB both serve it)
and sets the note with ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}``.

Without that connection the note is not set, and the summary stays in the task's log, the
``sync_run_summary`` table and the sync page. A note is never worth a failed task: any
failure (server down, refused sign-in, no permission, timeout) is one warning naming what
answered what, never the password or the token, and ``publish`` returns ``False``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

AIRFLOW_API_CONN_ID = "airflow_api"
TIMEOUT_SECONDS = 10
# Airflow keeps at most this many characters of a note (``DAGRunPatchBody.note``).
MAX_NOTE_CHARS = 1000
SYNC_PAGE_PREFIX = "/onefile-sync"

_said_not_configured = False


def sync_page_path(run_id: str) -> str:
    """The run's page of the sync page plugin, relative to Airflow's ``[api] base_url``."""
    return f"{SYNC_PAGE_PREFIX}/runs/{quote(run_id, safe='')}"


def publish(dag_id: str, run_id: str, note: str) -> bool:
    """Set the run's note; ``True`` when it was set. Never raises: a note is not worth a
    failed task."""
    try:
        conn = _connection(AIRFLOW_API_CONN_ID)
    except Exception as exc:  # only "not found" is expected; anything else says so
        if type(exc).__name__ != "AirflowNotFoundException":
            log.warning(
                "run note not set: cannot read the %s connection (%s)",
                AIRFLOW_API_CONN_ID,
                type(exc).__name__,
            )
            return False
        _not_configured(run_id)
        return False
    try:
        return _publish(conn, dag_id, run_id, note)
    except Exception as exc:  # never raise: say what failed, never with the secrets
        log.warning(
            "run note not set for run %s: %s (%s)",
            run_id,
            type(exc).__name__,
            _safe_reason(exc, conn),
        )
        return False


def note_text(note: str) -> str:
    """``note`` cut to what Airflow keeps."""
    return note if len(note) <= MAX_NOTE_CHARS else note[: MAX_NOTE_CHARS - 1] + "…"


def base_url(conn: Any) -> str:
    """The api-server's base URL from an http connection: ``host`` may be a whole URL
    (``https://airflow.example.org/airflow``) or a host name with ``schema`` (http or
    https, default http) and ``port``."""
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        raise ValueError(f"the {AIRFLOW_API_CONN_ID} connection has no host")
    if "://" in host:
        scheme, rest = host.split("://", 1)
        netloc, slash, path = rest.partition("/")
        if conn.port and ":" not in netloc:
            netloc = f"{netloc}:{conn.port}"
        return f"{scheme}://{netloc}{slash}{path}".rstrip("/")
    scheme = (conn.schema or "http").strip() or "http"
    return f"{scheme}://{host}:{conn.port}" if conn.port else f"{scheme}://{host}"


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook  # lazy: picsweb_sync imports without Airflow

    return BaseHook.get_connection(conn_id)


def _not_configured(run_id: str) -> None:
    global _said_not_configured
    if _said_not_configured:
        return
    _said_not_configured = True
    log.info(
        "run note not set: there is no %s connection (an Airflow user allowed to edit DAG "
        "runs); the run's summary is in sync_run_summary and on the sync page %s",
        AIRFLOW_API_CONN_ID,
        sync_page_path(run_id),
    )


class NoteError(RuntimeError):
    """A step of setting the note answered something else than success."""


def _publish(conn: Any, dag_id: str, run_id: str, note: str) -> bool:
    import requests

    base = base_url(conn)
    with requests.Session() as session:
        signed_in = session.post(
            f"{base}/auth/token",
            json={"username": conn.login or "", "password": conn.password or ""},
            timeout=TIMEOUT_SECONDS,
        )
        if signed_in.status_code not in (200, 201):
            raise NoteError(
                f"POST {base}/auth/token as {conn.login!r} answered HTTP "
                f"{signed_in.status_code}{_hint(signed_in.status_code)}"
            )
        token = signed_in.json().get("access_token")
        if not token:
            raise NoteError(f"POST {base}/auth/token answered no access_token")
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        patched = session.patch(
            f"{base}{path}",
            params={"update_mask": "note"},
            json={"note": note_text(note)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_SECONDS,
        )
        if patched.status_code != 200:
            raise NoteError(
                f"PATCH {base}{path} as {conn.login!r} answered HTTP "
                f"{patched.status_code}{_hint(patched.status_code)}"
            )
    log.info("run note set for run %s", run_id)
    return True


def _hint(status: int) -> str:
    return {
        401: " (the login or password of the connection is wrong)",
        403: " (the connection's user may not edit DAG runs)",
        404: " (no such DAG run, or the URL is not the api-server's)",
    }.get(status, "")


def _safe_reason(exc: BaseException, conn: Any) -> str:
    """The error's text without the connection's password (requests' errors name URLs,
    never bodies; this is a second guard)."""
    text = str(exc)
    password = getattr(conn, "password", None)
    if password:
        text = text.replace(password, "***")
    return text[:500]
