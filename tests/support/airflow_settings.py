"""What the tests' Airflow sets beyond docs/own-airflow.md, each for a reason of the tests
(speed on a busy 2-core machine, runs started only by the tests, several workers on one
machine). tests/airflow/test_own_airflow_doc.py checks that none of these replaces one of
the page's settings but the users, which they extend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.airflow_server import AirflowServer


def harness_settings(server: AirflowServer) -> dict[str, str]:
    """What the tests set beyond docs/own-airflow.md: speed (a test waits on every
    heartbeat), runs started only by the tests, and the tests' extra users. None of these
    is needed for the sync to work (test_own_airflow_doc checks that none replaces one of
    the page's settings but the users, which it extends)."""
    return {
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # The page's users plus the tests' own (a viewer); passwords in the same file.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{user}:{role}" for user, role in server.users.items()
        ),
        "AIRFLOW__CORE__PARALLELISM": str(max(4, server.workers * server.worker_concurrency)),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__WORKERS": "1",
        # Runs are started by the tests (trigger, backfill, clear), never by the clock:
        # unpausing the DAG must not add a full run of "yesterday".
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        # A task whose worker died (no heartbeat) is failed, and so retried, after
        # 20 s instead of 5 minutes; the supervisor of a live task beats every second.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # Parsed once at start; tasks parse the file themselves when they run.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
        # No bundle clean-up process beside each worker (the DAG folder is local).
        "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL": "0",
        # The task supervisor notices its task's exit at its next wake-up, at most
        # this many seconds later (5 by default: up to 5 s lost per task).
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        # Celery results go to the metadata DB (Airflow's default, db+ the metadata URL).
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(server.worker_concurrency),
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        "PYTHONUNBUFFERED": "1",
    }


def worker_test_args(name: str, server: AirflowServer) -> tuple[str, ...]:
    """What the tests add to docs/own-airflow.md's ``airflow celery worker``: all workers
    share one machine and one AIRFLOW_HOME."""
    return (
        "--celery-hostname",
        name,
        "--concurrency",
        str(server.worker_concurrency),
        # Task logs are files in this one AIRFLOW_HOME, which the api-server reads itself:
        # no log server (all workers would want port 8793).
        "--skip-serve-logs",
        "--without-mingle",
        "--without-gossip",
    )
