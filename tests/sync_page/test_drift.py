"""One run's drift report on the sync page (``sync_page.drift_view``) through the app on
PostgreSQL: its statements (bounded, keyset, SQL Server), the counts by reason and field,
the JSON API's keyset pages (no duplicates, no gaps, stable order), the filters, and each
row's learner from PICSWeb. The HTML pages, the CSV and access: test_drift_pages.py."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sync_page import drift_statements, drift_view, queries
from sync_page.drift_labels import WHAT_TO_DO, field_label, reason_label

from picsweb_sync.rules.drift import REASONS
from tests.data.test_mssql_compile import NOT_TSQL, tsql
from tests.sync_page import drift_client as client
from tests.sync_page.drift_client import every_page, get, key
from tests.sync_page.drift_data import CLEAN, DRIFTED, DRY, NO_REPORT

# The fixtures these tests share (pytest finds them by these names).
world, anonymous, viewer = client.world, client.anonymous, client.viewer


# ----- statements ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(drift_statements.all_statements()))
def test_every_statement_has_a_limit_and_compiles_for_sql_server(name):
    stmt = drift_statements.all_statements()[name]
    sql_server = tsql(stmt)  # SQL Server 2019's dialect, values inlined
    postgres = str(stmt.compile(dialect=postgresql.dialect()))
    assert "TOP" in sql_server or "FETCH FIRST" in sql_server, name
    assert not [c for c in NOT_TSQL if c in sql_server], sql_server
    assert "LIMIT" in postgres and "OFFSET" not in postgres, name
    assert name in queries.all_statements()  # the registry's test checks them too


def test_every_reason_has_a_label_and_what_to_do():
    assert set(WHAT_TO_DO) == set(REASONS)
    for reason in REASONS:
        assert reason_label(reason) and reason_label(reason) != reason
        assert WHAT_TO_DO[reason].endswith(".")
    assert field_label("elements_done") == "Elements done"
    assert field_label("a_new_field") == "A new field"  # never hidden, only plainer


def test_a_page_of_rows_is_a_range_of_the_run_id_drift_id_index(world):
    """Among many runs' rows (added and rolled back here), PostgreSQL reads one run's page
    from the ``(run_id, drift_id)`` index, in its order: no scan, no sort of the run."""
    stmt = drift_statements.drift_rows_statement(
        DRIFTED, drift_statements.DriftFilters(), 100, world[2].rows[300]["drift_id"]
    )
    compiled = stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    others = sa.text(
        "INSERT INTO sync_drift (run_id, entity, field, reason, created_at)"
        " SELECT 'other__' || (n % 100), 'review', 'attended', 'reject', now()"
        " FROM generate_series(1, 100000) AS n"
    )
    with world[0].connect() as conn, conn.begin() as transaction:
        conn.execute(others)
        conn.execute(sa.text("ANALYZE sync_drift"))
        plan = "\n".join(r[0] for r in conn.execute(sa.text(f"EXPLAIN {compiled}")))
        transaction.rollback()
    assert "ix_sync_drift_run_id_drift_id" in plan, plan
    assert "Sort" not in plan, plan  # the index gives drift_id order


# ----- counts --------------------------------------------------------------------------------
def test_the_runs_json_counts_its_drift_by_reason_and_field(viewer, world):
    rows = world[2].rows
    answer = viewer.get(client.run_url(DRIFTED).replace("/runs/", "/api/runs/"))
    drift = answer.json()["drift"]
    assert drift["reported"] is True and drift["total"] == len(rows)
    by_reason = Counter(r["reason"] for r in rows)
    assert [r["reason"] for r in drift["by_reason"]] == list(REASONS)  # all occur, in order
    assert {r["reason"]: r["count"] for r in drift["by_reason"]} == by_reason
    first = drift["by_reason"][0]
    assert first["reason"] == "unexplained" and first["highlight"] is True
    assert first["what_to_do"] == WHAT_TO_DO["unexplained"]
    assert [r["highlight"] for r in drift["by_reason"][1:]] == [False] * (len(REASONS) - 1)
    by_field = Counter((r["entity"], r["field"]) for r in rows)
    assert {(f["entity"], f["field"]): f["count"] for f in drift["by_field"]} == by_field
    unexplained = Counter((r["entity"], r["field"]) for r in rows if r["reason"] == "unexplained")
    assert {(f["entity"], f["field"]): f["unexplained"] for f in drift["by_field"]} == {
        k: unexplained.get(k, 0) for k in by_field
    }
    assert drift["by_field"][0]["unexplained"] > 0  # fields with a defect first


@pytest.mark.parametrize(
    ("run_id", "reported", "says"),
    [
        (CLEAN, True, "Nothing differs"),
        (NO_REPORT, False, "report_drift has not run"),
        (DRY, False, "A dry run writes nothing"),
    ],
)
def test_a_run_without_differences_says_why(viewer, run_id, reported, says):
    detail = viewer.get(client.run_url(run_id).replace("/runs/", "/api/runs/")).json()
    drift = detail["drift"]
    assert (drift["reported"], drift["total"]) == (reported, 0)
    assert says in drift["note"]
    data = get(viewer, run_id)
    assert data["drift"] == [] and data["next"] is None


# ----- keyset pages --------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [None, 7, 500])
def test_pages_hold_every_row_once_in_the_reports_order(viewer, world, limit):
    expected = world[2].rows
    rows, pages = every_page(viewer, DRIFTED, **({"limit": limit} if limit else {}))
    size = limit or drift_view.DEFAULT_DRIFT
    assert pages == -(-len(expected) // size)
    assert [key(r) for r in rows] == [key(r) for r in expected]  # no gap, no duplicate, order
    assert rows[0]["reason"] == "unexplained"


def test_a_page_is_bounded_and_a_bad_cursor_or_filter_is_a_bad_request(viewer):
    assert len(get(viewer, DRIFTED, limit=10**6)["drift"]) == drift_view.MAX_DRIFT
    for params in ({"before": "%%%"}, {"reason": "because"}, {"entity": "trainee"}):
        answer = viewer.get(client.api(DRIFTED), params=params)
        assert answer.status_code == 400, params
    assert viewer.get(client.api(DRIFTED), params={"limit": 0}).status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"reason": "unexplained"},
        {"reason": "not_linked"},
        {"entity": "review"},
        {"field": "elements_done"},
        {"reason": "reject", "entity": "qualification", "field": "registration_number"},
        {"field": "no_such_field"},
    ],
)
def test_filters_by_reason_entity_and_field(viewer, world, params):
    expected = [
        key(r) for r in world[2].rows if all(r[name] == value for name, value in params.items())
    ]
    rows, _ = every_page(viewer, DRIFTED, limit=50, **params)
    assert [key(r) for r in rows] == expected
    assert get(viewer, DRIFTED, **params)["filters"] == params


# ----- the learner of each row ---------------------------------------------------------------
def _find(rows, wanted):
    return next(r for r in rows if key(r) == key(wanted))


def test_each_row_names_its_learner_from_picsweb(viewer, world):
    history, runs = world[1], world[2]
    rows, _ = every_page(viewer, DRIFTED, limit=500)
    trainees = {t["trainee_id"]: t for t in history.trainees}
    named = _find(rows, runs.by_trainee)
    trainee = trainees[runs.by_trainee["trainee_id"]]
    assert named["learner"] == f"{trainee['first_name']} {trainee['surname']}"
    # A row naming only the OneFile learner: found by PICSWeb's onefile_learner_id.
    only = _find(rows, runs.by_learner)
    trainee = next(
        t for t in history.trainees if t["onefile_learner_id"] == runs.by_learner["learner_id"]
    )
    assert only["trainee_id"] == trainee["trainee_id"]
    assert only["learner"] == f"{trainee['first_name']} {trainee['surname']}"
    # A learner PICSWeb does not know: no name, nothing made up.
    unknown = [r for r in rows if r["learner_id"] and r["learner_id"] >= 1_000_000]
    assert unknown and all(r["learner"] == "" for r in unknown if r["trainee_id"] is None)
    row = rows[0]
    assert row["reason_label"] == reason_label(row["reason"])
    assert row["field_label"] == field_label(row["field"])
