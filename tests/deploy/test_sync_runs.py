"""deploy/sync_runs.py: the data team reads why a run failed (``sync_run.failure``) through
the Airflow connection, without a password or a database client."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from picsweb_sync.storage import project_tables as pt
from tests.deploy.scripts import load

T0 = dt.datetime(2026, 3, 20, 2, 0, tzinfo=dt.UTC).replace(tzinfo=None)  # naive UTC


@pytest.fixture
def picsweb(tmp_path, monkeypatch) -> sa.Engine:
    path = tmp_path / "picsweb.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    monkeypatch.setenv(
        "AIRFLOW_CONN_PICSWEB_DB", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    yield engine
    engine.dispose()


def _runs(engine: sa.Engine) -> None:
    pt.ensure_project_tables(engine)
    with engine.begin() as conn:
        pt.start_run(conn, "scheduled__1", now=T0)
        pt.finish_run(conn, "scheduled__1", "success", now=T0 + dt.timedelta(minutes=5))
        pt.start_run(conn, "manual__2", now=T0 + dt.timedelta(days=1))
        failure = "push_reviews: OneFile answered HTTP 500\nload_reviews: lock wait timed out"
        pt.finish_run(conn, "manual__2", "failed", now=T0 + dt.timedelta(days=1), failure=failure)


def test_the_newest_runs_first_with_why_one_failed(picsweb, capsys):
    _runs(picsweb)
    assert load("sync_runs").main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("manual__2  failed  started 2026-03-21 02:00:00")
    assert out[1:3] == [
        "    push_reviews: OneFile answered HTTP 500",
        "    load_reviews: lock wait timed out",
    ]
    assert out[3].startswith("scheduled__1  success  started 2026-03-20 02:00:00")


def test_failed_only_and_one_run(picsweb, capsys):
    _runs(picsweb)
    assert load("sync_runs").main(["--failed"]) == 0
    assert "scheduled__1" not in capsys.readouterr().out
    assert load("sync_runs").main(["--run-id", "scheduled__1"]) == 0
    assert capsys.readouterr().out.startswith("scheduled__1  success")
    assert load("sync_runs").main(["--run-id", "nope"]) == 1
    assert capsys.readouterr().out.strip() == "no run recorded"


def test_before_any_run(picsweb, capsys):
    assert load("sync_runs").main([]) == 1
    assert "no run yet" in capsys.readouterr().out
