"""The sync page's statements: each bounded by a LIMIT, each compiling for SQL Server,
the two big lookups able to use their indexes on PostgreSQL, and the small rules."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql
from sync_page import queries

STATEMENTS = queries.all_statements()


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_statement_has_a_limit_and_compiles_for_sql_server(name):
    stmt = STATEMENTS[name]
    sql_server = str(stmt.compile(dialect=mssql.dialect()))
    postgres = str(stmt.compile(dialect=postgresql.dialect()))
    assert "TOP" in sql_server or "FETCH FIRST" in sql_server or "ROWS FETCH" in sql_server, name
    assert "LIMIT" in postgres, name
    assert "OFFSET" not in postgres, name  # keyset paging only


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("missing learner ID", "missing learner ID"),
        ("conflict: PICSWeb changed since the merge", "conflict"),
        ("registration number too long (41 > 30 characters)", "registration number too long"),
        ("unknown code (ZZ): see the list", "unknown code"),
        ("bad date: 2025-13-01 (month)", "bad date"),
        ("", "(no reason)"),
        (None, "(no reason)"),
        (": only a colon", "(no reason)"),
    ],
)
def test_reject_kind(reason, kind):
    assert queries.reject_kind(reason) == kind


@pytest.mark.parametrize(
    ("parts", "kinds"),
    [
        (
            (dt.datetime(2026, 3, 1, 2, 0, 0, 123456, tzinfo=dt.UTC).replace(tzinfo=None), "r"),
            (dt.datetime, str),
        ),
        ((dt.datetime(2026, 3, 1, tzinfo=dt.UTC).replace(tzinfo=None), 17), (dt.datetime, int)),
    ],
)
def test_cursor_round_trip(parts, kinds):
    assert tuple(queries.decode_cursor(queries.encode_cursor(*parts), kinds)) == parts


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        queries.encode_cursor("2026-01-01T00:00:00"),  # one part, two wanted
        queries.encode_cursor("yesterday", "r"),
        queries.encode_cursor("2026-01-01T00:00:00", 5),  # an int where a str is wanted
        queries.encode_cursor("2026-01-01T00:00:00", True),
    ],
)
def test_a_bad_cursor_is_a_bad_request(cursor):
    with pytest.raises(queries.BadRequest):
        queries.decode_cursor(cursor, (dt.datetime, str))


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, queries.DEFAULT_RUNS),
        (1, 1),
        (queries.MAX_RUNS, queries.MAX_RUNS),
        (10**9, queries.MAX_RUNS),
    ],
)
def test_page_sizes_are_bounded(limit, expected):
    assert queries.bounded(limit, queries.DEFAULT_RUNS, queries.MAX_RUNS) == expected


def test_a_zero_limit_is_a_bad_request():
    with pytest.raises(queries.BadRequest):
        queries.bounded(0, queries.DEFAULT_RUNS, queries.MAX_RUNS)


def _plan(conn, stmt) -> str:
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return "\n".join(r[0] for r in conn.execute(sa.text(f"EXPLAIN {compiled}")))


def test_history_and_audit_search_use_their_indexes(history_engine, history):
    """With sequential scans priced out, PostgreSQL answers both big lookups from the
    indexes project_tables declares (on a small table it might scan anyway; on a year
    of runs and a million audit rows it must not: see benchmarks/sync_page.py)."""
    keys = {
        ("picsweb", "trainee_qualification"): {"11": "", "12": ""},
        ("onefile", "LearningAim"): {"500011": ""},
    }
    with history_engine.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        history_plan = _plan(conn, queries.history_statement(50))
        audit_plan = _plan(conn, queries.audit_statement(keys, 100))
    assert "ix_sync_run_started_at" in history_plan, history_plan
    assert "ix_sync_audit_entity_entity_key_changed_at" in audit_plan, audit_plan
