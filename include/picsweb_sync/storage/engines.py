"""Engines from Airflow connections and URLs: the one place that knows drivers.

The same tasks run on SQL Server (production, ``mssql+pymssql``), PostgreSQL (tests) and
SQLite (the demo): the code only ever sees a SQLAlchemy engine, whatever connection type
it was built from, and issues statements that compile on all three (see
tests/data/test_mssql_compile.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL

__all__ = ["engine_for_connection", "engine_for_url", "url_for_connection"]

# Airflow connection type -> SQLAlchemy driver.
_DRIVERS = {"mssql": "mssql+pymssql", "postgres": "postgresql+psycopg2", "sqlite": "sqlite"}


def url_for_connection(
    conn_type: str,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
) -> URL:
    """The SQLAlchemy URL of an Airflow database connection.

    For ``sqlite`` the file path is the connection's host (``sqlite:////abs/path`` as an
    ``AIRFLOW_CONN_*`` URI puts it in the schema, so either is accepted).
    """
    if conn_type not in _DRIVERS:
        raise ValueError(
            f"unsupported connection type {conn_type!r}; expected one of {list(_DRIVERS)}"
        )
    if conn_type == "sqlite":
        return URL.create("sqlite", database=host or schema)
    return URL.create(
        _DRIVERS[conn_type],
        username=login or None,
        password=password or None,
        host=host or None,
        port=port or None,
        database=schema or None,
    )


def engine_for_connection(
    conn_id: str, get_connection: Callable[[str], Any] | None = None
) -> Engine:
    """The engine of an Airflow connection: ``mssql``, ``postgres`` or ``sqlite``.

    Tasks look the connection up the Task SDK's way (the default); the api-server (the sync
    page plugin) passes its own lookup, ``airflow.models.Connection.get_connection_from_secrets``.
    Engines are cached by URL, not by connection id, so an edited connection (or a test
    pointing the same id at a fresh database) gets a new engine instead of a stale one.
    """
    if get_connection is None:
        from airflow.sdk import BaseHook  # lazy: picsweb_sync imports without Airflow

        get_connection = BaseHook.get_connection
    conn = get_connection(conn_id)
    url = url_for_connection(
        conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema
    )
    return _engine_for(url)


@functools.cache
def _engine_for(url: URL) -> Engine:
    return engine_for_url(url)


def engine_for_url(url: str | URL) -> Engine:
    """An engine with the options the sync needs on each dialect.

    SQLite waits for a lock instead of failing at once, since parallel tasks of the demo
    write to the same file; pooled connections are checked before use.
    """
    url = make_url(url)
    connect_args = {"timeout": 60} if url.get_backend_name() == "sqlite" else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
