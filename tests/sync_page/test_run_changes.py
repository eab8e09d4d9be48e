"""One run's changes row by row (``sync_page.changes``) through the app on PostgreSQL:
keyset pages without duplicates or gaps, filters, the learner of each row, a dry run's
preview equal to ``dry_run.would_change``, conflicts and refusals with their reason, the
CSV download, access, and an unknown run (a page for a person, JSON for the API)."""

from __future__ import annotations

import html
import re
from collections import Counter
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sync_page import changes

from picsweb_sync.run import dry_run
from tests.data.test_mssql_compile import NOT_TSQL, tsql
from tests.sync_page import run_changes_client as client
from tests.sync_page.run_changes_client import HTML, _all, _api, _get, _key, _rejects_of
from tests.sync_page.run_changes_data import CONFLICT, DRY, REAL, REFUSED

# The fixtures these tests share (pytest finds them by these names).
world, anonymous, viewer = client.world, client.anonymous, client.viewer


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
