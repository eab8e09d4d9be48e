"""The sync page's two big reads on a year of history, each beside a baseline.

A throwaway PostgreSQL server (the tests' own, tests/support/postgres.py) gets 10,000
PICSWeb learners (two qualifications and two reviews each), a year of daily runs with their summaries, and
``--audit-rows`` audit rows (1,000,000 by default) spread over those runs and learners,
written server-side by ``generate_series``. Then, each timed as a median:

- **history**: the run history page at ~300 runs deep (page 7 of 50), by the page's keyset
  cursor through ``ix_sync_run_started_at``, against the same page by ``OFFSET`` with that
  index dropped (inside a transaction that is rolled back: PostgreSQL's DDL is
  transactional);
- **audit search**: ``queries.audit_search`` for one learner (by trainee ID, and by name),
  resolving the learner to its qualification and review keys, then reading the audit
  through ``ix_sync_audit_entity_entity_key_changed_at``, against the same search with that
  index dropped (a scan of every audit row).

Both sides of each pair must return the same rows, or the benchmark stops with an error.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import sqlalchemy as sa
from sync_page import queries
from sync_page.queries.history import history_select, run_row

from benchmarks.timing import Result, compared, timed
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.project_tables import ensure_project_tables, sync_audit, sync_run
from sync_demo.picsweb_db import create_picsweb_tables

LEARNERS = 10_000
DAYS = 365
PAGE = 50
DEPTH = 6  # pages skipped before the timed one
HISTORY_INDEX = "ix_sync_run_started_at"
AUDIT_INDEX = "ix_sync_audit_entity_entity_key_changed_at"


def write_learners(engine: sa.Engine, learners: int, seed: int) -> None:
    rng = random.Random(seed)
    first = ["Amy", "Ben", "Chloe", "Dev", "Ella", "Finn", "Grace", "Hari", "Isla", "Jack"]
    last = ["Smith", "Jones", "Patel", "Khan", "Brown", "Taylor", "Wilson", "Evans", "Wright"]
    create_picsweb_tables(engine)
    trainees = [
        {
            "trainee_id": n,
            "first_name": rng.choice(first),
            "surname": f"{rng.choice(last)}{n}",  # unique: a name search finds one learner
            "onefile_learner_id": 700_000 + n,
        }
        for n in range(1, learners + 1)
    ]
    quals = [
        {
            "tq_id": n * 10 + k,
            "trainee_id": n,
            "qualification_code": f"Q{k}",
            "onefile_learning_aim_id": 5_000_000 + n * 10 + k,
        }
        for n in range(1, learners + 1)
        for k in (1, 2)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(pw.trainee), trainees)
        conn.execute(sa.insert(pw.trainee_qualification), quals)
        conn.execute(
            sa.text(
                "INSERT INTO review (review_id, trainee_id, review_type, scheduled_date,"
                " onefile_system_id) SELECT n * 10 + k, n, 'Progress', DATE '2025-06-01',"
                " 9000000 + n * 10 + k FROM generate_series(1, :n) n, generate_series(1, 2) k"
            ),
            {"n": learners},
        )


HISTORY_SQL = """
INSERT INTO sync_run (run_id, started_at, ended_at, outcome)
SELECT 'scheduled__' || to_char(d, 'YYYY-MM-DD') || 'T02:00:00+00:00', d, d + interval '3 min',
       CASE WHEN extract(doy FROM d)::int % 17 = 5 THEN 'failed' ELSE 'success' END
FROM generate_series(TIMESTAMP '2025-01-01 02:00', TIMESTAMP '2025-01-01 02:00'
                     + (:days - 1) * interval '1 day', interval '1 day') d;
INSERT INTO sync_run_summary (run_id, dag_id, run_type, dry_run, interval_start, interval_end,
                              first_ended_at, summary, updated_at)
SELECT run_id, 'onefile_picsweb_sync', 'scheduled', false, started_at - interval '1 day',
       started_at, ended_at,
       '{"learners_extracted": 9000, "picsweb_fields_changed": ' || (:per_run * 7 / 10)
       || ', "onefile_fields_changed": ' || (:per_run * 3 / 10) || ', "rejects": 3}', ended_at
FROM sync_run;
"""

AUDIT_SQL = """
INSERT INTO sync_audit (run_id, system, entity, entity_key, field, old_value, new_value,
                        changed_at)
SELECT 'scheduled__' || to_char(day, 'YYYY-MM-DD') || 'T02:00:00+00:00',
       CASE WHEN g % 10 < 7 THEN 'picsweb' ELSE 'onefile' END,
       CASE WHEN g % 10 < 7 THEN 'trainee_qualification' ELSE 'LearningAim' END,
       CASE WHEN g % 10 < 7 THEN (learner * 10 + 1 + g % 2)::text
            ELSE (5000000 + learner * 10 + 1 + g % 2)::text END,
       CASE g % 4 WHEN 0 THEN 'elements_done' WHEN 1 THEN 'total_elements'
                  WHEN 2 THEN 'registration_number' ELSE 'registration_date' END,
       (g % 50)::text, (g % 50 + 1)::text, day + interval '90 seconds'
