"""A headless Chromium for the real-Airflow UI tests: Debian's ``chromium`` (installed by
``scripts/ensure-browser.sh``) driven by Playwright, signed in through the UI's login form
as a named user of the test Airflow, and a folder for the screenshots kept as artefacts."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.airflow_server import AirflowServer

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1440, "height": 900}


def artefacts_folder() -> Path:
    """Where screenshots are kept (``PICSWEB_TEST_ARTIFACTS`` chooses it)."""
    folder = Path(
        os.environ.get("PICSWEB_TEST_ARTIFACTS")
        or Path(tempfile.gettempdir()) / "picsweb-airflow-artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def chromium_page(viewport: dict[str, int] = VIEWPORT) -> Iterator:
    """A page of a fresh headless Chromium (no cookies), closed with its browser and
    Playwright's driver afterwards, also on failure. Skips when there is no chromium."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed: run scripts/ensure-browser.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=viewport)
            context.set_default_timeout(120_000)  # a hang guard: a busy api-server is slow
            yield context.new_page()
        finally:
            browser.close()


@contextlib.contextmanager
def kept_on_failure(page, path: Path) -> Iterator[None]:
    """On a failure inside, a screenshot of what the page showed is kept at ``path``."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path))
        raise


def log_in(page, airflow: AirflowServer, user: str = "admin", after=None) -> None:
    """Sign in through the UI's login form (the UI sends a visitor without a session there
    once it has loaded). ``after``: a locator that shows when no login is asked for."""
    page.goto(f"{airflow.base_url}/")
    form = page.get_by_label("Username")
    (form if after is None else form.or_(after)).first.wait_for(state="visible")
    if form.count():
        form.fill(user)
        page.get_by_label("Password").fill(airflow.password(user))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        page.wait_for_load_state("networkidle")
    assert "/login" not in page.url, f"still at the login page: {page.url}"
