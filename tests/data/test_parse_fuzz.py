"""The OneFile parsers fuzzed with generated JSON (hypothesis), through the real staging
writes on SQLite and PostgreSQL (issue 18, case 7: one value never stops a run).

Pages of rows with the real field names holding values of any JSON type and size (text of
any code point, NUL and lone surrogates included; whole numbers beyond 64 bits; NaN and
infinities, which Python's ``json`` decodes; nested lists and objects), good values mixed in
so that rows do stage, and page elements that are not objects. For every page:

- no exception escapes ``parse_*``; each element is staged, a reject, or a surplus copy;
- everything parsed is storable text (the rule of ``project_tables.storable_text``);
- the frame and its rejects go through ``replace_staging`` and ``record_rejects`` in one
  transaction (as ``extract._stage`` writes them) and read back exactly;
- each reject's ``raw`` gives back the element OneFile sent, exactly.

Bounded: a few dozen pages per entity and database, in well under a minute. It found, besides
NUL and lone surrogates, instants whose UTC or UK date falls in year 0 or 10000
(``0001-01-01T00:00:00+01:00``), now rejects (tests/unit/test_instant_bounds.py).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from picsweb_sync.onefile.fields import (
    FIELDS,
    REJECT_COLUMNS,
    Parsed,
    parse_assessors,
    parse_learners,
    parse_learning_aims,
    parse_reviews,
)
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables.storable_text import is_storable

PARSE = {
    "learners": parse_learners,
    "assessors": parse_assessors,
    "learning_aims": parse_learning_aims,
    "reviews": parse_reviews,
}
ORGANISATION = 5740
# Per entity and database: 200 pages in all. PICSWEB_FUZZ_PAGES=2000 for a longer hunt.
PAGES_PER_ENTITY = int(os.environ.get("PICSWEB_FUZZ_PAGES", "25"))

# ----- generated JSON ---------------------------------------------------------------------------
# Every code point, the surrogates too (hypothesis leaves them out by default), and the ones
# that matter most given more often.
ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
AWKWARD = st.sampled_from(
    ["\x00", "\ud83d", "\ude00", "\U0001f600", "\\", "\t", "\n", "\r", "'", '"', "\ufeff"]
)
SOME_TEXT = st.text(ANY_CHARACTER, max_size=20)
TEXT = st.one_of(
    SOME_TEXT,
    st.builds(lambda before, char, after: before + char + after, SOME_TEXT, AWKWARD, SOME_TEXT),
    st.sampled_from(["", " ", " \t\n", "\\.", "a\n\\.\n", "12", " 007 ", "12.0", "-3", "٣"]),
    # any size: a long run of one character, a number of more digits than Python converts
    st.builds(str.__mul__, st.one_of(ANY_CHARACTER, AWKWARD), st.integers(50, 5000)),
    st.builds(str.__mul__, st.just("9"), st.integers(15, 4400)),
)
EDGE_NUMBERS = st.sampled_from(
    [0, -1, 2**15, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**70, 10**300]
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    EDGE_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
ANY_JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
INSTANT = st.builds(
    lambda when, zone: when.isoformat() + zone,
    st.datetimes(),  # naive, years 1 to 9999: a zone (or none: UTC) is added as text
    st.sampled_from(["Z", "", "+01:00", "-05:30", ".5Z"]),
)
GOOD_VALUE = {
    "id": st.integers(1, 2**63 - 1) | st.integers(1, 10**6).map(str),
    "int": st.integers(-(2**31), 2**31 - 1),
    "count": st.integers(0, 2**31 - 1),
    "text": TEXT,
    "instant": INSTANT,
    "uk_date": INSTANT,
}


ABSENT = object()  # a field left out of the object


def rows_of(entity: str) -> st.SearchStrategy[list[Any]]:
    """A search page of ``entity``: objects with its real field names and a few unknown keys,
    and elements that are not objects. An object is "clean" (the required fields present,
    every value of its field's kind: text of any code point) or "messy" (any of the fields,
    each value of its kind or any JSON at all); a field is present three times in four."""
    fields = FIELDS[entity]
    good = {field.onefile: GOOD_VALUE[field.kind] for field in fields}
    messy = {name: st.one_of(value, ANY_JSON) for name, value in good.items()}
    required = {field.onefile for field in fields if field.required}

    def some(values: dict[str, st.SearchStrategy], *, keep: set[str]) -> st.SearchStrategy:
        maybe = {
            name: value if name in keep else st.one_of(value, value, value, st.just(ABSENT))
            for name, value in values.items()
        }
        return st.fixed_dictionaries(maybe).map(
            lambda row: {name: value for name, value in row.items() if value is not ABSENT}
        )

    known = st.one_of(some(good, keep=required), some(good, keep=required), some(messy, keep=set()))
    row = st.builds(
        lambda extra, known: {**extra, **known}, st.dictionaries(TEXT, ANY_JSON, max_size=2), known
    )
    return st.lists(st.one_of(row, row, row, ANY_JSON), max_size=8)


# ----- checks -------------------------------------------------------------------------------------
def same_json(a: Any, b: Any) -> bool:
    """JSON equality where NaN equals NaN (``json`` decodes it; ``==`` says it differs)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return a == b


