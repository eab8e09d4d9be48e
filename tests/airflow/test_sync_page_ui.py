"""The sync page in the real Airflow, as a person uses it: a headless Chromium (Debian's
``chromium``, driven by Playwright) logs in through the UI's login form, opens "OneFile
sync" from the navigation bar, sees the shared full run in the run history and the charts,
opens that run, then searches the audit for a learner the run changed. Then it reads old →
new values from the changes rows of that run and of a dry run made after an edit in
PICSWeb. A screenshot of each step is kept as a test artefact; with
``UPDATE_README_SCREENSHOT=1`` the history and the dry run's rows are copied to
docs/img/sync-page.png and docs/img/sync-page-dry-run.png, the pictures README.md shows.

Also, over plain HTTP, the plugin's endpoints in the real api-server refuse a request
without a token (401) and with a forged one, and answer a viewer's token.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from tests.airflow.browser import artefacts_folder, chromium_page, kept_on_failure, log_in
from tests.airflow.conftest import _SUMMARY as SUMMARY
from tests.airflow.world import at_0200_london
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


# ----- one run's and one dry run's changes, row by row ------------------------------------------
DRY_RUN_DAY = date(2026, 5, 12)  # no other test's day
README_DRY_RUN_SHOT = REPO / "docs" / "img" / "sync-page-dry-run.png"
EDITED_ELEMENTS_DONE = 987  # a value no generated qualification holds


def _row_cells(row) -> dict[str, str]:
    """The cells of a change row (templates/_changes.html's columns) by name."""
    names = ["direction", "status", "learner", "trainee_id", "onefile_id", "subject"]
    names += ["entity", "field", "old", "new", "reason"]
    return dict(zip(names, row.locator("td").all_inner_texts(), strict=True))


def _first_audited(world, run_id: str):
    with world.picsweb.connect() as conn:
        return conn.execute(
            sa.select(pt.sync_audit)
            .where(pt.sync_audit.c.run_id == run_id)
            .order_by(pt.sync_audit.c.audit_id)
            .limit(1)
        ).first()


def _qualification_to_edit(world):
    """A linked qualification without units (rule 1 then sets its element counts from
    OneFile) whose ``elements_done`` equals OneFile's ``ElementsDone`` (set by the runs)."""
    tq, unit = pw.trainee_qualification, pw.trainee_qualification_unit
    done = {a["ID"]: a.get("ElementsDone") for a in world.sim.data.learning_aims}
    with world.picsweb.connect() as conn:
        candidates = conn.execute(
            sa.select(tq.c.tq_id, tq.c.onefile_learning_aim_id, tq.c.elements_done)
            .where(
                tq.c.onefile_learning_aim_id.isnot(None),
                tq.c.elements_done.isnot(None),
                ~sa.exists().where(unit.c.tq_id == tq.c.tq_id),
            )
            .order_by(tq.c.tq_id)
            .limit(500)
        ).all()
    return next(
        (c for c in candidates if done.get(c.onefile_learning_aim_id) == c.elements_done), None
    )


@pytest.fixture(scope="module")
def dry_run_with_a_change(airflow_world, finished_daily_run):
    """A dry run after someone edited a qualification's ``elements_done`` in PICSWeb: it
    would set it back to OneFile's value (and writes nothing). The edit is undone after."""
    world = airflow_world
    world.airflow.wait_until(
        lambda: not world.runs(state=["queued", "running"]), 300, "the DAG's runs to end"
    )
    edited = _qualification_to_edit(world)
    assert edited is not None, "the generated PICSWeb has no linked qualification without units"
    tq = pw.trainee_qualification
    with world.picsweb.begin() as conn:
        conn.execute(
            sa.update(tq)
            .where(tq.c.tq_id == edited.tq_id)
            .values(elements_done=EDITED_ELEMENTS_DONE)
        )
    try:
        run_id = world.trigger(at_0200_london(DRY_RUN_DAY), dry_run=True)
        assert world.wait(run_id, timeout=240) == "success", world.airflow.ti_summary(
            world.dag_id, run_id
        )
        with world.picsweb.connect() as conn:
            still = conn.execute(sa.select(tq.c.elements_done).where(tq.c.tq_id == edited.tq_id))
            assert still.scalar() == EDITED_ELEMENTS_DONE  # a dry run writes nothing
    finally:
        with world.picsweb.begin() as conn:
            conn.execute(
                sa.update(tq)
                .where(tq.c.tq_id == edited.tq_id)
                .values(elements_done=edited.elements_done)
            )
    return run_id, edited


def test_a_run_and_a_dry_run_list_their_changes_old_and_new(
    airflow_world, finished_daily_run, dry_run_with_a_change, browser_page, artefacts
):
    world, page = airflow_world, browser_page
    airflow = world.airflow
    dry_run_id, edited = dry_run_with_a_change
    first = _first_audited(world, finished_daily_run)
    assert first is not None, "the shared run changed nothing"
    with kept_on_failure(page, artefacts / "failed-sync-page-changes.png"):
        log_in(page, airflow, after=_nav_button(page))
        page.goto(f"{airflow.base_url}/onefile-sync/runs/{quote(finished_daily_run, safe='')}")
        rows = page.locator("#change-rows tr.status-changed")
        rows.first.wait_for(state="visible")
        cells = _row_cells(rows.first)
        blank = "(blank)"
        assert (cells["entity"], cells["field"]) == (
            f"{first.entity} {first.entity_key}",
            first.field,
        )
        assert (cells["old"], cells["new"]) == (
            first.old_value if first.old_value is not None else blank,
            first.new_value if first.new_value is not None else blank,
        )
    page.screenshot(path=str(artefacts / "sync-page-changes.png"), full_page=True)

    with kept_on_failure(page, artefacts / "failed-sync-page-dry-run.png"):
        url = f"{airflow.base_url}/onefile-sync/runs/{quote(dry_run_id, safe='')}"
        page.goto(f"{url}?entity=trainee_qualification&field=elements_done#changes")
        page.get_by_role("heading", name="What this dry run would change, row by row").wait_for(
            state="visible"
        )
        expect(page.locator(".preview")).to_contain_text("before letting the real run write")
        mine = page.locator("#change-rows tr.status-would-change").filter(
            has_text=f"trainee_qualification {edited.tq_id}"
        )
        mine.first.wait_for(state="visible")
        cells = _row_cells(mine.first)
        assert cells["field"] == "elements_done"
        assert cells["old"] == str(EDITED_ELEMENTS_DONE)
        assert cells["new"] == str(edited.elements_done)  # OneFile's, which the run restored
        assert cells["learner"] and cells["trainee_id"]
        page.locator("#changes").scroll_into_view_if_needed()
    shot = artefacts / "sync-page-dry-run.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        shutil.copyfile(shot, README_DRY_RUN_SHOT)
