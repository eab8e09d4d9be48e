"""The health checks of docker-compose.yaml's dag-processor, triggerer and Celery workers.

    python /opt/airflow/deploy/healthcheck.py job DagProcessorJob   # or TriggererJob
    python /opt/airflow/deploy/healthcheck.py celery-worker

Airflow's own checks (`airflow jobs check`, `celery --app ...celery_executor.app inspect
ping`) start a whole Airflow CLI: 5-10 s of CPU each, every 30 s in every container. On the
2-CPU host docs/deployment.md asks for, with other work on it, they took longer than their
10 s timeout (up to 100 s measured) and the services never turned healthy, while their load
slowed everything else. These checks ask the same questions with what the image has
(psycopg2 and Celery, without importing Airflow) in well under a second:

* ``job TYPE``: this container's job of that type (its hostname, like ``airflow jobs check
  --hostname $HOSTNAME``) is running and has heartbeaten within ``--max-age`` seconds
  (default 60: a few missed 5-second heartbeats on a busy host are not a failure);
* ``celery-worker``: the worker ``celery@$HOSTNAME`` answers a ping through the broker.

Exit 0 healthy, 1 not. The metadata database and the broker come from the same
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` and ``AIRFLOW__CELERY__BROKER_URL`` the services use.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from urllib.parse import unquote, urlsplit


def _hostname() -> str:
    return os.environ.get("HOSTNAME") or socket.getfqdn()


def check_job(job_type: str, max_age: float, hostname: str) -> str | None:
    """None when healthy, else why not."""
    import psycopg2

    url = urlsplit(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    conn = psycopg2.connect(
        host=url.hostname,
        port=url.port or 5432,
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
        dbname=url.path.lstrip("/"),
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT EXTRACT(EPOCH FROM (now() - max(latest_heartbeat))) FROM job "
                "WHERE job_type = %s AND hostname = %s AND state = 'running'",
                (job_type, hostname),
            )
            (age,) = cur.fetchone()
    finally:
        conn.close()
    if age is None:
        return f"no running {job_type} on {hostname}"
    if age > max_age:
        return f"{job_type} on {hostname}: last heartbeat {age:.0f} s ago (> {max_age:.0f} s)"
    return None


def check_celery_worker(hostname: str, timeout: float) -> str | None:
    from celery import Celery

    app = Celery(broker=os.environ["AIRFLOW__CELERY__BROKER_URL"])
    name = f"celery@{hostname}"
    replies = app.control.ping(destination=[name], timeout=timeout, limit=1)
    if not any(name in reply for reply in replies):
        return f"{name} did not answer a ping in {timeout:.0f} s"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("job", help="a job of this host is running and heartbeating")
    job.add_argument("job_type", help="e.g. DagProcessorJob, TriggererJob")
    job.add_argument("--max-age", type=float, default=60.0)
    worker = commands.add_parser("celery-worker", help="this host's Celery worker answers")
    worker.add_argument("--timeout", type=float, default=5.0)
    for p in (job, worker):
        p.add_argument("--hostname", default=None, help="default: $HOSTNAME")
    args = parser.parse_args(argv)
    hostname = args.hostname or _hostname()
    try:
        if args.command == "job":
            problem = check_job(args.job_type, args.max_age, hostname)
        else:
            problem = check_celery_worker(hostname, args.timeout)
    except Exception as exc:  # unreachable database or broker: unhealthy, said in one line
        problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
