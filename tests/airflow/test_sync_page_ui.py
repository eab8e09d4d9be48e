"""The sync page in the real Airflow, as a person uses it: a headless Chromium (Debian's
``chromium``, driven by Playwright) logs in through the UI's login form, opens "OneFile
sync" from the navigation bar, sees the shared full run in the run history and the charts,
opens that run, then searches the audit for a learner the run changed. A screenshot of
each step is kept as a test artefact; with ``UPDATE_README_SCREENSHOT=1`` the history is
copied to docs/img/sync-page.png, the picture README.md shows.

Also, over plain HTTP, the plugin's endpoints in the real api-server refuse a request
without a token (401) and with a forged one, and answer a viewer's token.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from picsweb_sync import picsweb_tables as pw
from picsweb_sync import project_tables as pt
from tests.airflow.browser import artefacts_folder, chromium_page, kept_on_failure, log_in
from tests.airflow.conftest import _SUMMARY as SUMMARY
from tests.support.airflow_server import REPO

pytestmark = pytest.mark.airflow_server

README_SHOT = REPO / "docs" / "img" / "sync-page.png"
FRAME = "iframe[title='OneFile sync']"


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = artefacts_folder()
    SUMMARY.append(f"sync page screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser_page(airflow_world):
    """A page of a fresh headless Chromium (no cookies: it must log in)."""
    with chromium_page() as page:
        yield page


def _nav_button(page):
    """The navigation bar's own "OneFile sync" button (external_views, nav_top_level)."""
    return (
        page.get_by_role("link", name="OneFile sync")
        .or_(page.get_by_role("button", name="OneFile sync"))
        .or_(page.get_by_title("OneFile sync"))
        .first
    )


def _changed_learner(world, run_id: str) -> int | None:
    """A trainee whose qualification the run changed in PICSWeb (from the audit)."""
    with world.picsweb.connect() as conn:
        keys = conn.execute(
            sa.select(pt.sync_audit.c.entity_key)
            .where(
                pt.sync_audit.c.run_id == run_id,
                pt.sync_audit.c.entity == "trainee_qualification",
            )
            .limit(1)
        ).scalars()
        key = next(iter(keys), None)
        if key is None:
            return None
        tq = pw.trainee_qualification
        return conn.execute(sa.select(tq.c.trainee_id).where(tq.c.tq_id == int(key))).scalar()


def test_the_sync_page_refuses_strangers_and_answers_a_viewer(airflow_world):
    airflow = airflow_world.airflow
    url = f"{airflow.base_url}/onefile-sync/api/runs"
    assert requests.get(url, timeout=90).status_code == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln"}
    assert requests.get(url, headers=forged, timeout=90).status_code == 401
    if not hasattr(airflow, "token"):
        pytest.skip("this test Airflow has no named users")
    viewer = {"Authorization": f"Bearer {airflow.token('viewer')}"}
    answer = requests.get(url, headers=viewer, timeout=90)
    assert answer.status_code == 200, answer.text[:300]
    assert "runs" in answer.json()


def test_the_sync_page_in_the_airflow_ui(
    airflow_world, finished_daily_run, browser_page, artefacts
):
    world, page = airflow_world, browser_page
    airflow = world.airflow
    run_id = finished_daily_run
    with kept_on_failure(page, artefacts / "failed-sync-page.png"):
        log_in(page, airflow, after=_nav_button(page))
        _nav_button(page).click()
        page.wait_for_url(lambda url: "/plugin/onefile-sync" in url)
        frame = page.frame_locator(FRAME)
        row = frame.locator(f'tr.run[data-run-id="{run_id}"]')
        row.wait_for(state="visible")
        assert "success" in row.inner_text()
        # plotly.js drew both charts (it renders each into an SVG of class main-svg).
        frame.locator("#changes-chart .main-svg").first.wait_for(state="visible")
        frame.locator("#rejects-chart .main-svg").first.wait_for(state="visible")
        page.wait_for_load_state("networkidle")
    history_shot = artefacts / "sync-page.png"
    page.screenshot(path=str(history_shot))
    assert history_shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(history_shot, README_SHOT)

    with kept_on_failure(page, artefacts / "failed-sync-page-run.png"):
        row.locator("a").first.click()
        frame.get_by_role("heading", name=f"Run {run_id}").wait_for(state="visible")
        frame.get_by_role("heading", name="Counts per stage").wait_for(state="visible")
        assert frame.locator("#stages tr").count() > 1
        # The link resolved by the browser (the page writes it relative). An assertion that
        # retries: the UI may re-render the plugin's frame once more after it loaded, which
        # a one-shot evaluate() meets as "execution context was destroyed".
        expected = f"{airflow.base_url}/dags/{world.dag_id}/runs/{quote(run_id, safe='')}"
        expect(frame.locator("#airflow-run")).to_have_js_property("href", expected, timeout=120_000)
    page.screenshot(path=str(artefacts / "sync-page-run.png"))

    trainee_id = _changed_learner(world, run_id)
    with kept_on_failure(page, artefacts / "failed-sync-page-audit.png"):
        frame.get_by_role("link", name="Audit search").click()
        search = frame.locator("input[name=q]")
        search.wait_for(state="visible")
        search.fill(str(trainee_id or 1))
        frame.get_by_role("button", name="Search").click()
        frame.locator("#matches").wait_for(state="visible")
        if trainee_id is not None:
            # Other tests may change this learner later: the run's change is among them.
            mine = frame.locator("#audit tr.change").filter(has_text=run_id)
            mine.filter(has_text="OneFile → PICSWeb").first.wait_for(state="visible")
    page.screenshot(path=str(artefacts / "sync-page-audit.png"))
