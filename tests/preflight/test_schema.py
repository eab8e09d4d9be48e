"""A database's columns judged against the sync's definitions (``preflight.schema``), case by
case, and whole tables on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql

from picsweb_sync.preflight import schema
from picsweb_sync.preflight.findings import Level
from picsweb_sync.preflight.own_tables import own_tables_checks
from picsweb_sync.preflight.picsweb import picsweb_checks
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables
from sync_demo.picsweb_db import create_picsweb_tables

TQ, REVIEW, TRAINEE = pw.trainee_qualification.c, pw.review.c, pw.trainee.c
SETTINGS = pw.onefile_settings.c
PG, MSSQL = postgresql.dialect(), mssql.dialect()


def found(sql_type, nullable=True, **more):
    """A column as SQLAlchemy's inspector reports it."""
    return {"type": sql_type, "nullable": nullable, "default": None, **more}


def _use(column: sa.Column) -> dict[str, bool]:
    table = column.table.name
    return {
        "written": column.name in schema.WRITTEN.get(table, ()),
        "inserted": table in schema.INSERTED,
    }


# (what, expected column, found column or None, dialect, level, words in the finding)
CASES = [
    ("missing", TQ.registration_number, None, PG, Level.BLOCKING, "missing"),
    (
        "written text too short",
        TQ.registration_number,
        found(sa.VARCHAR(20)),
        PG,
        Level.BLOCKING,
        "shorter",
    ),
    (
        "read text shorter",
        TRAINEE.first_name,
        found(sa.VARCHAR(20), False),
        PG,
        Level.OK,
        "only reads",
    ),
    (
        "written text longer",
        TQ.registration_number,
        found(sa.VARCHAR(80)),
        PG,
        Level.OK,
        "still sets aside",
    ),
    (
        "unbounded text",
        TQ.registration_number,
        found(mssql.NVARCHAR(None)),
        MSSQL,
        Level.OK,
        "NVARCHAR",
    ),
    ("char as varchar", REVIEW.attended, found(sa.VARCHAR(1)), PG, Level.OK, "VARCHAR(1)"),
    (
        "written id narrower",
        REVIEW.onefile_system_id,
        found(sa.INTEGER()),
        PG,
        Level.BLOCKING,
        "narrower",
    ),
    (
        "read id narrower",
        TRAINEE.onefile_learner_id,
        found(sa.INTEGER()),
        PG,
        Level.WARNING,
        "only reads",
    ),
    ("tinyint count", TQ.total_elements, found(mssql.TINYINT()), MSSQL, Level.BLOCKING, "narrower"),
    ("wider integer", TQ.total_elements, found(sa.BIGINT()), PG, Level.OK, "BIGINT"),
    (
        "date as datetime",
        TQ.registration_date,
        found(sa.DateTime()),
        PG,
        Level.BLOCKING,
        "not a date",
    ),
    (
        "text as integer",
        TQ.registration_number,
        found(sa.INTEGER()),
        PG,
        Level.BLOCKING,
        "not a text",
    ),
    (
        "unreadable type",
        TQ.registration_date,
        found(sa.NUMERIC(10, 2)),
        PG,
        Level.BLOCKING,
        "NUMERIC",
    ),
    ("bit flag", SETTINGS.integration_enabled, found(mssql.BIT(), False), MSSQL, Level.OK, "BIT"),
    (
        "integer flag",
        SETTINGS.integration_enabled,
        found(mssql.TINYINT(), False),
        MSSQL,
        Level.OK,
        "flag",
    ),
    (
        "inserted NULL refused",
        REVIEW.officer_id,
        found(sa.INTEGER(), False),
        PG,
        Level.BLOCKING,
        "NOT NULL",
    ),
    (
        "updated never NULL",
        TQ.registration_number,
        found(sa.VARCHAR(50), False),
        PG,
        Level.OK,
        "never writes NULL",
    ),
    (
        "nulls where none expected",
        REVIEW.scheduled_date,
        found(sa.DATE(), True),
        PG,
        Level.WARNING,
        "allows NULL",
    ),
    ("as defined", REVIEW.scheduled_date, found(sa.DATE(), False), PG, Level.OK, "DATE"),
]


