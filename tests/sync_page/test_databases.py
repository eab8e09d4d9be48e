"""The sync page before the sync's first run (no ``sync_*`` tables yet), and with a
staging database of its own (OneFile writes audited there, PICSWeb writes in PICSWeb)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sync_page.app import URL_PREFIX, Sources, create_app

from picsweb_sync.storage.project_tables import (
    PICSWEB_SIDE_TABLES,
    ensure_project_tables,
    sync_audit,
)
from tests.sync_page.history import write_learners

HTML = {"Accept": "text/html"}


def _client(picsweb: sa.Engine, staging: sa.Engine, token: str) -> TestClient:
    parent = FastAPI()
    parent.mount(URL_PREFIX, create_app(Sources(picsweb=lambda: picsweb, staging=lambda: staging)))
    client = TestClient(parent)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def picsweb(pg_server):
    engine = sa.create_engine(
        pg_server.create_database(f"sp_picsweb_{dt.datetime.now(dt.UTC):%H%M%S%f}")
    )
    write_learners(engine, trainees=20)
    yield engine
    engine.dispose()


def test_before_the_first_run_the_page_says_so(picsweb, token):
    with _client(picsweb, picsweb, token()) as client:
        page = client.get("/onefile-sync/", headers=HTML)
        assert page.status_code == 200
        assert "has not run yet" in page.text
        assert client.get("/onefile-sync/api/runs").json() == {"runs": [], "next": None}
        assert client.get("/onefile-sync/api/chart").json() == {"points": []}
        assert client.get("/onefile-sync/api/runs/manual__x").status_code == 404
        found = client.get("/onefile-sync/api/audit", params={"q": "1"}).json()
        assert [m["trainee_id"] for m in found["learners"]] == [1]
        assert found["changes"] == []
    # nothing was created by looking
    assert not sa.inspect(picsweb).has_table("sync_run")


def test_audit_rows_of_both_databases_merge_newest_first(picsweb, pg_server, token):
    """With a staging database of its own, PICSWeb's changes are audited in PICSWeb and
    OneFile's in staging: the search reads both."""
    staging = sa.create_engine(
        pg_server.create_database(f"sp_staging_{dt.datetime.now(dt.UTC):%H%M%S%f}")
    )
    ensure_project_tables(staging)
    ensure_project_tables(picsweb, PICSWEB_SIDE_TABLES)
    base = dt.datetime(2026, 3, 1, 2, tzinfo=dt.UTC).replace(tzinfo=None)
    rows = {
        picsweb: [
            ("picsweb", "trainee_qualification", "11", "elements_done", base),
            ("picsweb", "review", "11", "onefile_system_id", base + dt.timedelta(hours=2)),
        ],
        staging: [
            (
                "onefile",
                "LearningAim",
                "500011",
                "RegistrationNumber",
                base + dt.timedelta(hours=1),
            ),
            (
                "onefile",
                "Review",
                "900011",
                "created_from_picsweb_review",
                base + dt.timedelta(hours=3),
            ),
        ],
    }
    for engine, changes in rows.items():
        with engine.begin() as conn:
            conn.execute(
                sa.insert(sync_audit),
                [
                    {
                        "run_id": "manual__r",
                        "system": s,
                        "entity": e,
                        "entity_key": k,
                        "field": f,
                        "old_value": None,
                        "new_value": "v",
                        "changed_at": when,
                    }
                    for s, e, k, f, when in changes
                ],
            )
    with _client(picsweb, staging, token()) as client:
        found = client.get("/onefile-sync/api/audit", params={"q": "1", "by": "trainee"}).json()
        assert [c["field"] for c in found["changes"]] == [
            "created_from_picsweb_review",
            "onefile_system_id",
            "RegistrationNumber",
            "elements_done",
        ]
        page_one = client.get(
            "/onefile-sync/api/audit", params={"q": "1", "by": "trainee", "limit": 3}
        ).json()
        assert len(page_one["changes"]) == 3 and page_one["next"]
    staging.dispose()
