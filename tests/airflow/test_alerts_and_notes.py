"""Alerts and run notes on the real Airflow (CeleryExecutor, dag-processor): the DAG's
``on_failure_callback`` mails the local SMTP server (``sync_alerts_smtp``) from the
dag-processor, and ``finish_run`` sets the run's note through the api-server
(``airflow_api``, as the admin user).

These tests run last of this folder (tests/airflow/conftest.py) and reuse the runs the
others made: the shared daily run (a note, no mail) and a failed run (the wrong-token
scenario's, when it ran). They add one run of their own: a full run whose rejects cross
the ``max_rejects`` threshold Param (0), which fails it and mails the team naming it.
"""

from __future__ import annotations

import time
from datetime import date
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from picsweb_sync.storage import project_tables as pt
from tests.airflow.world import AirflowWorld, at_0200_london

pytestmark = pytest.mark.airflow_server

# A day no other test of this folder runs.
THRESHOLD_DAY = date(2026, 4, 20)
# When there is no failed run of the other tests (this file alone): a run whose OneFile
# connection does not exist fails at its first extract.
FALLBACK_FAILED_DAY = date(2026, 4, 21)
MAIL_TIMEOUT = 180  # the run's end -> the scheduler -> the dag-processor -> SMTP (busy machine)


def _links(world: AirflowWorld, run_id: str) -> tuple[str, str]:
    base, quoted = world.airflow.base_url, quote(run_id, safe="")
    return f"{base}/dags/{world.dag_id}/runs/{quoted}", f"{base}/onefile-sync/runs/{quoted}"


def _mails_about(world: AirflowWorld, run_id: str) -> list:
    return [m for m in world.smtp.received() if f" run {run_id} " in m.subject]


def _one_mail_about(world: AirflowWorld, run_id: str):
    world.smtp.wait_for(
        lambda m: f" run {run_id} " in m.subject, MAIL_TIMEOUT, f"alert for run {run_id}"
    )
    time.sleep(2)  # a second mail would come right after the first
    mails = _mails_about(world, run_id)
    assert len(mails) == 1, [m.subject for m in mails]
    return mails[0]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _idle(world: AirflowWorld) -> None:
    """Until no run of the DAG is queued or running (the simulator's injected rows go to
    the next run that reads them)."""
    world.airflow.wait_until(
        lambda: not world.runs(state=["queued", "running"]), 300, "the DAG's runs to end"
    )


@pytest.fixture(scope="module")
def failed_run(airflow_world) -> str:
    """A failed run (not by a threshold) the other tests made, preferring the wrong-token
    scenario's; else one of this module's own."""
    world = airflow_world
    failed = world.runs(state=["failed"])
    records = {r["dag_run_id"]: world.sync_run(r["dag_run_id"]) for r in failed}
    wrong_token = [r["dag_run_id"] for r in failed if (r.get("conf") or {}).get("onefile_conn_id")]
    candidates = wrong_token + [
        run_id
        for run_id, record in records.items()
        if record and record["failure"] and not record["failure"].startswith("thresholds")
    ]
    if candidates:
        return candidates[0]
    world.airflow.set_paused(world.dag_id, False)
    run_id = world.trigger(
        at_0200_london(FALLBACK_FAILED_DAY), onefile_conn_id="alerts_test_no_such_connection"
    )
    assert world.wait(run_id, timeout=240) == "failed"
    return run_id


@pytest.fixture(scope="module")
def threshold_run(airflow_world, finished_daily_run) -> str:
    """A full run with ``max_rejects: 0`` and one row OneFile sends that is not a learning
    aim at all (a reject): it syncs, then fails at check_thresholds."""
    world = airflow_world
    _idle(world)
    world.sim.faults.inject_rows("LearningAim", [None])
    try:
        run_id = world.trigger(at_0200_london(THRESHOLD_DAY), max_rejects=0)
        assert world.wait(run_id, timeout=240) == "failed", world.airflow.ti_summary(
            world.dag_id, run_id
        )
    finally:
        world.sim.faults.clear()
    return run_id


