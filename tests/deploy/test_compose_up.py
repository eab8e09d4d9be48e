"""docker-compose.yaml and the Dockerfile run for real: `make test-compose`.

Skipped unless PICSWEB_COMPOSE_UP=1 (`make test-compose` sets it; `make test` runs that
target after the rest of the suite), so a plain `pytest` does not start a Docker engine.
tests/deploy/compose_stack.py brings the stack up (an engine of the project's own, the
stand-in base images, the project image from the Dockerfile, `docker compose up -d` with the
demo-postgres profile and two workers) and takes it all down afterwards, also on failure.

The tests run in file order on one stack: each leaves it as the next expects.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time

import pytest
import requests

from tests.deploy.compose_reviews import (
    add_reviews_to_upload,
    assert_each_uploaded_once,
    wait_for_creates_in_flight,
)
from tests.deploy.compose_stack import DAG_ID, IMAGE, WORKERS, Stack, log, running_stack
from tests.deploy.scripts import REPO

pytestmark = pytest.mark.skipif(
    os.environ.get("PICSWEB_COMPOSE_UP") != "1",
    reason="`make test-compose` runs the deployment for real (PICSWEB_COMPOSE_UP=1)",
)

DOC = (REPO / "docs" / "deployment.md").read_text()


def documented(pattern: str) -> str:
    """The one command line of docs/deployment.md matching pattern, as written there."""
    lines = [line for line in DOC.splitlines() if line.startswith("docker compose ")]
    found = [line for line in lines if re.search(pattern, line)]
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope="module")
def stack():
    with running_stack() as up:
        yield up


@pytest.fixture(scope="module")
def demo_run(stack: Stack) -> str:
    """The demo-trigger's run (demo__<day>), finished."""
    rows = stack.sql("SELECT run_id FROM dag_run WHERE run_id LIKE 'demo\\_\\_%'")
    assert rows, "demo-trigger triggered no run"
    run_id = rows[0][0]
    stack.wait_run(run_id)
    return run_id


def _workers(stack: Stack) -> list[dict]:
    return [
        c
        for c in stack.containers()
        if c["Config"]["Labels"].get("com.docker.compose.service") == "airflow-worker"
    ]


def test_every_service_is_healthy_with_two_workers(stack):
    containers = stack.wait_healthy(timeout=60)
    services = {}
    for c in containers:
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        services.setdefault(service, []).append(c)
    assert len(services["airflow-worker"]) == WORKERS
    for name in ("airflow-init", "picsweb-demo-init", "demo-trigger"):
        assert [c["State"]["ExitCode"] for c in services[name]] == [0], name
    for name in (
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "picsweb-postgres",
        "onefile-simulator",
    ):
        assert services[name][0]["State"]["Health"]["Status"] == "healthy", name
    # Every Airflow container runs the project image, as the image's user.
    for c in services["airflow-worker"] + services["airflow-scheduler"]:
        assert c["Config"]["Image"] == IMAGE
        assert c["Config"]["User"] == "50000:0"


def test_the_demo_run_succeeds(stack, demo_run):
    assert stack.run_state(demo_run) == "success"
    # The sync wrote its run record to PICSWeb (on picsweb-postgres), as it would to SQL Server.
    rows = stack.sql(
        f"SELECT outcome FROM sync_run WHERE run_id = '{demo_run}'", database="picsweb"
    )
    assert rows and rows[0][0], rows


def _demo_day(demo_run: str) -> dt.date:
    return dt.date.fromisoformat(demo_run.removeprefix("demo__"))


def _try_number(stack: Stack, run_id: str, task_id: str) -> int:
    rows = stack.sql(
        f"SELECT try_number FROM task_instance WHERE run_id = '{run_id}' AND task_id = '{task_id}'"
    )
    return int(rows[0][0])


def test_a_run_triggered_with_params_survives_a_scheduler_restart(stack, demo_run):
    # Reviews for this run to upload: each reaches OneFile once, the restart notwithstanding.
    uploads = add_reviews_to_upload(stack, 3, _demo_day(demo_run) + dt.timedelta(days=2), "07:13")
    command = documented(r"airflow dags trigger onefile_picsweb_sync --conf")
    stack.shell(command, timeout=600)
    rows = stack.sql(
        "SELECT run_id, conf FROM dag_run WHERE run_type = 'manual' "
        "AND run_id NOT LIKE 'demo\\_\\_%' ORDER BY id DESC"
    )
    assert rows, "no manual run"
    run_id, conf = rows[0]
    given = json.loads(re.search(r"--conf '(.+)'$", command)[1])
    assert json.loads(conf) == given
    # In the middle of the run: its first tasks done, the rest still to come.
    stack.wait_task_state(run_id, "start_run", {"success"}, timeout=900)
    assert stack.run_state(run_id) == "running"
    stack.dc("restart", "airflow-scheduler", timeout=600)
    stack.wait_run(run_id)
    stack.wait_healthy(timeout=300)
    assert_each_uploaded_once(stack, uploads)


