"""The preflight's database checks on a real SQL Server (see conftest.py): tests/preflight's
schema tests, and a demo PICSWeb in a case-insensitive database, as PICSWeb's usually is."""

from __future__ import annotations

import sqlalchemy as sa

from onefile_simulator import generate_dataset
from picsweb_sync.preflight.collation import _mssql_loose
from picsweb_sync.preflight.findings import Level
from picsweb_sync.preflight.own_tables import own_tables_checks
from picsweb_sync.preflight.picsweb import picsweb_checks
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.preflight.test_schema import (  # noqa: F401
    test_a_missing_table_is_blocking_and_its_settings_are_not_read,
    test_an_insert_needs_a_generated_key_and_defaults_for_other_columns,
)


def test_a_demo_picsweb_fits_and_a_case_insensitive_collation_is_a_warning(mssql_url):
    engine = sa.create_engine(mssql_url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, generate_dataset(seed=11, organisations=2, learners=4).picsweb)
    checks, facts = picsweb_checks(engine, "test database", read_frames=True)
    checks += own_tables_checks(engine, "test database")
    levels = {c.id: c.level for c in checks}
    assert [c for c in checks if c.level is Level.BLOCKING] == []
    with engine.connect() as conn:
        collation = conn.execute(sa.text("SELECT DATABASEPROPERTYEX(DB_NAME(), 'Collation')"))
        loose = _mssql_loose(collation.scalar_one())  # by default _CI_AS, as PICSWeb's
    assert levels["picsweb.collation"] is (Level.WARNING if loose else Level.OK)
    assert levels["picsweb.key.review.review_id"] is Level.OK  # an IDENTITY
    assert levels["picsweb.grants.review"] is Level.OK
    assert levels["staging.tables"] is Level.OK
    assert facts.settings is not None and facts.frames["trainee"].shape[0] > 0
    engine.dispose()
