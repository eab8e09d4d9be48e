"""What the tests here send to SQL Server, compiled for it without one (tests/data's
test_mssql_compile.py does the same for the data layer's calls one by one): a whole run of
the DAG on a SQLite PICSWeb, every statement it sends to PICSWeb captured and compiled with
the mssql dialect, the text checked for constructs T-SQL lacks."""

from __future__ import annotations

from datetime import UTC, datetime, time

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.sql import ClauseElement

from onefile_simulator import OneFileSimulator, generate_dataset
from sync_demo.dag_runs import connection_env, run_dag
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.data.test_mssql_compile import NOT_TSQL, tsql
from tests.e2e.conftest import FAST_HOOK


def test_every_statement_of_a_dag_run_compiles_as_tsql(airflow_db, tmp_path, monkeypatch):
    dataset = generate_dataset(seed=11, organisations=2, learners=4)
    path = tmp_path / "picsweb.sqlite"
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, dataset.picsweb)
    engine.dispose()
    captured: list[ClauseElement] = []

    def capture(conn, clauseelement, multiparams, params, execution_options):
        if conn.engine.url.database == str(path) and isinstance(clauseelement, ClauseElement):
            captured.append(clauseelement)

    event.listen(sa.Engine, "before_execute", capture)
    try:
        with OneFileSimulator(dataset.onefile) as sim:
            env = connection_env(sim.base_url, sim.customer_token, url, FAST_HOOK)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            run = run_dag(logical_date=datetime.combine(dataset.today, time(2), tzinfo=UTC))
    finally:
        event.remove(sa.Engine, "before_execute", capture)
    assert str(run.state) == "success"
    kinds = {type(stmt).__name__ for stmt in captured}
    assert {"CreateTable", "Insert", "Update", "Delete", "Select"} <= kinds, kinds
    for stmt in captured:
        sql = tsql(stmt)
        offending = [token for token in NOT_TSQL if token in sql.upper()]
        assert not offending, (offending, sql)
