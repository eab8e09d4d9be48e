"""Storable text against the real databases (SQLite and PostgreSQL), through the real writes
(``replace_staging``, ``record_rejects``, both ``sqlframes.bulk_insert``): issue 18, case 7.

- the rule (``project_tables.storable_text``) is what the databases accept: each storable
  text of the unit table reads back exactly as written, and each text the rule refuses is
  refused by the database (PostgreSQL: both; SQLite: lone surrogates);
- an extract whose rows hold NUL or a lone surrogate stages the other rows and records the
  bad ones as rejects, which read back exactly (their ``raw`` giving back the exact row);
- the rejects table stores any reject, whatever text another stage puts in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from picsweb_sync.onefile.fields import parse_learners
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables.storable_text import is_storable
from picsweb_sync.storage.sqlframes import bulk_insert
from tests.unit.test_storable_text import CASES, GOOD

RUN = "manual__storable"
ORGANISATION = 5740
TABLE = pt.STAGING["assessors"]


@pytest.fixture
def project(empty_engine: Engine) -> Iterator[Engine]:
    pt.ensure_project_tables(empty_engine)
    yield empty_engine


def _write_name(engine: Engine, assessor_id: int, text: str) -> None:
    row = {"run_id": RUN, "organisation_id": ORGANISATION, "assessor_id": assessor_id}
    with engine.begin() as conn:
        bulk_insert(conn, TABLE, pd.DataFrame([{**row, "last_name": text}]))


def _read_name(engine: Engine, assessor_id: int) -> str:
    stmt = select(TABLE.c.last_name).where(TABLE.c.assessor_id == assessor_id)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_rule_is_what_the_database_stores(project: Engine, case):
    if is_storable(case.text):
        _write_name(project, 1, case.text)
        assert _read_name(project, 1) == case.text
        return
    surrogate = any("\ud800" <= char <= "\udfff" for char in case.text)
    if project.dialect.name == "sqlite" and not surrogate:
        # SQLite keeps a NUL through Python's driver, yet its SQL sees the text cut there
        # (length() of 'Ann' NUL 'e' is 3); PostgreSQL and SQL Server (pymssql) cannot.
        _write_name(project, 1, case.text)
        with project.connect() as conn:
            assert conn.execute(select(func.length(TABLE.c.last_name))).scalar_one() < len(
                case.text
            )
        return
    # PostgreSQL refuses U+0000 in text; no driver can encode a lone surrogate as UTF-8.
    with pytest.raises((DBAPIError, UnicodeEncodeError)):
        _write_name(project, 1, case.text)
    with project.connect() as conn:  # and the failed write left nothing behind
        assert conn.execute(select(TABLE.c.assessor_id)).all() == []


def _learners() -> list[object]:
    """Learners whose names hold every case of the unit table, then a page element that is
    not an object (a lone surrogate) and a learner whose ID is text holding a NUL."""
    good = GOOD["learners"]
    rows: list[object] = [
        {**good, "ID": number, "FirstName": case.text, "LastName": case.text[::-1]}
        for number, case in enumerate(CASES.values(), start=1)
    ]
    return [*rows, "\ud83d", {**good, "ID": "7\x00"}]


def _sorted_json(values: list[object]) -> list[str]:
    return sorted(json.dumps(value, sort_keys=True) for value in values)


def test_an_extract_with_unstorable_text_stages_the_rest_and_keeps_its_rejects(project: Engine):
    rows = _learners()
    parsed = parse_learners(rows, ORGANISATION)
    numbered = list(enumerate(CASES.values(), start=1))
    storable_ids = [number for number, case in numbered if case.problem is None]
    assert parsed.frame["learner_id"].tolist() == storable_ids
    with project.begin() as conn:  # the extract's own writes (extract._stage)
        pt.replace_staging(conn, RUN, "learners", ORGANISATION, parsed.frame)
        pt.record_rejects(conn, RUN, "extract_learners", parsed.rejects, ORGANISATION)
    with project.connect() as conn:
        staged = pt.read_staging(conn, RUN, "learners").sort_values("learner_id")
        rejects = pt.read_rejects(conn, RUN)

    # Staged: every storable row, exactly as parsed (names of every kind of storable text).
    pd.testing.assert_frame_equal(
        staged[parsed.frame.columns].reset_index(drop=True),
        parsed.frame.reset_index(drop=True),
        check_dtype=False,
    )
    assert staged["first_name"].tolist() == [c.text for _, c in numbered if c.problem is None]
    # Rejects: exactly the rows the rule refuses, read back as recorded, each raw giving back
    # the exact row OneFile sent.
    columns = ["entity", "source_id", "reason", "raw"]
    pd.testing.assert_frame_equal(
        rejects[columns].sort_values("raw").reset_index(drop=True),
        parsed.rejects[columns].sort_values("raw").reset_index(drop=True),
        check_dtype=False,
    )
    refused = [row for number, row in enumerate(rows, start=1) if number not in storable_ids]
    assert _sorted_json([json.loads(raw) for raw in rejects["raw"]]) == _sorted_json(refused)
    reasons = {
        (None if pd.isna(source) else source): reason
        for source, reason in zip(rejects["source_id"], rejects["reason"], strict=True)
    }
    assert reasons['"7\\u0000"'] == 'ID: not a whole number: "7\\u0000"'
    assert reasons[None] == 'not a JSON object: "\\ud83d"'
    nul_row = str(list(CASES).index("NUL inside") + 1)
    assert reasons[nul_row].startswith("FirstName: U+0000 (NUL) at character 4, ")
    cut_row = str(list(CASES).index("name cut mid-emoji (lone high surrogate)") + 1)
    assert reasons[cut_row].startswith("FirstName: U+D83D at character 5 is a lone high")


def test_the_rejects_table_stores_any_text_a_stage_gives_it(project: Engine):
    """Another stage's reject may quote text as it came (a OneFile message, a PICSWeb value):
    the rejects table keeps it, each unstorable code point as its ``\\uXXXX`` escape."""
    frame = pd.DataFrame(
        {
            "entity": ["review", "review", "review"],
            "source_id": ["12\x00", "\ud83d\ude00", "ok é \U0001f600"],
            "reason": ["OneFile said: bad\x00value", "cut \ud83d", "fine: é \U0001f600"],
            "raw": ['{"a": "\x00"}', "\udfff", None],
        }
    )
    with project.begin() as conn:
        pt.record_rejects(conn, RUN, "push_reviews", frame.iloc[:2])
        pt.add_rejects(conn, RUN, "push_reviews_once", frame.iloc[2:])
    with project.connect() as conn:
        stored = pt.read_rejects(conn, RUN).sort_values("stage", kind="stable")
    assert stored["source_id"].tolist() == ["12\\u0000", "\\ud83d\\ude00", "ok é \U0001f600"]
    assert stored["reason"].tolist() == [
        "OneFile said: bad\\u0000value",
        "cut \\ud83d",
        "fine: é \U0001f600",  # storable text is stored as it is
    ]
    assert stored["raw"].tolist()[:2] == ['{"a": "\\u0000"}', "\\udfff"]
    assert pd.isna(stored["raw"].tolist()[2])