def test_workers_killed_during_push_reviews_upload_each_review_once(stack, demo_run):
    """`docker compose kill airflow-worker` (both) while push_reviews waits for OneFile's
    answer to a Review call, then the workers started again: the scheduler finds the task
    without a heartbeat (AIRFLOW_TASK_HEARTBEAT_TIMEOUT, shortened for the test stack) and
    retries it; the retry waits for the killed try's lock to go stale, settles the create
    whose answer was lost (found in OneFile by what was sent, not sent again) and sends the
    rest. The run succeeds and every review is in OneFile once, linked once in PICSWeb."""
    uploads = add_reviews_to_upload(stack, 6, _demo_day(demo_run) + dt.timedelta(days=3), "07:41")
    run_id = f"killed_workers__{int(time.time())}"
    stack.dc(
        "exec",
        "-T",
        "airflow-scheduler",
        "airflow",
        "dags",
        "trigger",
        DAG_ID,
        "--run-id",
        run_id,
        timeout=600,
    )
    in_flight = wait_for_creates_in_flight(stack, run_id)
    stack.dc("kill", "airflow-worker", timeout=300)
    assert stack.run_state(run_id) == "running"
    state = stack.sql(
        f"SELECT state FROM task_instance WHERE run_id = '{run_id}' AND task_id = 'push_reviews'"
    )
    assert state == [["running"]], state
    killed_try = _try_number(stack, run_id, "push_reviews")
    log(f"workers killed during push_reviews try {killed_try}; creates in flight: {in_flight}")
    stack.dc("start", "airflow-worker", timeout=300)
    stack.wait_healthy(timeout=600)
    stack.wait_run(run_id, timeout=1800)
    assert _try_number(stack, run_id, "push_reviews") > killed_try
    linked = assert_each_uploaded_once(stack, uploads)
    # The creates in flight at the kill were settled: each linked to the review it made.
    assert set(in_flight) <= set(uploads), (in_flight, uploads)
    settled = stack.sql(
        "SELECT target_id, state, result_id FROM sync_outbox "
        f"WHERE run_id = '{run_id}' AND kind = 'review_create' "
        f"AND target_id IN ({', '.join(map(str, in_flight))}) ORDER BY target_id",
        database="picsweb",
    )
    assert settled == [[str(r), "sent", str(linked[r])] for r in sorted(in_flight)], settled
    assert len(_workers(stack)) == WORKERS


def test_tasks_ran_on_both_workers(stack, demo_run):
    hostnames = {c["Config"]["Hostname"] for c in _workers(stack)}
    used = {
        row[0]
        for row in stack.sql("SELECT DISTINCT hostname FROM task_instance WHERE state = 'success'")
    }
    assert hostnames <= used, (hostnames, used)


