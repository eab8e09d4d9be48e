"""One run's changes on the run page, as CSV, for whom, and for an unknown run, through
the app on PostgreSQL (the rows themselves: test_run_changes.py)."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sync_page import changes
from sync_page.app import URL_PREFIX, Sources, create_app

from picsweb_sync.storage.project_tables import (
    PICSWEB_SIDE_TABLES,
    ensure_project_tables,
    sync_audit,
    sync_run,
)
from tests.sync_page import run_changes_client as client
from tests.sync_page.conftest import DENIED
from tests.sync_page.history import write_learners
from tests.sync_page.run_changes_client import HTML, _all, _api
from tests.sync_page.run_changes_data import CONFLICT, DRY, REAL

# The fixtures these tests share (pytest finds them by these names).
world, anonymous, viewer = client.world, client.anonymous, client.viewer


# ----- the run page ----------------------------------------------------------------------
def test_the_run_page_lists_changes_pages_on_and_keeps_its_filters(viewer, world):
    runs = world[2]
    url = f"/onefile-sync/runs/{quote(REAL, safe='')}"
    first = viewer.get(url, params={"direction": "picsweb"}, headers=HTML).text
    assert first.count('class="change-row') == changes.DEFAULT_CHANGES
    assert 'id="changes-first"' not in first
    assert '<option value="picsweb" selected>' in first
    next_link = html.unescape(re.search(r'id="changes-next" href="([^"]+)"', first).group(1))
    assert (
        next_link.startswith(f"../runs/{quote(REAL, safe='')}?")
        and "direction=picsweb" in next_link
    )
    second = viewer.get(
        "/onefile-sync/runs/" + next_link[len("../runs/") :].split("#")[0], headers=HTML
    ).text
    assert 'id="changes-first"' in second
    picsweb = [a for a in runs.audit if a["system"] == "picsweb"]
    first_page = changes.DEFAULT_CHANGES - 2  # after the conflict and the refusal
    expected = picsweb[first_page : first_page + changes.DEFAULT_CHANGES]
    cells = re.findall(r'<td>(\w+) (\d+)</td>\s*<td>(\w+)</td>\s*<td class="old">', second)
    assert cells == [(a["entity"], a["entity_key"], a["field"]) for a in expected]
    assert f'href="../runs/{quote(REAL, safe="")}/changes.csv?direction=picsweb"' in first


def test_a_conflicts_reason_is_shown_on_its_row(viewer):
    text = html.unescape(
        viewer.get(
            f"/onefile-sync/runs/{quote(REAL, safe='')}",
            params={"field": "elements_done"},
            headers=HTML,
        ).text
    )
    row = re.search(r'<tr class="change-row status-conflict">(.*?)</tr>', text, re.S).group(1)
    assert "elements_done" in row and f'<td class="reason">{CONFLICT}</td>' in row


# ----- CSV -----------------------------------------------------------------------------------
def test_the_csv_holds_every_filtered_change_with_a_header(viewer, world):
    runs = world[2]
    answer = viewer.get(f"/onefile-sync/runs/{quote(REAL, safe='')}/changes.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        'attachment; filename="changes-manual__2026-02-01T03_00_00_00_00.csv"'
    )
    table = list(csv.reader(io.StringIO(answer.text)))
    assert tuple(table[0]) == changes.CSV_COLUMNS
    assert len(table) - 1 == len(runs.audit) + 2  # more than MAX_CHANGES: several chunks
    rows, _ = _all(viewer, REAL, limit=500)
    as_csv = [[("" if r[c] is None else str(r[c])) for c in changes.CSV_COLUMNS] for r in rows]
    assert table[1:] == as_csv
    only = viewer.get(
        f"/onefile-sync/runs/{quote(REAL, safe='')}/changes.csv", params={"entity": "LearningAim"}
    )
    body = list(csv.DictReader(io.StringIO(only.text)))
    assert len(body) == sum(1 for a in runs.audit if a["entity"] == "LearningAim") > 0
    assert {r["direction"] for r in body} == {"PICSWeb → OneFile"}


def test_the_csv_of_a_dry_run_lists_its_old_and_new_values(viewer, world):
    tq = world[2].dry_tq
    answer = viewer.get(
        f"/onefile-sync/runs/{quote(DRY, safe='')}/changes.csv", params={"field": "elements_done"}
    )
    body = list(csv.DictReader(io.StringIO(answer.text)))
    mine = [
        r for r in body if r["entity_key"] == str(tq["tq_id"]) and r["status"] == "would change"
    ]
    assert [(r["old_value"], r["new_value"]) for r in mine] == [("7", "12")]


# ----- access and unknown runs -------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        _api(REAL),
        f"/onefile-sync/runs/{quote(REAL, safe='')}/changes.csv",
        f"/onefile-sync/runs/{quote(DRY, safe='')}",
    ],
)
def test_changes_need_a_reader(anonymous, token, path):
    assert anonymous.get(path).status_code == 401
    denied = anonymous.get(path, headers={"Authorization": f"Bearer {token(DENIED)}"})
    assert denied.status_code == 403
    assert "new-" not in denied.text


@pytest.mark.parametrize(
    "path",
    [
        "/onefile-sync/runs/manual__1999-01-01T00%3A00%3A00%2B00%3A00",
        "/onefile-sync/runs/manual__1999-01-01T00%3A00%3A00%2B00%3A00/changes.csv",
    ],
)
def test_an_unknown_run_is_a_page_for_a_person_and_json_for_the_api(viewer, path):
    page = viewer.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No such run" in page.text and "another deployment" in page.text
    assert "manual__1999-01-01T00:00:00+00:00" in html.unescape(page.text)
    back = re.search(r'id="back-to-history" href="([^"]+)"', page.text).group(1)
    depth = path.count("/") - 2  # below /onefile-sync/
    assert back == "../" * depth
    as_json = viewer.get(path, headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and "No sync run" in as_json.json()["detail"]
    api = viewer.get(_api("manual__1999"), headers=HTML)
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"


def test_a_run_with_a_staging_database_of_its_own_lists_both_databases_changes(
    pg_server, auth_manager, token
):
    """PICSWeb's changes are audited in PICSWeb and OneFile's in staging (with the run and
    its rejects): the rows come from both, the learners from PICSWeb, one row a page."""
    picsweb = sa.create_engine(pg_server.create_database("sync_page_changes_picsweb"))
    staging = sa.create_engine(pg_server.create_database("sync_page_changes_staging"))
    history = write_learners(picsweb, trainees=5)
    ensure_project_tables(staging)
    ensure_project_tables(picsweb, PICSWEB_SIDE_TABLES)
    when = dt.datetime(2026, 2, 1, 3, tzinfo=dt.UTC).replace(tzinfo=None)
    audited = {
        picsweb: [("picsweb", "trainee_qualification", "21", "elements_done")],
        staging: [("onefile", "LearningAim", "500021", "RegistrationNumber")],
    }
    for engine, rows in audited.items():
        with engine.begin() as conn:
            conn.execute(
                sa.insert(sync_audit),
                [
                    {"run_id": REAL, "system": s, "entity": e, "entity_key": k, "field": f}
                    | {"old_value": "1", "new_value": "2", "changed_at": when}
                    for s, e, k, f in rows
                ],
            )
    with staging.begin() as conn:
        conn.execute(
            sa.insert(sync_run),
            {"run_id": REAL, "started_at": when, "ended_at": when, "outcome": "success"},
        )
    parent = FastAPI()
    parent.mount(URL_PREFIX, create_app(Sources(picsweb=lambda: picsweb, staging=lambda: staging)))
    try:
        with TestClient(parent, headers={"Authorization": f"Bearer {token()}"}) as client:
            rows, pages = _all(client, REAL, limit=1)
    finally:
        picsweb.dispose()
        staging.dispose()
    assert [(r["entity"], r["field"]) for r in rows] == [
        ("trainee_qualification", "elements_done"),
        ("LearningAim", "RegistrationNumber"),
    ]
    assert pages == 2
    learner = next(t for t in history.trainees if t["trainee_id"] == 2)
    name = f"{learner['first_name']} {learner['surname']}"
    assert [(r["learner"], r["trainee_id"]) for r in rows] == [(name, 2), (name, 2)]