def test_a_failed_run_sends_one_mail_with_its_links_and_failure(airflow_world, failed_run):
    world = airflow_world
    mail = _one_mail_about(world, failed_run)
    assert mail.rcpt_tos == [world.alert_to]
    assert mail.subject == f"[{world.dag_id}] run {failed_run} failed"
    for link in _links(world, failed_run):
        assert link in mail.text
    record = world.sync_run(failed_run)
    assert record is not None and record["failure"], record
    assert _flat(record["failure"]) in _flat(mail.text)
    if "onefile_bad" in record["failure"]:  # the wrong-token scenario: OneFile said 401
        assert "HTTP 401" in mail.text


def test_the_shared_run_has_its_note_and_sent_no_mail(airflow_world, finished_daily_run):
    world = airflow_world
    run = world.airflow.dag_run(world.dag_id, finished_daily_run)
    note = run["note"] or ""
    assert _links(world, finished_daily_run)[1] in note, note
    with world.picsweb.connect() as conn:
        learners = conn.execute(
            sa.select(pt.sync_run_count.c.value).where(
                pt.sync_run_count.c.run_id == finished_daily_run,
                pt.sync_run_count.c.stage.like("extract_learners%"),
                pt.sync_run_count.c.name == "staged",
            )
        ).scalars()
        total = sum(learners)
    assert total > 0
    assert f"{total} learners" in note, note
    assert _mails_about(world, finished_daily_run) == []


def test_a_run_over_a_threshold_mails_naming_it(airflow_world, threshold_run):
    world = airflow_world
    states = world.states(threshold_run)
    assert states[("check_thresholds", -1)] == "failed", states
    assert states[("finish_run", -1)] == "success", states
    with world.picsweb.connect() as conn:
        crossed = conn.execute(
            sa.select(pt.sync_run_summary.c.thresholds_crossed).where(
                pt.sync_run_summary.c.run_id == threshold_run
            )
        ).scalar_one()
    assert crossed and crossed.startswith("rejects ") and "> max_rejects 0" in crossed, crossed
    mail = _one_mail_about(world, threshold_run)
    assert mail.subject == f"[{world.dag_id}] run {threshold_run} thresholds crossed"
    assert crossed in mail.text
    for link in _links(world, threshold_run):
        assert link in mail.text
    # From the dag-processor: plain text beside the HTML, the UK day the run covers (a
    # REST trigger at 02:00 UK covers the day ending then) and the first step to take.
    parts = [p for p in mail.message.walk() if p.get_content_maintype() == "text"]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert "UK day covered: Sun 19 Apr 2026 (19 Apr 02:00 – 20 Apr 02:00 UK time)" in mail.text
    assert "Rejects: open the run's page on the sync page" in mail.text
    note = world.airflow.dag_run(world.dag_id, threshold_run)["note"] or ""
    assert "> max_rejects 0" in note, note


def test_no_password_or_token_in_any_file_under_the_airflow_home(airflow_world, threshold_run):
    world, airflow = airflow_world, airflow_world.airflow
    secrets = {f"{user}'s password": airflow.password(user) for user in airflow.users}
    secrets["the SMTP password"] = world.smtp.password
    secrets["the test client's API token"] = airflow._token or airflow.token("admin")
    home = airflow.home
    files = [p for p in home.rglob("*") if p.is_file() and p != airflow.passwords_file]
    assert any("dag_id=" in str(p) for p in files), f"no task log under {home}"
    assert airflow.component_log("dag-processor").exists()
    found = [
        (str(path.relative_to(home)), what)
        for path in files
        for what, secret in secrets.items()
        if secret.encode() in _read(path)
    ]
    assert found == [], found
    for mail in world.smtp.received():
        for what, secret in secrets.items():
            assert secret.encode() not in mail.raw, (mail.subject, what)
        assert world.sim.customer_token.encode() not in mail.raw, mail.subject


def _read(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # a file removed while walking
        return b""
