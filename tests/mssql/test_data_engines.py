"""tests/data/test_engines.py on SQL Server, and the connection form docs/deployment.md gives
for PICSWeb: an Airflow ``mssql://`` URI (the MSSQL provider's type) reaches it by pymssql."""

from __future__ import annotations

from sqlalchemy import make_url, text

from picsweb_sync.storage.engines import engine_for_connection
from tests.data.test_engines import (  # noqa: F401
    test_load_refuses_tables_outside_the_contract,
    test_loaded_picsweb_rows_read_back_exactly,
)


def test_engine_for_an_mssql_airflow_connection(mssql_url, monkeypatch):
    url = make_url(mssql_url)
    uri = url.set(drivername="mssql").render_as_string(hide_password=False)
    monkeypatch.setenv("AIRFLOW_CONN_PICSWEB_MSSQL", uri)
    engine = engine_for_connection("picsweb_mssql")
    try:
        assert engine.url.drivername == "mssql+pymssql"
        assert engine.url.database == url.database
        with engine.connect() as conn:
            assert conn.execute(text("SELECT DB_NAME()")).scalar_one() == url.database
    finally:
        engine.dispose()
