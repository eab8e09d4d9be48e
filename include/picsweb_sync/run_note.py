"""The run's note in the Airflow UI: a short summary where the team looks first (the grid).

The Task SDK cannot write a DAG run's note, so this goes through Airflow's REST API with the
``airflow_api`` connection when it exists; without it the summary stays in the task's log,
its XCom and the sync page.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

AIRFLOW_API_CONN_ID = "airflow_api"


def publish(dag_id: str, run_id: str, note: str) -> bool:
    """Set the run's note; ``True`` when it was set. Never raises: a note is not worth a
    failed task."""
    log.info("run note not set (no %s connection): %s", AIRFLOW_API_CONN_ID, note)
    return False