@pytest.mark.parametrize(
    ("expected", "column", "dialect", "level", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_column_is_judged_by_what_the_sync_does_with_it(expected, column, dialect, level, words):
    fit = schema.column_fit(expected, column, dialect, where="picsweb_tables.py", **_use(expected))
    assert fit.level is level, fit
    assert words in fit.finding
    assert fit.advice.strip()


def test_the_written_columns_come_from_the_rules():
    assert schema.WRITTEN["trainee_qualification"] == {
        "onefile_learning_aim_id",
        "total_elements",
        "elements_done",
        "registration_number",
        "registration_date",
        "certificate_applied_date",
        "certificate_received_date",
    }
    assert {"attended", "actual_date", "officer_id", "onefile_system_id"} <= schema.WRITTEN[
        "review"
    ]
    for table, columns in schema.WRITTEN.items():  # every one a real definition
        assert columns <= set(pw.metadata.tables[table].c.keys())


_REVIEW_NOT_AS_DEFINED = """
CREATE TABLE review (
    review_id BIGINT PRIMARY KEY,
    trainee_id INTEGER NOT NULL,
    review_type VARCHAR(20) NOT NULL,
    scheduled_date DATE NOT NULL,
    start_time TIME, end_time TIME, officer_id INTEGER, attended CHAR(1),
    actual_date DATE, trainee_signed_date DATE, onefile_system_id BIGINT,
    created_by VARCHAR(20) NOT NULL,
    note VARCHAR(20) NOT NULL DEFAULT 'x'
)"""


def test_an_insert_needs_a_generated_key_and_defaults_for_other_columns(db_url):
    engine = sa.create_engine(db_url)
    create_picsweb_tables(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE review"))
        conn.execute(sa.text(_REVIEW_NOT_AS_DEFINED))
    checks, _ = picsweb_checks(engine, "test database")
    levels = {c.id: c.level for c in checks}
    assert levels["picsweb.key.review.review_id"] is Level.BLOCKING
    assert levels["picsweb.column.review.created_by"] is Level.BLOCKING
    assert "picsweb.column.review.note" not in levels  # it has a default
    assert levels["picsweb.unique.review.onefile_system_id"] is Level.WARNING
    assert levels["picsweb.table.review"] is Level.OK
    engine.dispose()


def test_the_demo_tables_fit_on_either_database(db_url):
    engine = sa.create_engine(db_url)
    create_picsweb_tables(engine)
    checks, facts = picsweb_checks(engine, "test database")
    blocking = [c for c in checks if c.level is Level.BLOCKING]
    # no settings row yet: the only thing blocking
    assert [c.id for c in blocking] == ["picsweb.settings"]
    assert facts.fits == {t.name for t in pw.metadata.sorted_tables}
    assert {c.id: c.level for c in checks}["picsweb.key.review.review_id"] is Level.OK
    engine.dispose()


def test_a_missing_table_is_blocking_and_its_settings_are_not_read(db_url):
    engine = sa.create_engine(db_url)
    create_picsweb_tables(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE onefile_settings"))
    checks, _ = picsweb_checks(engine, "test database")
    levels = {c.id: c.level for c in checks}
    assert levels["picsweb.table.onefile_settings"] is Level.BLOCKING
    assert levels["picsweb.settings"] is Level.WARNING  # not read: the table is the problem
    engine.dispose()


def test_the_sync_s_own_tables_as_it_makes_them_fit_on_either_database(db_url):
    """Declared per database (the surrogate keys are INTEGER on SQLite, BIGINT elsewhere):
    tables the sync made itself are judged by the same declaration."""
    engine = sa.create_engine(db_url)
    before = own_tables_checks(engine, "test database")
    assert "the first run creates" in {c.id: c for c in before}["staging.tables"].finding
    project_tables.ensure_project_tables(engine)
    checks = own_tables_checks(engine, "test database")
    assert [(c.id, c.level) for c in checks if c.level is not Level.OK] == []
    assert "the first run creates" not in {c.id: c for c in checks}["staging.tables"].finding
    engine.dispose()
