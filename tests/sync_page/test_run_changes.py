"""One run's changes row by row (``sync_page.changes``) through the app on PostgreSQL:
keyset pages without duplicates or gaps, filters, the learner of each row, a dry run's
preview equal to ``dry_run.would_change``, conflicts and refusals with their reason, the
CSV download, access, and an unknown run (a page for a person, JSON for the API)."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from collections import Counter
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql
from sync_page import changes
from sync_page.app import URL_PREFIX, Sources, create_app

from picsweb_sync import dry_run
from picsweb_sync.project_tables import (
    PICSWEB_SIDE_TABLES,
    ensure_project_tables,
    sync_audit,
    sync_run,
)
from tests.data.test_mssql_compile import NOT_TSQL, tsql
from tests.sync_page.conftest import DENIED
from tests.sync_page.history import write_history, write_learners
from tests.sync_page.run_changes_data import CONFLICT, DRY, REAL, REFUSED, write_change_runs

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


# ----- statements ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(changes.all_statements()))
def test_every_statement_has_a_limit_and_compiles_for_sql_server(name):
    stmt = changes.all_statements()[name]
    sql_server = tsql(stmt)  # SQL Server 2019's dialect, values inlined
    postgres = str(stmt.compile(dialect=postgresql.dialect()))
    assert "TOP" in sql_server or "FETCH FIRST" in sql_server, name
    assert not [c for c in NOT_TSQL if c in sql_server], sql_server
    assert "LIMIT" in postgres and "OFFSET" not in postgres, name


def test_a_runs_audit_page_is_read_through_the_run_id_audit_id_index(world):
    engine = world[0]
    stmt = changes.audit_statement(REAL, changes.Filters(), 100, 10_000_500)
    with engine.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sa.text(
                    "EXPLAIN "
                    + str(
                        stmt.compile(
                            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                        )
                    )
                )
            )
        )
    assert "ix_sync_audit_run_id_audit_id" in plan, plan
    assert "Sort" not in plan, plan  # the index gives audit_id order: no sort of the run


# ----- a real run ----------------------------------------------------------------------------
def test_pages_through_every_change_of_a_run_without_duplicates_or_gaps(viewer, world):
    _, _, runs = world
    rows, pages = _all(viewer, REAL, limit=100)
    expected = [
        (a["system"], a["entity"], a["entity_key"], a["field"], a["old_value"], a["new_value"])
        for a in runs.audit
    ]
    listed, rows = rows[:2], rows[2:]  # conflicts and refusals first
    assert [_key(r) for r in rows] == expected
    assert [(r["status"], r["entity_key"], r["reason"]) for r in listed] == [
        ("conflict" if r["reason"] == CONFLICT else "refused", r["source_id"], r["reason"])
        for r in _rejects_of(runs, REAL)
    ]
    assert pages == -(-(len(expected) + 2) // 100)
    assert {r["status"] for r in rows} == {"changed"}


def test_page_sizes_and_bad_parameters(viewer):
    assert len(_get(viewer, REAL)["changes"]) == changes.DEFAULT_CHANGES
    assert len(_get(viewer, REAL, limit=10_000)["changes"]) == changes.MAX_CHANGES
    for params, status in (
        ({"limit": 0}, 422),
        ({"before": "not-a-cursor"}, 400),
        ({"direction": "sideways"}, 400),
        ({"field": "x" * 65}, 400),
    ):
        assert viewer.get(_api(REAL), params=params).status_code == status, params


@pytest.mark.parametrize(
    "params",
    [
        {"direction": "picsweb"},
        {"direction": "onefile"},
        {"entity": "trainee_qualification"},
        {"entity": "LearningAim"},
        {"field": "elements_done"},
        {"direction": "picsweb", "entity": "review", "field": "attended"},
        {"direction": "onefile", "field": "elements_done"},
    ],
)
def test_filters_by_direction_entity_and_field(viewer, world, params):
    _, _, runs = world

    def keep(system, entity, field):
        return (
            params.get("direction", system) == system
            and params.get("entity", entity) == entity
            and params.get("field", field) == field
        )

    expected = [
        (a["system"], a["entity"], a["entity_key"], a["field"], a["old_value"], a["new_value"])
        for a in runs.audit
        if keep(a["system"], a["entity"], a["field"])
    ]
    field_of = {CONFLICT: "elements_done", REFUSED: "registration_number"}
    expected_rejects = [
        r["source_id"]
        for r in _rejects_of(runs, REAL)
        if keep("picsweb", r["entity"], field_of[r["reason"]])
    ]
    rows, _ = _all(viewer, REAL, limit=150, **params)
    changed = [r for r in rows if r["status"] == "changed"]
    assert [_key(r) for r in changed] == expected
    assert [r["entity_key"] for r in rows if r["reason"]] == expected_rejects
    assert expected or expected_rejects or not rows


def test_each_row_names_its_learner_and_qualification_or_review(viewer, world):
    _, history, _ = world
    trainees = {t["trainee_id"]: t for t in history.trainees}
    by_tq = {str(q["tq_id"]): q for q in history.qualifications}
    by_aim = {str(q["onefile_learning_aim_id"]): q for q in history.qualifications}
    by_review = {str(r["review_id"]): r for r in history.reviews}
    by_onefile_review = {str(r["onefile_system_id"]): r for r in history.reviews}
    rows, _ = _all(viewer, REAL, limit=500)
    seen = set()
    for row in rows:
        table = {
            "trainee_qualification": by_tq,
            "LearningAim": by_aim,
            "review": by_review,
            "Review": by_onefile_review,
        }[row["entity"]]
        source = table[row["entity_key"]]
        trainee = trainees[source["trainee_id"]]
        assert row["trainee_id"] == trainee["trainee_id"]
        assert row["learner"] == f"{trainee['first_name']} {trainee['surname']}"
        assert row["onefile_learner_id"] == trainee["onefile_learner_id"]
        if "qualification_code" in source:
            assert row["subject"] == f"qualification {source['qualification_code']}"
        else:
            assert row["subject"] == f"review {source['review_id']} ({source['scheduled_date']})"
        seen.add(row["entity"])
    assert seen == {"trainee_qualification", "LearningAim", "review", "Review"}


# ----- a dry run -----------------------------------------------------------------------------
def test_a_dry_runs_rows_are_what_it_would_change(viewer, world):
    engine, history, runs = world
    with engine.connect() as conn:
        would = dry_run.would_change(conn, DRY)
    rows, _ = _all(viewer, DRY, limit=3)  # small pages: across segments and inside records
    made = [r for r in rows if r["status"] == "would change"]
    assert Counter(_key(r) for r in made) == Counter(tuple(x) for x in would.values.tolist())
    assert len(made) == len(would) > 10
    assert [(r["status"], r["reason"]) for r in rows if r["reason"]] == [
        ("conflict" if r["reason"] == CONFLICT else "refused", r["reason"])
        for r in _rejects_of(runs, DRY)
    ]
    tq = runs.dry_tq
    change = next(
        r for r in made if r["entity_key"] == str(tq["tq_id"]) and r["field"] == "elements_done"
    )
    assert (change["old_value"], change["new_value"]) == ("7", "12")
    trainee = next(t for t in history.trainees if t["trainee_id"] == tq["trainee_id"])
    assert change["learner"] == f"{trainee['first_name']} {trainee['surname']}"
    insert = [r for r in made if r["entity_key"] == "new (OneFile review 990001)"]
    assert {r["trainee_id"] for r in insert} == {history.trainees[1]["trainee_id"]}
    created = [r for r in made if r["entity"] == "Review"]
    assert {r["field"] for r in created} == {
        "created_from_picsweb_review",
        "LearnerID",
        "ScheduledFor",
        "AssessorID",
    }
    assert {r["subject"] for r in created} == {
        f"review {history.reviews[3]['review_id']} ({history.reviews[3]['scheduled_date']})"
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"direction": "onefile"},
            {("LearningAim", "RegistrationNumber")}
            | {("Review", f) for f in changes.CREATE_FIELDS},
        ),
        ({"entity": "review", "field": "attended"}, {("review", "attended")}),
        ({"field": "elements_done"}, {("trainee_qualification", "elements_done")}),
        ({"direction": "picsweb", "entity": "Review"}, set()),
    ],
)
def test_a_dry_runs_filters(viewer, params, expected):
    rows, _ = _all(viewer, DRY, limit=2, **params)
    assert {(r["entity"], r["field"]) for r in rows if not r["reason"]} == expected


def test_the_dry_run_page_is_the_preview_with_old_and_new_values(viewer, world):
    tq = world[2].dry_tq
    page = viewer.get(f"/onefile-sync/runs/{quote(DRY, safe='')}", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "What this dry run would change, row by row" in text
    assert "the preview to review" in text and "before letting the real run write" in text
    row = re.search(
        rf'<tr class="change-row status-would-change">(?:(?!</tr>).)*?trainee_qualification {tq["tq_id"]}</td>\s*'
        r'<td>elements_done</td>\s*<td class="old">([^<]*)</td><td class="new">([^<]*)</td>',
        text,
        re.S,
    )
    assert row and row.groups() == ("7", "12")
    assert html.escape(CONFLICT, quote=False) in html.unescape(text) or CONFLICT in html.unescape(
        text
    )


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