FROM (
  SELECT g, 1 + (g::bigint * 7919) % :learners AS learner,
         TIMESTAMP '2025-01-01 02:00' + (g % :days) * interval '1 day' AS day
  FROM generate_series(1, :rows) g
) s;
"""


def build(engine: sa.Engine, audit_rows: int, seed: int) -> None:
    write_learners(engine, LEARNERS, seed)
    ensure_project_tables(engine)
    params = {"days": DAYS, "per_run": audit_rows // DAYS, "learners": LEARNERS}
    with engine.begin() as conn:
        for statement in HISTORY_SQL.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement), params)
        # Bulk load first, index after (ensure_project_tables creates missing indexes).
        for index in sync_audit.indexes:
            conn.execute(sa.text(f'DROP INDEX "{index.name}"'))
        conn.execute(sa.text(AUDIT_SQL), {**params, "rows": audit_rows})
    ensure_project_tables(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def _offset_page(conn: sa.Connection, offset: int) -> list[str]:
    """The same page by OFFSET, each row made into the page's dict as the real one is."""
    stmt = (
        history_select()
        .order_by(sync_run.c.started_at.desc(), sync_run.c.run_id.desc())
        .offset(offset)
        .limit(PAGE)
    )
    return [run_row(row)["run_id"] for row in conn.execute(stmt)]


def _without(conn: sa.Connection, index: str) -> None:
    """Drop ``index`` inside the connection's open transaction (rolled back after)."""
    conn.execute(sa.text(f'DROP INDEX "{index}"'))


def bench_history(engine: sa.Engine, args: argparse.Namespace, size: str) -> list[Result]:
    with engine.connect() as conn:
        cursor = None
        for _ in range(DEPTH):
            cursor = queries.run_history(conn, PAGE, cursor).next_cursor

        def keyset() -> list[str]:
            return [r["run_id"] for r in queries.run_history(conn, PAGE, cursor).rows]

        fast, fast_rows = timed(keyset, args.repeats, args.budget)
        conn.rollback()
        with conn.begin():
            _without(conn, HISTORY_INDEX)
            slow, slow_rows = timed(
                lambda: _offset_page(conn, DEPTH * PAGE), args.repeats, args.budget
            )
            conn.rollback()
    if fast_rows != slow_rows or len(fast_rows) != PAGE:
        raise SystemExit("sync page: the keyset page and the OFFSET page differ")
    results = [
        Result(
            "sync_page",
            size,
            "history page 7, keyset + index",
            PAGE,
            **fast,
            note=f"{DAYS} runs, page of {PAGE}",
        ),
        Result(
            "sync_page",
            size,
            "history page 7, OFFSET, no index",
            PAGE,
            **slow,
            note=f"OFFSET {DEPTH * PAGE}, index dropped",
        ),
    ]
    return compared(results, "history page 7, OFFSET, no index")


def bench_audit(engine: sa.Engine, args: argparse.Namespace, size: str) -> list[Result]:
    learner = LEARNERS // 3
    with engine.connect() as conn:
        surname = conn.execute(
            sa.select(pw.trainee.c.surname).where(pw.trainee.c.trainee_id == learner)
        ).scalar_one()
        conn.rollback()
        out: list[Result] = []
        for label, q, by in (("trainee ID", str(learner), "trainee"), ("name", surname, "name")):

            def search(q=q, by=by) -> list[int]:
                page = queries.audit_search(conn, [conn], q, by, queries.DEFAULT_AUDIT)
                return [r["audit_id"] for r in page.rows]

            fast, fast_rows = timed(search, args.repeats, args.budget)
            conn.rollback()
            with conn.begin():
                _without(conn, AUDIT_INDEX)
                slow, slow_rows = timed(search, args.repeats, args.budget)
                conn.rollback()
            if fast_rows != slow_rows or not fast_rows:
                raise SystemExit(f"sync page: the audit search by {label} differs without index")
            pair = [
                Result(
                    "sync_page",
                    size,
                    f"audit search by {label}, index",
                    len(fast_rows),
                    **fast,
                    note="newest 100 changes of one learner",
                ),
                Result(
                    "sync_page",
                    size,
                    f"audit search by {label}, no index",
                    len(slow_rows),
                    **slow,
                    note="index dropped: scans every audit row",
                ),
            ]
            out += compared(pair, f"audit search by {label}, no index")
    return out


def bench_sync_page(args: argparse.Namespace) -> list[Result]:
    from tests.support.postgres import postgres_server

    with postgres_server() as server:
        engine = sa.create_engine(server.create_database("sync_page_bench"))
        size = f"{DAYS}d/{args.audit_rows // 1000}k"
        print(
            f"-- sync page: writing {DAYS} runs and {args.audit_rows:,} audit rows", file=sys.stderr
        )
        began = time.perf_counter()
        build(engine, args.audit_rows, args.seed)
        print(f"-- sync page: written in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        results = bench_history(engine, args, size) + bench_audit(engine, args, size)
        engine.dispose()
        return results
