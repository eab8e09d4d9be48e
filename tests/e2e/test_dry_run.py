"""Issue 10, dry run, end to end: the real DAG (``dag.test()``) with ``dry_run`` on, against
the OneFile simulator over HTTP and PICSWeb on a real PostgreSQL, then a real run of the
same day.

The generated world has work in both directions (OneFile values for PICSWeb, PICSWeb values
for OneFile's blanks, reviews to download and reviews to upload, uploads on). The dry run
must leave every PICSWeb table as it was, byte for byte, with no row inserted, updated or
deleted even transiently (PostgreSQL's own row counters), make no OneFile write, and say
what it would change; the real run after it must make exactly the changes a first run makes
(the oracles of the review and qualification tests), no fewer and nothing twice.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.run import dry_run
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.sqlframes import read_frame
from sync_demo.dag_runs import run_dag
from tests.e2e.review_oracle import expected_reviews, plan_uploads, reviews_in_window
from tests.e2e.test_qualification_sync import _expected, _onefile_aims, _picsweb_quals
from tests.e2e.test_review_sync import _assert_reviews, _assert_uploads_sent, _created, _window

PICSWEB_TABLES = [table.name for table in pw.metadata.sorted_tables]
# What each load and push counts, in a dry run what it *would* do.
COUNTED = {
    "load_qualifications": ("fields_changed", "already_equal", "conflicts"),
    "load_reviews": ("fields_changed", "already_equal", "conflicts", "reviews_inserted"),
    "push_learning_aims": ("sent", "skipped", "rejected", "failed"),
    "push_reviews": ("sent", "skipped", "rejected", "failed", "fields_reflected"),
}


# ----- both systems, as they are --------------------------------------------------------------
def _picsweb_tables(world) -> dict[str, pd.DataFrame]:
    """Every PICSWeb table, every column, in key order."""
    with world.picsweb.connect() as conn:
        return {
            table.name: read_frame(conn, sa.select(table).order_by(*table.primary_key.columns))
            for table in pw.metadata.sorted_tables
        }


def _row_operations(world) -> dict[str, tuple[int, int, int]]:
    """PostgreSQL's count of rows inserted, updated and deleted in each PICSWeb table
    (rolled-back ones too), with every backend's pending counts flushed first: the other
    sessions of the database (the tasks' pooled connections) are ended, which makes each
    report its counts as it exits, and this session flushes its own."""
    world.picsweb.dispose()
    admin = sa.create_engine(world.picsweb.url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        ended = conn.execute(
            sa.text(
                "SELECT bool_and(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        assert ended is not False, "a session of the PICSWeb database did not end"
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(
            sa.text(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables "
                "WHERE relname = ANY(:names)"
            ),
            {"names": PICSWEB_TABLES},
        ).all()
    admin.dispose()
    counted = {name: (ins, upd, dele) for name, ins, upd, dele in rows}
    assert sorted(counted) == sorted(PICSWEB_TABLES)
    return counted


def _onefile_writes(world) -> list[tuple[str, str]]:
    """Every call that could change OneFile: any method but GET, except authentication
    and searches (reads sent as ``POST .../Search``)."""
    return [
        (c.method, c.path)
        for c in world.sim.calls
        if c.method != "GET" and c.path != "/Authentication" and "/Search" not in c.path
    ]


def _counts(world, run_id: str) -> dict[str, dict[str, int]]:
    with world.picsweb.connect() as conn:
        found = pt.run_counts(conn, run_id)
    return {stage: {n: found[stage][n] for n in names} for stage, names in COUNTED.items()}


def _rows_of(world, table: sa.Table, run_id: str) -> int:
    with world.picsweb.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)
        ).scalar_one()


def _changes(frame: pd.DataFrame, system: str, entity: str) -> set[tuple]:
    rows = frame[(frame["system"] == system) & (frame["entity"] == entity)]
    return set(zip(rows["entity_key"], rows["field"], rows["old"], rows["new"], strict=True))


def _audit(world, run_id: str) -> pd.DataFrame:
    found = world.audit(run_id).rename(columns={"old_value": "old", "new_value": "new"})
    found = found[["system", "entity", "entity_key", "field", "old", "new"]]
    return found.astype(object).where(found.notna(), None)


# ----- the test -------------------------------------------------------------------------------
def test_a_dry_run_writes_nothing_and_the_real_run_after_it_makes_every_change(world):
    picsweb, users = world.original.picsweb, world.original.onefile.users
    uploads, _ = plan_uploads(picsweb, users)
    tables_before = _picsweb_tables(world)
    operations_before = _row_operations(world)
    onefile_before = copy.deepcopy(world.sim.data)
    world.sim.reset_calls()

    dry = world.run(dry_run=True)
    assert str(dry.state) == "success"

    # PICSWeb: every table byte-identical, and not one row written even transiently.
    after = _picsweb_tables(world)
    for name, frame in tables_before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)
    assert _row_operations(world) == operations_before
    # OneFile: read, never written.
    assert _onefile_writes(world) == []
    assert world.sim.data == onefile_before
    assert any("/Search" in c.path for c in world.sim.calls)  # it did read
    # Nothing the dry run left can be sent or refuse a later load.
    assert _rows_of(world, pt.sync_outbox, dry.run_id) == 0
    assert _rows_of(world, pt.sync_load_mark, dry.run_id) == 0
    assert world.audit(dry.run_id).empty

    # What it would change: counted under the real names, listed by would_change.
    would_counts = _counts(world, dry.run_id)
    for stage, name in [
        ("load_qualifications", "fields_changed"),
        ("load_reviews", "fields_changed"),
        ("load_reviews", "reviews_inserted"),
        ("push_learning_aims", "sent"),
        ("push_reviews", "sent"),
        ("push_reviews", "fields_reflected"),
    ]:
        assert would_counts[stage][name] > 0, (stage, name)  # the world has work everywhere
    assert would_counts["push_reviews"]["sent"] == len(uploads)
    with world.picsweb.connect() as conn:
        would = dry_run.would_change(conn, dry.run_id)
    created_from = would[would["field"] == "created_from_picsweb_review"]
    assert sorted(int(v) for v in created_from["new"]) == sorted(uploads)
    # The qualification rules' would-be changes are exactly the oracle's.
    want_quals, want_aims = _expected(world)
    before_quals = {q["tq_id"]: q for q in picsweb["trainee_qualification"]}
    oracle_fields = {
        (str(key), field)
        for key, row in want_quals.items()
        for field, value in row.items()
        if before_quals[key][field] != value
    }
    quals = would[would["entity"] == "trainee_qualification"]
    assert set(zip(quals["entity_key"], quals["field"], strict=True)) == oracle_fields

    # A real run of the same day makes every change a run without the dry run would make.
    world.sim.reset_calls()
    real = run_dag(logical_date=world.when + timedelta(hours=1))
    assert str(real.state) == "success"
    assert (real.data_interval_start, real.data_interval_end) == (
        dry.data_interval_start,
        dry.data_interval_end,
    )
    assert _picsweb_quals(world) == want_quals
    assert _onefile_aims(world) == want_aims
    _assert_uploads_sent(world, uploads)  # one Visit and one Review per upload, none twice
    created = _created(world, uploads)
    assert sorted(created) == sorted(uploads)
    downloads = reviews_in_window(world.original.onefile.reviews, users, picsweb, *_window(real))
    _assert_reviews(world, *expected_reviews(picsweb, users, downloads, created))
    assert _row_operations(world) != operations_before  # the counters do see real writes

    # ... and exactly what the dry run said it would.
    real_counts = _counts(world, real.run_id)
    assert real_counts == would_counts
    made = _audit(world, real.run_id)
    assert _changes(made, "picsweb", "trainee_qualification") == _changes(
        would, "picsweb", "trainee_qualification"
    )
    assert _changes(made, "onefile", "LearningAim") == _changes(would, "onefile", "LearningAim")
    uploaded = {str(review_id) for review_id in uploads}
    inserted = {
        str(r["review_id"])
        for r in world.table(pw.review, "review_id").to_dict("records")
        if r["review_id"] not in {x["review_id"] for x in picsweb["review"]}
    }
    links = made["entity_key"].isin(uploaded) & (made["field"] == "onefile_system_id")
    made_updates = made[~made["entity_key"].isin(inserted) & ~links]  # IDs OneFile assigned
    assert _changes(made_updates, "picsweb", "review") == _changes(
        would[~would["entity_key"].str.startswith("new ")], "picsweb", "review"
    )
    made_from = made[made["field"] == "created_from_picsweb_review"]
    assert sorted(made_from["new"]) == sorted(created_from["new"])
    would_new = would[would["entity_key"].str.startswith("new (OneFile review ")]
    made_new = made[made["entity_key"].isin(inserted)]
    assert sorted(made_new.loc[made_new["field"] == "onefile_system_id", "new"]) == sorted(
        would_new.loc[would_new["field"] == "onefile_system_id", "new"]
    )
    assert len(made_new) == len(would_new)  # the same fields of each new review
