"""Every statement the data layer issues, compiled for SQL Server (production's dialect).

No SQL Server runs here, so T-SQL mistakes are caught by compiling: a whole workload runs
on SQLite while every statement is captured, then each one is compiled with SQLAlchemy's
``mssql`` dialect, and the text is checked for constructs T-SQL lacks.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import event
from sqlalchemy.dialects import mssql
from sqlalchemy.exc import CompileError
from sqlalchemy.schema import CreateIndex, CreateTable, DDLElement
from sqlalchemy.sql import ClauseElement

from picsweb_sync.run import freshness
from picsweb_sync.run.settings import mark_synchronised, read_settings
from picsweb_sync.storage import engines, picsweb_tables, picsweb_writes
from picsweb_sync.storage import project_tables as pt
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

from .conftest import picsweb_rows
from .test_project_tables import CHANGE_SET_SAMPLES, learners, rejects


def _sql_server_2019() -> mssql.base.MSDialect:
    """The dialect as it sets itself up on connecting to a modern server (DATE, TIME and
    NVARCHAR(max) exist); a bare ``mssql.dialect()`` assumes SQL Server 2005."""
    dialect = mssql.dialect()
    dialect.server_version_info = (15, 0)
    dialect._setup_version_attributes()
    return dialect


DIALECT = _sql_server_2019()
# Constructs SQL Server does not have (or, for OUTPUT, refuses on tables with triggers).
NOT_TSQL = ("IS DISTINCT", "IS NOT DISTINCT", "RETURNING", "OUTPUT", " LIMIT ", "ON CONFLICT", "::")


def tsql(stmt: ClauseElement) -> str:
    """T-SQL text, with literal values inlined where the dialect can render them."""
    try:
        return str(stmt.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))
    except (CompileError, NotImplementedError):
        return str(stmt.compile(dialect=DIALECT))


def workload(engine) -> None:
    """Every public write and read of the data layer, once."""
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, picsweb_rows())
    with engine.begin() as conn:
        pt.ensure_project_tables(conn)
        pt.start_run(conn, "run-1")
        read_settings(conn)
        pt.replace_staging(conn, "run-1", "learners", 11, learners(1, 2))
        pt.read_staging(conn, "run-1", "learners", organisation_id=11)
        for kind, sample in CHANGE_SET_SAMPLES.items():
            pt.replace_change_set(conn, "run-1", kind, sample)
            pt.read_change_set(conn, "run-1", kind)
        updates = CHANGE_SET_SAMPLES["picsweb_updates"]
        picsweb_writes.apply_updates(conn, "run-1", updates.assign(old=[None, dt.time(9, 0), None]))
        basis = freshness.merge_basis(conn, "run-1", freshness.QUALIFICATIONS)
        freshness.record_change_basis(conn, "run-1", freshness.QUALIFICATIONS, basis)
        freshness.change_basis(conn, "run-1", freshness.QUALIFICATIONS)
        picsweb_writes.apply_updates(conn, "run-1", updates, basis_at=basis.extracted_at)
        picsweb_writes.apply_updates(
            conn, "run-0", updates, basis_at=basis.extracted_at - dt.timedelta(days=1)
        )
        picsweb_writes.insert_reviews(
            conn, "run-1", CHANGE_SET_SAMPLES["picsweb_review_inserts"], basis_at=basis.extracted_at
        )
        items = pd.DataFrame({"target_id": [2], "payload": [{"LearnerID": 100001}]})
        pt.enqueue_outbox(conn, "run-1", "review_create", items)
        (outbox_id,) = pt.pending_outbox(conn, "run-1", kind="review_create")["outbox_id"]
        pt.mark_outbox(conn, outbox_id, "sent", visit_id=1, result_id=2, error=None)
        pt.outbox_rows(conn, "run-1", pt.REVIEW_CREATE, ("sent",))
        pt.set_payload(conn, outbox_id, {"LearnerID": 100001})
        pt.mark_outbox(conn, outbox_id, "sent", payload={"LearnerID": 100001})
        pt.restart_create(conn, outbox_id, {"LearnerID": 100001}, "visit let go")
        pt.unknown_creates(conn)
        pt.unlinked_upload_visits(conn)
        picsweb_writes.reviews_already_linked(conn, [1, 2])
        picsweb_writes.reviews_with_onefile_ids(conn, [900001])
        picsweb_writes.link_review(conn, "run-1", 1, 999001)
        links = pd.DataFrame({"review_id": [2], "onefile_id": [999002]})
        picsweb_writes.link_reviews(conn, "run-1", links)
        pt.record_rejects(conn, "run-1", "extract", rejects("bad date"), 11)
        pt.read_rejects(conn, "run-1")
        pt.record_counts(conn, "run-1", "load", {"applied": 1})
        pt.run_counts(conn, "run-1")
        pt.record_task_error(conn, "run-1", "load", 1, "boom")
        pt.task_errors(conn, "run-1")
        pt.finish_run(conn, "run-1", "success")
        mark_synchronised(conn, dt.datetime(2026, 3, 29, 3, 0, tzinfo=dt.UTC).replace(tzinfo=None))
        pt.purge(conn, older_than_days=30)


@pytest.fixture(scope="module")
def issued(tmp_path_factory) -> list[ClauseElement]:
    """The statements of :func:`workload`, captured as SQLAlchemy constructs."""
    engine = engines.engine_for_url(f"sqlite:///{tmp_path_factory.mktemp('mssql') / 'w.sqlite'}")
    captured: list[ClauseElement] = []

    @event.listens_for(engine, "before_execute")
    def capture(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, ClauseElement):
            captured.append(clauseelement)

    workload(engine)
    engine.dispose()
    return captured


def test_the_workload_issues_every_kind_of_statement(issued):
    kinds = {type(stmt).__name__ for stmt in issued}
    assert {"CreateTable", "CreateIndex", "Insert", "Update", "Delete", "Select"} <= kinds
    assert len(issued) > 60


def test_every_issued_statement_compiles_as_tsql(issued):
    for stmt in issued:
        sql = tsql(stmt)
        offending = [token for token in NOT_TSQL if token in sql.upper()]
        assert not offending, (offending, sql)


def test_guarded_update_is_one_update_from_per_field():
    sql = " ".join(tsql(picsweb_writes.apply_statement("run-1", "review", "start_time")).split())
    assert sql.startswith(
        "UPDATE review SET start_time=sync_picsweb_work.new_time "
        "FROM review, sync_picsweb_work WHERE review.review_id = sync_picsweb_work.entity_key"
    )
    assert "review.start_time IS NULL AND sync_picsweb_work.old_time IS NULL" in sql


def test_review_insert_is_an_insert_select():
    sql = " ".join(tsql(picsweb_writes.insert_new_statement("run-1")).split())
    assert sql.startswith("INSERT INTO review (trainee_id,")
    assert "SELECT sync_review_insert_work.trainee_id" in sql
    assert "sync_review_insert_work.existed = 0" in sql


@pytest.mark.parametrize(
    "table",
    [*picsweb_tables.metadata.sorted_tables, *pt.project_metadata.sorted_tables],
    ids=lambda table: table.name,
)
def test_every_table_and_index_compiles_for_sql_server(table):
    ddl: list[DDLElement] = [CreateTable(table), *(CreateIndex(ix) for ix in table.indexes)]
    text = "\n".join(str(element.compile(dialect=DIALECT)) for element in ddl)
    assert text.startswith(f"\nCREATE TABLE {table.name} (")
    for column in table.c:
        if column.identity is not None:
            assert f"{column.name} BIGINT NOT NULL IDENTITY" in text or (
                f"{column.name} INTEGER NOT NULL IDENTITY" in text
            )


def test_picsweb_dates_and_times_keep_their_types():
    sql = str(CreateTable(picsweb_tables.review).compile(dialect=DIALECT))
    assert "scheduled_date DATE NOT NULL" in sql and "start_time TIME NULL" in sql


def test_nullable_unique_picsweb_columns_use_filtered_indexes():
    """A SQL Server UNIQUE constraint admits one NULL; a filtered unique index admits many."""
    sql = str(CreateIndex(*picsweb_tables.review.indexes).compile(dialect=DIALECT))
    assert "CREATE UNIQUE INDEX ux_review_onefile_system_id ON review (onefile_system_id)" in sql
    assert "WHERE onefile_system_id IS NOT NULL" in sql


BIN2 = "COLLATE Latin1_General_100_BIN2"


@pytest.mark.parametrize(
    ("table", "field", "exact"),
    [
        pytest.param(
            "trainee_qualification",
            "registration_number",
            "(trainee_qualification.registration_number + N'|') COLLATE Latin1_General_100_BIN2"
            " = (sync_picsweb_work.old_text + N'|') COLLATE Latin1_General_100_BIN2",
            id="varchar-binary-and-trailing-spaces-kept",
        ),
        pytest.param(
            "review",
            "attended",
            "review.attended COLLATE Latin1_General_100_BIN2"
            " = sync_picsweb_work.old_text COLLATE Latin1_General_100_BIN2",
            id="char-binary-padding-is-not-data",
        ),
    ],
)
def test_text_is_compared_exactly_on_sql_server(table, field, exact):
    """SQL Server's default collation ignores case: every comparison that decides an
    outcome, and the UPDATE's guard, uses a binary collation instead."""
    classify = " ".join(tsql(picsweb_writes.classify_statement("run-1", table, field)).split())
    guard = " ".join(tsql(picsweb_writes.apply_statement("run-1", table, field)).split())
    assert exact in guard
    assert guard.count(BIN2) == 2
    assert classify.count(BIN2) == 4  # current vs new ("unchanged"), current vs old ("applied")
    assert "sync_picsweb_work.new_text" in classify.split(BIN2)[1]


