"""The Airflow UI as a person sees it: a headless Chromium (Debian's ``chromium``, driven by
Playwright; ``scripts/ensure-browser.sh`` installs it) opens the DAG's grid and one task's
log and keeps a screenshot of each as a test artefact.

The folder is printed at the end of the session (``PICSWEB_TEST_ARTIFACTS`` chooses it);
with ``UPDATE_README_SCREENSHOT=1`` the grid is also copied to docs/img/airflow-grid.png,
the picture README.md shows. Runs right after test_real_scheduler.py (file order), so the
grid shows its runs: the shared full run, the three backfill runs (reviews only: the other
tasks skipped) and the run whose learner extract failed. Skipped, saying why, only when
there is no chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.airflow.browser import VIEWPORT, artefacts_folder, chromium_page, kept_on_failure, log_in
from tests.airflow.conftest import _SUMMARY as SUMMARY
from tests.support.airflow_server import REPO

pytestmark = pytest.mark.airflow_server

README_GRID = REPO / "docs" / "img" / "airflow-grid.png"
# The grid alone (details panel collapsed) needs less width: its runs stay near their tasks.
GRID_VIEWPORT = {"width": 1000, "height": 600}


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = artefacts_folder()
    SUMMARY.append(f"UI screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def page(airflow_world):
    """A headless Chromium signed in as the test Airflow's admin for the module."""
    with chromium_page() as page:
        log_in(page, airflow_world.airflow)
        yield page


def _open(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    assert "/login" not in page.url, f"the UI asked for a login again at {page.url}"


def test_the_grid_of_the_dag(airflow_world, finished_daily_run, page, artefacts):
    world = airflow_world
    page.set_viewport_size(GRID_VIEWPORT)
    with kept_on_failure(page, artefacts / "failed-airflow-grid.png"):
        _open(page, f"{world.airflow.base_url}/dags/{world.dag_id}")
        # The grid lists the DAG's tasks (a mapped one as "extract_learners [ ]") beside
        # a column per run; with the details panel collapsed it takes the whole width.
        for task_id in ("preflight", "start_run", "extract_learners", "push_reviews", "finish_run"):
            page.get_by_text(task_id).first.wait_for(state="visible")
        collapse = page.get_by_role("button", name="Collapse Details Panel")
        if collapse.count():
            collapse.first.click()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)  # the grid's own transition
    path = artefacts / "airflow-grid.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        README_GRID.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_GRID)


def _latest_full_run(world) -> str:
    """The full run that ended last in success (the shared daily run when this module runs
    alone; it may since have been taken over by the documented March backfill)."""
    runs = [
        r
        for r in world.runs(state="success", run_type="manual")
        if world.airflow.xcom(world.dag_id, r["dag_run_id"], "start_run")["plan"]["mode"] == "full"
    ]
    return max(runs, key=lambda r: r["end_date"])["dag_run_id"]


def test_the_log_of_a_mapped_extract(airflow_world, finished_daily_run, page, artefacts):
    world = airflow_world
    run_id = _latest_full_run(world)
    organisation = world.airflow.xcom(world.dag_id, run_id, "start_run")["organisation_ids"][0]
    url = (
        f"{world.airflow.base_url}/dags/{world.dag_id}/runs/{run_id}"
        "/tasks/extract_learners/mapped/0"
    )
    page.set_viewport_size(VIEWPORT)
    with kept_on_failure(page, artefacts / "failed-airflow-task-log.png"):
        _open(page, url)
        # The task's own first line names its organisation (see runtime.run_stage).
        page.get_by_text(f"organisation_id={organisation}").first.wait_for(state="visible")
        page.wait_for_load_state("networkidle")
    path = artefacts / "airflow-task-log.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