def unstorable_texts(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, value as ASCII, shortened) of each text in ``frame`` that is not storable."""
    texts = frame.select_dtypes(["string", "object"])
    return [
        (column, ascii(value)[:80])
        for column in texts
        for value in texts[column]
        if isinstance(value, str) and not is_storable(value)
    ]


def check_page(engine: Engine, entity: str, rows: list[Any], run_id: str) -> Parsed:
    parsed = PARSE[entity](rows, ORGANISATION)  # no exception, whatever the page holds

    assert len(parsed.frame) + len(parsed.rejects) + parsed.duplicates == len(rows)
    assert list(parsed.rejects.columns) == REJECT_COLUMNS
    assert unstorable_texts(parsed.frame) == []
    assert unstorable_texts(parsed.rejects) == []
    assert parsed.rejects["reason"].notna().all()
    for raw, reject_id in zip(parsed.rejects["raw"], parsed.rejects["source_id"], strict=True):
        sent = json.loads(raw)
        assert any(same_json(sent, row) for row in rows), (raw, reject_id)

    with engine.begin() as conn:  # what extract._stage writes, in one transaction
        pt.replace_staging(conn, run_id, entity, ORGANISATION, parsed.frame)
        pt.record_rejects(conn, run_id, f"extract_{entity}", parsed.rejects, ORGANISATION)
    with engine.connect() as conn:
        staged = pt.read_staging(conn, run_id, entity)
        rejects = pt.read_rejects(conn, run_id)

    key = FIELDS[entity][0].column
    pd.testing.assert_frame_equal(
        staged[parsed.frame.columns].sort_values(key).reset_index(drop=True),
        parsed.frame.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )
    # ``raw`` alone does not order them: one element may be rejected twice (a bad duplicate)
    order = ["raw", "reason", "source_id"]
    pd.testing.assert_frame_equal(
        rejects[REJECT_COLUMNS].sort_values(order, na_position="first").reset_index(drop=True),
        parsed.rejects.sort_values(order, na_position="first").reset_index(drop=True),
        check_dtype=False,
    )
    return parsed


@pytest.fixture
def project(empty_engine: Engine) -> Iterator[Engine]:
    pt.ensure_project_tables(empty_engine)
    yield empty_engine


@pytest.mark.parametrize("entity", list(PARSE))
def test_any_json_page_parses_and_round_trips_through_staging(project: Engine, entity: str):
    seen = {"staged": 0, "rejected": 0}
    pages = iter(range(10**6))

    @settings(
        max_examples=PAGES_PER_ENTITY,
        deadline=None,
        database=None,  # nothing written to the working tree
        # No shrinking: each step would write to the database again, for minutes; the
        # failing page is reported as generated.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rows=rows_of(entity))
    def check(rows: list[Any]) -> None:
        parsed = check_page(project, entity, rows, run_id=f"manual__fuzz_{next(pages)}")
        seen["staged"] += len(parsed.frame)
        seen["rejected"] += len(parsed.rejects)

    check()
    # The pages did reach both sides: rows staged and rows set aside.
    assert seen["staged"] > 0 and seen["rejected"] > 0, seen
