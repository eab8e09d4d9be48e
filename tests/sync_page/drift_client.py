"""The app over runs with drift reports (``drift_data``) on PostgreSQL, and the helpers the
drift view's tests share: a viewer's client, one page or every page of a run's drift."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sync_page.app import URL_PREFIX, Sources, create_app

from picsweb_sync.storage.project_tables import ensure_project_tables
from tests.sync_page.drift_data import write_drift_runs
from tests.sync_page.history import write_learners

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def world(pg_server):
    engine = sa.create_engine(pg_server.create_database("sync_page_drift"))
    history = write_learners(engine, trainees=60)
    ensure_project_tables(engine)
    runs = write_drift_runs(engine, history)
    yield engine, history, runs
    engine.dispose()


@pytest.fixture
def anonymous(world, auth_manager):
    engine = world[0]
    app = create_app(Sources(picsweb=lambda: engine, staging=lambda: engine))
    parent = FastAPI()
    parent.mount(URL_PREFIX, app)
    with TestClient(parent) as client:
        yield client


@pytest.fixture
def viewer(anonymous, token):
    anonymous.headers["Authorization"] = f"Bearer {token()}"
    return anonymous


def run_url(run_id: str) -> str:
    return f"/onefile-sync/runs/{quote(run_id, safe='')}"


def api(run_id: str) -> str:
    return f"/onefile-sync/api/runs/{quote(run_id, safe='')}/drift"


def get(client, run_id, **params):
    answer = client.get(api(run_id), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def every_page(client, run_id, **params):
    rows, cursor, pages = [], None, 0
    while True:
        data = get(client, run_id, **params, **({"before": cursor} if cursor else {}))
        rows.extend(data["drift"])
        pages += 1
        cursor = data["next"]
        if cursor is None:
            return rows, pages


def key(row):
    """What identifies a stored row on the page (every generated row differs in these)."""
    return (row["reason"], row["entity"], row["field"], row["onefile_id"], row["onefile_value"])
