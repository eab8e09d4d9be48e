"""The app over two runs' changes (``run_changes_data``) on PostgreSQL, and the helpers
the changes tests share: a viewer's client, one page or every page of a run's changes."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sync_page.app import URL_PREFIX, Sources, create_app

from tests.sync_page.history import write_history, write_learners
from tests.sync_page.run_changes_data import write_change_runs

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def world(pg_server):
    engine = sa.create_engine(pg_server.create_database("sync_page_changes"))
    history = write_history(engine, write_learners(engine, trainees=60), days=20)
    runs = write_change_runs(engine, history)
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


def _api(run_id: str) -> str:
    return f"/onefile-sync/api/runs/{quote(run_id, safe='')}/changes"


def _get(client, run_id, **params):
    answer = client.get(_api(run_id), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _all(client, run_id, **params):
    rows, cursor, pages = [], None, 0
    while True:
        data = _get(client, run_id, **params, **({"before": cursor} if cursor else {}))
        rows.extend(data["changes"])
        pages += 1
        cursor = data["next"]
        if cursor is None:
            return rows, pages


def _key(row):
    return (
        row["system"],
        row["entity"],
        row["entity_key"],
        row["field"],
        row["old_value"],
        row["new_value"],
    )


def _rejects_of(runs, run_id):
    """The run's conflicts and refusals, in the page's order (stage, source ID, reason)."""
    found = [
        r
        for r in runs.rejects
        if r["run_id"] == run_id and r["reason"].startswith(("conflict", "refused"))
    ]
    return sorted(found, key=lambda r: (r["stage"], r["source_id"], r["reason"]))