def test_the_sync_page_answers_after_a_login_and_refuses_without(stack, demo_run):
    url = f"{stack.base_url()}/onefile-sync/api/runs"
    assert requests.get(url, timeout=120).status_code == 401
    token = stack.token(
        stack.env.get("AIRFLOW_ADMIN_USERNAME", "admin"), stack.env["AIRFLOW_ADMIN_PASSWORD"]
    )
    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert answer.status_code == 200, answer.text[:300]
    assert demo_run in json.dumps(answer.json())
    page = requests.get(
        f"{stack.base_url()}/onefile-sync/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_the_preflight_inside_a_worker(stack, demo_run):
    done = stack.shell(documented(r"picsweb_sync\.preflight"), check=False, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_clearing_a_task_of_an_old_run_runs_it_again(stack, demo_run):
    day = demo_run.removeprefix("demo__")
    template = documented(r"airflow tasks clear onefile_picsweb_sync -t push_reviews")
    command = re.sub(r"-s \S+ -e \S+", f"-s {day} -e {day}T23:59", template)
    push = f"FROM task_instance WHERE run_id = '{demo_run}' AND task_id = 'push_reviews'"
    before = stack.sql(f"SELECT try_number, end_date {push}")[0]
    cleared_at = stack.sql("SELECT now()")[0][0]
    stack.shell(command, timeout=600)
    stack.wait_task_state(demo_run, "push_reviews", {"success"}, timeout=900)
    stack.wait_run(demo_run)
    # It ran again: a later try, ended after the clear.
    after = stack.sql(f"SELECT try_number, end_date > '{cleared_at}'::timestamptz {push}")[0]
    assert int(after[0]) > int(before[0]) and after[1] == "t", (before, after)


def test_a_three_day_backfill(stack, demo_run):
    """The documented backfill, for the three days before the scheduled run's."""
    day = dt.date.fromisoformat(demo_run.removeprefix("demo__"))
    first, last = day - dt.timedelta(days=4), day - dt.timedelta(days=2)
    template = documented(r"airflow backfill create --dag-id onefile_picsweb_sync")
    command = re.sub(
        r"--from-date \S+ --to-date \S+",
        f"--from-date {first} --to-date {last}T23:59",
        template,
    )
    stack.shell(command, timeout=600)
    deadline = time.monotonic() + 1800
    while True:
        runs = stack.sql("SELECT run_id, state FROM dag_run WHERE run_type = 'backfill'")
        if len(runs) == 3 and all(state == "success" for _, state in runs):
            break
        failed = [run for run in runs if run[1] == "failed"]
        assert not failed and time.monotonic() < deadline, runs
        time.sleep(10)
    log(f"backfill: {sorted(run_id for run_id, _ in runs)}")


def test_no_secret_in_the_logs_or_the_image(stack, demo_run):
    assert stack.secrets, "no secrets generated"
    logs = stack.dc("logs", "--no-color", quiet=True, timeout=300).stdout
    history = stack.docker("history", "--no-trunc", IMAGE, quiet=True).stdout
    inspect = stack.docker("image", "inspect", IMAGE, quiet=True).stdout
    # The image's files: the file system of a container made from it (not started), as the
    # uncompressed tar stream `docker export` writes, searched for every secret at once.
    cid = stack.docker("create", IMAGE, quiet=True).stdout.strip()
    patterns = stack.folder.parent / "secrets.txt"
    patterns.write_text("\n".join(stack.secrets.values()) + "\n")
    try:
        found = stack.run(
            ["bash", "-c", f"docker export {cid} | grep -a -o -F -f {patterns} | sort -u"],
            check=False,
            quiet=True,
            timeout=900,
        ).stdout.split()
        names = stack.run(
            ["bash", "-c", f"docker export {cid} | tar -t"], quiet=True, timeout=900
        ).stdout.splitlines()
    finally:
        stack.docker("rm", cid, quiet=True, check=False)
        patterns.unlink()
    assert not [name for name, value in stack.secrets.items() if value in found]
    assert not [n for n in names if n.rstrip("/").endswith((".env", "build-ca.pem"))], (
        "in the image"
    )
    for name, value in stack.secrets.items():
        assert value not in logs, f"{name} in docker compose logs"
        assert value not in history and value not in inspect, f"{name} in the image's history"


def test_down_and_up_keeps_history_tables_and_page(stack, demo_run):
    runs_before = stack.sql("SELECT run_id, state FROM dag_run ORDER BY run_id")
    syncs_before = stack.sql("SELECT run_id FROM sync_run ORDER BY run_id", database="picsweb")
    stack.dc("down", timeout=600)
    stack.dc("up", "-d", "--no-build", "--scale", f"airflow-worker={WORKERS}", timeout=1800)
    stack.wait_healthy()
    # Every run kept, with its state (a scheduled run may have come due meanwhile).
    runs_after = stack.sql("SELECT run_id, state FROM dag_run ORDER BY run_id")
    assert {tuple(r) for r in runs_before} <= {tuple(r) for r in runs_after}
    syncs_after = stack.sql("SELECT run_id FROM sync_run ORDER BY run_id", database="picsweb")
    assert syncs_after == syncs_before
    token = stack.token(
        stack.env.get("AIRFLOW_ADMIN_USERNAME", "admin"), stack.env["AIRFLOW_ADMIN_PASSWORD"]
    )
    answer = requests.get(
        f"{stack.base_url()}/onefile-sync/api/runs",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert answer.status_code == 200 and demo_run in json.dumps(answer.json())
    log("down and up: history, sync tables and the page survived")
