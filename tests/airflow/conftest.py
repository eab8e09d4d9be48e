"""A real Airflow for the tests of this folder, in its production shape: api-server,
scheduler (CeleryExecutor), dag-processor and two Celery workers on a Redis broker of the
test's own, as subprocesses (tests/support/airflow_server.py), the metadata DB on the
tests' PostgreSQL server, the DAG's two connections (environment variables of every
component) pointing at a OneFile simulator over HTTP on 127.0.0.1 and a PICSWeb database
on the same server. The DAG's alerts go to a local SMTP server (aiosmtpd, the
``sync_alerts_smtp`` connection) and its run notes through the api-server itself (the
``airflow_api`` connection, as the ``sync-notes`` user). Airflow is set up and started
from docs/own-airflow.md (see tests/support/own_airflow.py): each process gets only the
connections that page gives it.

Airflow starts once per test session, at the first test here that needs it, and stops as
soon as the last test of this folder is done (package scope: in a whole-suite run it does
not idle on, taking CPU from the suites after it), also when tests fail. The tests share
one Airflow, one simulator and one PICSWeb, so each picks its own logical dates and looks
only at its own runs.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from onefile_simulator import OneFileSimulator, generate_dataset
from sync_demo.dag_runs import DAG_ID, connection_env
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.airflow.world import DAILY_RUN_CONF, DAILY_RUN_DAY, AirflowWorld, at_0200_london
from tests.support import own_airflow
from tests.support.airflow_server import AirflowServer
from tests.support.smtp import SmtpServer

# Small backoff so a run that meets an injected OneFile fault fails in seconds.
FAST_HOOK = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "timeout_seconds": 5}

ALERT_TO = "data-team@example.org"
ALERT_FROM = "airflow@example.org"

_SUMMARY: list[str] = []

# The alert and note checks look at the runs the other tests of this folder made (a failed
# run's mail, the shared run's note): they run last of this folder (never after another
# folder's tests, which would stop and start Airflow again).
LAST_MODULES = ("test_alerts_and_notes.py",)


def pytest_collection_modifyitems(session, config, items):
    here = Path(__file__).parent
    last = [item for item in items if item.path.parent == here and item.path.name in LAST_MODULES]
    rest = [item for item in items if item not in last]
    ours = [i for i, item in enumerate(rest) if item.path.parent == here]
    if not last or not ours:
        return
    at = ours[-1] + 1  # right after this folder's other tests
    items[:] = rest[:at] + last + rest[at:]


def alert_connection_env(smtp: SmtpServer) -> dict[str, str]:
    """The alert connection ``sync_alerts_smtp`` to the local SMTP server (the
    dag-processor runs the DAG's failure callback). The note connection ``airflow_api``
    (the ``sync-notes`` user) is made as docs/own-airflow.md makes it."""
    return {"AIRFLOW_CONN_SYNC_ALERTS_SMTP": smtp.connection_json(ALERT_TO, ALERT_FROM)}


def pytest_terminal_summary(terminalreporter):
    for line in _SUMMARY:
        terminalreporter.write_line(f"tests/airflow: {line}")


@pytest.fixture(scope="package")
def airflow_world(pg_server, request) -> AirflowWorld:
    dataset = generate_dataset(seed=11, organisations=2, learners=8)
    picsweb_url = pg_server.create_database("picsweb_airflow_server")
    picsweb = sa.create_engine(picsweb_url)
    create_picsweb_tables(picsweb)
    load_picsweb_rows(picsweb, dataset.picsweb)
    # A customer token no other text contains, so a test can look for it in every log.
    sim = OneFileSimulator(dataset.onefile, customer_token=f"cust-{secrets.token_hex(12)}")
    sim.start()
    smtp = SmtpServer(password=f"smtp-{secrets.token_hex(12)}").start()
    airflow = AirflowServer(
        home=Path(tempfile.mkdtemp(prefix="picsweb-airflow-server-")),
        metadata_url=pg_server.create_database("airflow_metadata"),
    )
    airflow.extra_env = {
        **connection_env(sim.base_url, sim.customer_token, picsweb_url, FAST_HOOK),
        **alert_connection_env(smtp),
    }
    failed_before = request.session.testsfailed
    try:
        airflow.start(DAG_ID)
        # The OneFile tasks never start without their pool (the REST API is quicker
        # than a CLI process; the runbook tests run `airflow pools set` themselves).
        # docs/own-airflow.md's pool (test_runbook_commands types that command itself).
        _pools, _set, name, slots, description = own_airflow.command("pool")
        airflow.api(
            "POST",
            "/api/v2/pools",
            ok=(200, 201),
            json={"name": name, "slots": int(slots), "description": description},
        )
        world = AirflowWorld(
            airflow=airflow,
            dataset=dataset,
            sim=sim,
            picsweb=picsweb,
            smtp=smtp,
            alert_to=ALERT_TO,
        )
        yield world
    finally:
        airflow.stop()
        sim.stop()
        smtp.stop()
        picsweb.dispose()
        shutil.rmtree(airflow.secrets_dir, ignore_errors=True)
        if request.session.testsfailed == failed_before:
            shutil.rmtree(airflow.home, ignore_errors=True)
        else:  # component output and task logs, for whoever reads the failure
            _SUMMARY.append(f"Airflow home kept for its logs: {airflow.home}")


@pytest.fixture(scope="package")
def daily_run(airflow_world) -> str:
    """A full (manual) run for DAILY_RUN_DAY with a Param overridden (DAILY_RUN_CONF),
    triggered through the REST API and not waited for: tests that need it finished ask
    for ``finished_daily_run``; others run beside it meanwhile."""
    airflow_world.airflow.set_paused(airflow_world.dag_id, False)
    return airflow_world.trigger(at_0200_london(DAILY_RUN_DAY), **DAILY_RUN_CONF)


@pytest.fixture(scope="package")
def finished_daily_run(airflow_world, daily_run) -> str:
    state = airflow_world.wait(daily_run, timeout=240)
    airflow_world.finished_tis[daily_run] = airflow_world.tis(daily_run)
    assert state == "success", (
        f"the full run {daily_run} ended {state}: "
        f"{airflow_world.airflow.ti_summary(airflow_world.dag_id, daily_run)}"
    )
    airflow_world.finished_start[daily_run] = airflow_world.airflow.xcom(
        airflow_world.dag_id, daily_run, "start_run"
    )
    return daily_run
