"""The sync's own run records (``sync_run``): each run's outcome and, for a failed one, which
task failed and why (``sync_run.failure``, written by ``record_failure``; never a secret).

    docker compose exec airflow-worker python /opt/airflow/deploy/sync_runs.py
    docker compose exec airflow-worker python /opt/airflow/deploy/sync_runs.py --failed --limit 3
    docker compose exec airflow-worker python /opt/airflow/deploy/sync_runs.py --run-id RUN_ID

Reads through the Airflow connection the DAG writes them with (``picsweb_db``, or the
``staging_conn_id`` a run was given), so no password is typed. Run in the worker: it has
the connections.
"""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa


def records(conn, *, failed: bool, run_id: str | None, limit: int) -> list:
    from picsweb_sync.storage.project_tables import sync_run

    stmt = sa.select(sync_run)
    if run_id:
        stmt = stmt.where(sync_run.c.run_id == run_id)
    if failed:
        stmt = stmt.where(sync_run.c.outcome == "failed")
    stmt = stmt.order_by(sync_run.c.started_at.desc(), sync_run.c.run_id).limit(limit)
    return list(conn.execute(stmt))


def render(rows) -> str:
    if not rows:
        return "no run recorded"
    blocks = []
    for row in rows:
        ended = row.ended_at.isoformat(sep=" ") if row.ended_at else "-"
        head = f"{row.run_id}  {row.outcome}  started {row.started_at.isoformat(sep=' ')} UTC"
        lines = [f"{head}, ended {ended}"]
        lines += [f"    {line}" for line in (row.failure or "").splitlines()]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python deploy/sync_runs.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--conn-id", default="picsweb_db", help="where the sync_* tables are")
    parser.add_argument("--failed", action="store_true", help="failed runs only")
    parser.add_argument("--run-id", help="one run")
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args(argv)

    from picsweb_sync.storage.engines import engine_for_connection

    engine = engine_for_connection(args.conn_id)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("sync_run"):
                print(f"no sync_run table behind connection {args.conn_id!r}: no run yet")
                return 1
            rows = records(conn, failed=args.failed, run_id=args.run_id, limit=args.limit)
    finally:
        engine.dispose()
    print(render(rows))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
