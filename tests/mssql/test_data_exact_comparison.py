"""tests/data/test_exact_comparison.py on SQL Server, whose default collation compares text
case-insensitively as production's does: no collation needs making, as on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from picsweb_sync.storage import engines
from picsweb_sync.storage.picsweb_tables import trainee_qualification
from picsweb_sync.storage.project_tables import ensure_project_tables
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.data.conftest import picsweb_rows, review_row
from tests.data.test_exact_comparison import (  # noqa: F401
    test_an_edit_only_in_case_between_check_and_update_is_never_overwritten,
    test_outcomes_are_exact_on_a_case_insensitive_database,
)


@pytest.fixture
def ci_engine(mssql_url: str) -> Iterator[Engine]:
    """The tests' PICSWeb in a database of the server's case-insensitive collation."""
    engine = engines.engine_for_url(mssql_url)
    create_picsweb_tables(engine)
    rows = picsweb_rows()
    rows["review"].append(review_row(3, attended="y"))
    load_picsweb_rows(engine, rows)
    ensure_project_tables(engine)
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
        collation = conn.execute(
            text("SELECT CONVERT(nvarchar(128), DATABASEPROPERTYEX(DB_NAME(), 'Collation'))")
        ).scalar_one()
        assert "_CI_" in collation
        assert conn.execute(text("SELECT CASE WHEN N'y' = N'Y' THEN 1 ELSE 0 END")).scalar_one()
