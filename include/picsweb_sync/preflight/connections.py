"""The Airflow connections the DAG uses, read without a scheduler, and engines from them.

The command runs where no task runs (a deployment pipeline, a shell in a container), so it
looks connections up the api-server's way, :meth:`airflow.models.Connection
.get_connection_from_secrets`: ``AIRFLOW_CONN_*`` variables, the configured secrets backend,
then the metadata database of ``AIRFLOW_HOME``. The Task SDK's lookup, meant for tasks,
reads no metadata database outside one.
"""

from __future__ import annotations

import argparse
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


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The DAG's connection Params as options, for every read-only command (the preflight,
    ``make drift``): the same names and defaults as the DAG."""
    parser.add_argument(
        "--onefile-conn-id", default="onefile_api", help="the DAG's onefile_conn_id Param"
    )
    parser.add_argument(
        "--picsweb-conn-id", default="picsweb_db", help="the DAG's picsweb_conn_id Param"
    )
    parser.add_argument(
        "--staging-conn-id",
        default=None,
        help="the DAG's staging_conn_id Param (default: the PICSWeb connection)",
    )


def databases(lookup: Lookup, args: argparse.Namespace) -> tuple[Database, Database]:
    """(PICSWeb, staging) from the options of :func:`add_connection_arguments`; staging is
    the PICSWeb database itself unless another connection is named."""
    staging_id = args.staging_conn_id or args.picsweb_conn_id
    picsweb = database(lookup, args.picsweb_conn_id, "PICSWeb")
    if staging_id == args.picsweb_conn_id:
        return picsweb, picsweb
    return picsweb, database(lookup, staging_id, "staging")
