"""The guarded PICSWeb writes compare text exactly, whatever the database's collation.

PICSWeb runs on SQL Server, whose default collation compares text case-insensitively: a
OneFile value differing only in case would be "unchanged" forever, and a row edited only in
case since the merge would not be a conflict. PostgreSQL can collate the same way (a
nondeterministic ICU collation), so these tests give every PICSWeb text column, and the
work table's value columns (they live in the PICSWeb database too, where SQL Server gives
them its default collation), the collation ``ci`` and check the outcomes on a real server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import String, event, select, text, update
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.engine import Engine

from picsweb_sync.storage import engines, picsweb_writes
from picsweb_sync.storage.picsweb_tables import metadata, primary_key, review, trainee_qualification
from picsweb_sync.storage.project_tables import ensure_project_tables, sync_picsweb_work
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

from .conftest import picsweb_rows, review_row

TQ, RV = "trainee_qualification", "review"
CI = "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"


def _text_columns() -> Iterator[tuple[str, str, str]]:
    """(table, column, SQL type) of every text column the guarded writes compare."""
    for table in [*metadata.sorted_tables, sync_picsweb_work]:
        for column in table.c:
            if isinstance(column.type, String) and (
                table is not sync_picsweb_work or column.name.endswith("_text")
            ):
                yield table.name, column.name, column.type.compile(dialect=postgresql.dialect())


@pytest.fixture
def ci_engine(pg_url: str) -> Iterator[Engine]:
    """PostgreSQL whose PICSWeb text compares as SQL Server's default collation does."""
    engine = engines.engine_for_url(pg_url)
    create_picsweb_tables(engine)
    rows = picsweb_rows()
    rows["review"].append(review_row(3, attended="y"))
    load_picsweb_rows(engine, rows)
    ensure_project_tables(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(CI)
        for table, column, sql_type in _text_columns():
            conn.exec_driver_sql(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {sql_type} COLLATE ci'
            )
    yield engine
    engine.dispose()


def test_the_test_database_really_ignores_case(ci_engine):
    with ci_engine.connect() as conn:
        found = conn.execute(
            select(trainee_qualification.c.tq_id).where(
                trainee_qualification.c.registration_number == "reg-1"
            )
        ).scalars()
        assert list(found) == [1]  # stored as 'REG-1'
        assert conn.execute(text("SELECT 'y'::char(1) COLLATE ci = 'Y'")).scalar_one()


def current(engine: Engine, table: str, key: int, field: str):
    target = metadata.tables[table]
    with engine.connect() as conn:
        return conn.execute(select(target.c[field]).where(primary_key(target) == key)).scalar_one()


@pytest.mark.parametrize(
    ("change", "outcome", "final"),
    [
        pytest.param((TQ, 1, "registration_number", "REG-1", "reg-1"), "applied", "reg-1",
                     id="case-only-change-is-applied"),
        pytest.param((RV, 3, "attended", "y", "Y"), "applied", "Y", id="attended-y-to-Y"),
        pytest.param((RV, 3, "attended", None, "Y"), "conflict", "y",
                     id="attended-null-seen-y-found-conflict"),
        pytest.param((TQ, 1, "registration_number", "reg-1", "REG-9"), "conflict", "REG-1",
                     id="edited-only-in-case-since-the-merge-is-a-conflict"),
        pytest.param((TQ, 1, "registration_number", "REG-0", "rEG-1"), "conflict", "REG-1",
                     id="new-value-found-only-in-another-case-is-a-conflict"),
        pytest.param((TQ, 1, "registration_number", "X", "REG-1"), "unchanged", "REG-1",
                     id="exactly-the-new-value-is-unchanged"),
        pytest.param((TQ, 1, "registration_number", "REG-1", "REG-2"), "applied", "REG-2",
                     id="ordinary-change"),
    ],
)  # fmt: skip
def test_outcomes_are_exact_on_a_case_insensitive_database(ci_engine, change, outcome, final):
    table, key, field, old, new = change
    updates = pd.DataFrame(
        [(*change, "test_rule")], columns=["table", "key", "field", "old", "new", "rule"]
    )
    with ci_engine.begin() as conn:
        result = picsweb_writes.apply_updates(conn, "run-1", updates)
    found = pd.concat([result.applied, result.unchanged, result.conflicts])
    assert found["outcome"].tolist() == [outcome]
    assert current(ci_engine, table, key, field) == final


def test_an_edit_only_in_case_between_check_and_update_is_never_overwritten(ci_engine):
    """The UPDATE's own guard is exact too: a concurrent edit from 'y' to 'Y' aborts."""

    def edit_after_classify(conn, clauseelement, *args):
        if getattr(clauseelement, "table", None) is not None and (
            clauseelement.table.name == "sync_picsweb_work" and clauseelement.is_update
        ):
            conn.execute(update(review).where(review.c.review_id == 3).values(attended="Y"))

    updates = pd.DataFrame(
        [(RV, 3, "attended", "y", "N", "test_rule")],
        columns=["table", "key", "field", "old", "new", "rule"],
    )
    event.listen(ci_engine, "after_execute", edit_after_classify)
    try:
        with (
            pytest.raises(picsweb_writes.ConcurrentChangeError, match="attended"),
            ci_engine.begin() as c,
        ):
            picsweb_writes.apply_updates(c, "run-1", updates)
    finally:
        event.remove(ci_engine, "after_execute", edit_after_classify)
    assert current(ci_engine, RV, 3, "attended") == "y"


# ----- the comparison as each dialect writes it -------------------------------------------------
def _sql(stmt, dialect) -> str:
    return " ".join(str(stmt.compile(dialect=dialect)).split())


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        pytest.param(
            postgresql.dialect(),
            'trainee_qualification.registration_number COLLATE "C" = '
            'sync_picsweb_work.old_text COLLATE "C"',
            id="postgresql",
        ),
        pytest.param(
            sqlite.dialect(),
            "trainee_qualification.registration_number = sync_picsweb_work.old_text",
            id="sqlite-binary-by-default",
        ),
    ],
)
def test_text_guard_collation_per_dialect(dialect, expected):
    sql = _sql(picsweb_writes.apply_statement("run-1", TQ, "registration_number"), dialect)
    assert expected in sql


@pytest.mark.parametrize("field", ["elements_done", "registration_date"])
def test_other_kinds_compare_plainly(field):
    for dialect in (postgresql.dialect(), mssql.dialect()):
        sql = _sql(picsweb_writes.classify_statement("run-1", TQ, field), dialect)
        sql += _sql(picsweb_writes.apply_statement("run-1", TQ, field), dialect)
        assert "COLLATE" not in sql
