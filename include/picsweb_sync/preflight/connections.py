"""The Airflow connections the DAG uses, read without a scheduler, and engines from them.

The command runs where no task runs (a deployment pipeline, a shell in a container), so it
looks connections up the api-server's way, :meth:`airflow.models.Connection
.get_connection_from_secrets`: ``AIRFLOW_CONN_*`` variables, the configured secrets backend,
then the metadata database of ``AIRFLOW_HOME``. The Task SDK's lookup, meant for tasks,
reads no metadata database outside one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, Engine

from picsweb_sync.storage.engines import engine_for_url, url_for_connection

Lookup = Callable[[str], Any]


class ConnectionProblem(Exception):
    """A connection that cannot be read or used at all (missing, unsupported type): the
    preflight cannot run (exit code 2)."""


def airflow_lookup() -> Lookup:
    from airflow.models.connection import Connection

    return Connection.get_connection_from_secrets


def get(lookup: Lookup, conn_id: str, role: str) -> Any:
    """The connection ``conn_id``, or :class:`ConnectionProblem` naming it and its role."""
    try:
        return lookup(conn_id)
    except Exception as exc:  # AirflowNotFoundException, a metadata DB that cannot be read
        raise ConnectionProblem(
            f"the {role} connection {conn_id!r} cannot be read ({type(exc).__name__}: "
            f"{_first_line(exc)}): define it as AIRFLOW_CONN_{conn_id.upper()} or in Airflow "
            "(UI, `airflow connections add`), as for the DAG"
        ) from None


@dataclass(frozen=True)
class Database:
    """A database connection: its id, URL (password inside, never shown) and a description
    fit to print."""

    conn_id: str
    url: URL
    password: str | None

    @property
    def description(self) -> str:
        url = self.url
        if url.get_backend_name() == "sqlite":
            return f"connection {self.conn_id!r}: sqlite file {url.database}"
        where = url.host or "localhost"
        if url.port:
            where += f":{url.port}"
        login = f" as {url.username}" if url.username else ""
        return (
            f"connection {self.conn_id!r}: {url.get_backend_name()} database "
            f"{url.database or '(default)'} on {where}{login}"
        )

    def engine(self) -> Engine:
        return engine_for_url(self.url)


def database(lookup: Lookup, conn_id: str, role: str) -> Database:
    conn = get(lookup, conn_id, role)
    try:
        url = url_for_connection(
            conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema
        )
    except ValueError as exc:
        raise ConnectionProblem(f"the {role} connection {conn_id!r}: {exc}") from None
    return Database(conn_id, url, conn.password)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
