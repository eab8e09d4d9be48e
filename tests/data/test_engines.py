"""Engines from Airflow connections, whatever their type, and the demo/test PICSWeb loader."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from picsweb_sync.storage.engines import engine_for_connection, url_for_connection
from picsweb_sync.storage.picsweb_tables import metadata
from picsweb_sync.storage.sqlframes import read_frame
from sync_demo.picsweb_db import load_picsweb_rows

from .conftest import picsweb_rows


@pytest.mark.parametrize(
    ("conn_type", "host", "port", "schema", "expected"),
    [
        ("mssql", "sql01", 1433, "PICS", "mssql+pymssql://sync:***@sql01:1433/PICS"),
        (
            "postgres",
            "127.0.0.1",
            5432,
            "pics",
            "postgresql+psycopg2://sync:***@127.0.0.1:5432/pics",
        ),
        ("sqlite", "/data/picsweb.sqlite", None, None, "sqlite:////data/picsweb.sqlite"),
        ("sqlite", "", None, "/data/picsweb.sqlite", "sqlite:////data/picsweb.sqlite"),
    ],
    ids=["mssql", "postgres", "sqlite-host", "sqlite-uri-path"],
)
def test_connection_types_map_to_drivers_without_showing_the_password(
    conn_type, host, port, schema, expected
):
    login, password = ("sync", "s3cret-pw") if conn_type != "sqlite" else (None, None)
    url = url_for_connection(conn_type, host, port, login, password, schema)
    assert str(url) == expected
    assert url.password == password


def test_unsupported_connection_types_are_refused():
    with pytest.raises(ValueError, match="'mysql'") as raised:
        url_for_connection("mysql", "h", 3306, "u", "s3cret-pw", "db")
    assert "s3cret-pw" not in str(raised.value)


def _airflow_uri(sqlalchemy_url: str) -> str:
    """The ``AIRFLOW_CONN_*`` URI form of a test database URL."""
    url = make_url(sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{url.database}"
    return f"postgresql://{url.username}@{url.host}:{url.port}/{url.database}"


def test_engine_for_connection_reads_airflow_connections(db_url, monkeypatch, request):
    conn_id = f"picsweb_{request.node.callspec.id}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", _airflow_uri(db_url))
    engine = engine_for_connection(conn_id)
    try:
        assert engine_for_connection(conn_id) is engine  # cached while the connection is unchanged
        assert engine.url.get_backend_name() == make_url(db_url).get_backend_name()
        assert engine.url.database == make_url(db_url).database
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_engine_follows_a_changed_connection(tmp_path, monkeypatch):
    """Same connection id, new target: a new engine, never the stale cached one."""
    monkeypatch.setenv("AIRFLOW_CONN_PICSWEB_MOVING", f"sqlite:///{tmp_path / 'a.sqlite'}")
    first = engine_for_connection("picsweb_moving")
    monkeypatch.setenv("AIRFLOW_CONN_PICSWEB_MOVING", f"sqlite:///{tmp_path / 'b.sqlite'}")
    second = engine_for_connection("picsweb_moving")
    assert first is not second
    assert (first.url.database, second.url.database) == (
        str(tmp_path / "a.sqlite"),
        str(tmp_path / "b.sqlite"),
    )


def test_loaded_picsweb_rows_read_back_exactly(engine):
    """The ``engine`` fixture loaded :func:`picsweb_rows` (unicode names, a 200-char title)."""
    rows = picsweb_rows()
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            stored = read_frame(conn, select(table).order_by(*table.primary_key.columns))
            expected = pd.DataFrame(rows[table.name], columns=list(table.c.keys()))
            assert stored.astype(object).where(stored.notna(), None).values.tolist() == (
                expected.astype(object).where(expected.notna(), None).values.tolist()
            ), table.name


def test_load_refuses_tables_outside_the_contract(empty_engine):
    with pytest.raises(ValueError, match="learner"):
        load_picsweb_rows(empty_engine, {"learner": [{"id": 1}]})
