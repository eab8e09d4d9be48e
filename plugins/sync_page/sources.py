"""Where the sync page reads from: the engines of its two databases, made on first use
(never at import), and whether the sync has created its tables there yet.

Data: the ``sync_*`` tables of the staging database (``[onefile_sync] staging_conn_id``)
and PICSWeb's learners (``[onefile_sync] picsweb_conn_id``), both ``picsweb_db`` by default
as in the DAG. The audit search reads ``sync_audit`` in each database that holds it
(:func:`read_audit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from sync_page.queries.audit import audit_search
from sync_page.queries.page import Page

DEFAULT_DAG_ID = "onefile_picsweb_sync"
DEFAULT_CONN_ID = "picsweb_db"
CONFIG_SECTION = "onefile_sync"


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


def read_audit(sources: Sources, q: str, by: str, limit: int | None, before: str | None) -> Page:
    """One page of the audit search (:func:`~sync_page.queries.audit.audit_search`) over every database of
    ``sources`` that holds ``sync_audit`` yet."""
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
            return audit_search(pconn, audit_conns, q, by, limit, before)
        finally:
            for conn in audit_conns:
                if conn is not pconn:
                    conn.close()