@pytest.mark.parametrize(("table", "field"), [("review", "start_time"), ("review", "officer_id")])
def test_other_kinds_compare_without_collation_on_sql_server(table, field):
    assert "COLLATE" not in tsql(picsweb_writes.classify_statement("run-1", table, field))
    assert "COLLATE" not in tsql(picsweb_writes.apply_statement("run-1", table, field))


def test_id_lookups_stay_under_sql_servers_parameter_limit(tmp_path):
    """SQL Server takes at most 2,100 parameters a statement: a lookup by 2,500 IDs is three
    statements of at most 1,000, as SQL Server would receive them."""
    engine = engines.engine_for_url(f"sqlite:///{tmp_path / 'ids.sqlite'}")
    create_picsweb_tables(engine)
    captured: list[ClauseElement] = []
    event.listen(engine, "before_execute", lambda conn, stmt, *args: captured.append(stmt))
    ids = list(range(1, 2_501))
    with engine.connect() as conn:
        picsweb_writes.reviews_already_linked(conn, ids)
        picsweb_writes.reviews_with_onefile_ids(conn, ids)
    engine.dispose()
    compiled = [
        stmt.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
        for stmt in captured
    ]
    assert [len(c.params) for c in compiled] == [1000, 1000, 500] * 2
    assert all(" IN (__[POSTCOMPILE" not in str(c) for c in compiled)
