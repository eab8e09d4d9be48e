"""The rule "a text is storable" (picsweb_sync.storage.project_tables.storable_text), and every OneFile
text field following it (issue 18, case 7: one value never stops a run).

The expected answers are written by hand. That the rule matches what SQLite and PostgreSQL
really accept is tests/data/test_storable_staging.py's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

from picsweb_sync.onefile.fields import (
    FIELDS,
    parse_assessors,
    parse_learners,
    parse_learning_aims,
    parse_reviews,
)
from picsweb_sync.storage.project_tables.storable_text import (
    is_storable,
    storable,
    storable_texts,
    text_problem,
    text_problems,
)

NUL_REASON = "which PostgreSQL text cannot store and pymssql cannot send to SQL Server"
SURROGATE_REASON = "(half of a UTF-16 pair, e.g. a character cut in two): not Unicode text"


@dataclass(frozen=True)
class Case:
    text: str
    problem: str | None  # None: storable; else a part of the problem's text
    escaped: str | None = None  # storable(text) when not storable


CASES = {
    "plain": Case("Annie", None),
    "empty": Case("", None),
    "whitespace only": Case(" \t\n ", None),
    "NUL inside": Case("Ann\x00e", f"U+0000 (NUL) at character 4, {NUL_REASON}", "Ann\\u0000e"),
    "NUL alone": Case("\x00", "U+0000 (NUL) at character 1", "\\u0000"),
    "NUL twice: the first is named": Case("a\x00b\x00", "at character 2", "a\\u0000b\\u0000"),
    "name cut mid-emoji (lone high surrogate)": Case(
        "Zoë \ud83d",
        f"U+D83D at character 5 is a lone high surrogate {SURROGATE_REASON}",
        "Zoë \\ud83d",
    ),
    "lone low surrogate": Case(
        "x\ude00y", "U+DE00 at character 2 is a lone low surrogate", "x\\ude00y"
    ),
    # Two surrogate code points in a Python string are not a character: only JSON's "\\ud83d\\ude00"
    # decodes to one (the next case).
    "a pair left as two code points": Case(
        "\ud83d\ude00", "U+D83D at character 1 is a lone high surrogate", "\\ud83d\\ude00"
    ),
    "emoji (one code point beyond the BMP)": Case("Amelia \U0001f600", None),
    "the same emoji as JSON's surrogate pair": Case(json.loads('"\\ud83d\\ude00"'), None),
    "highest code point": Case("\U0010ffff", None),
    "noncharacters": Case("\ufffe\uffff", None),
    "C0 control characters but NUL": Case("".join(map(chr, range(1, 32))), None),
    "DEL and C1 control characters": Case("".join(map(chr, range(0x7F, 0xA0))), None),
    "line and paragraph separators, BOM": Case("\u2028\u2029\ufeff", None),
    "backslash and a literal backslash-u": Case("C:\\new \\u0000", None),
    "very long text": Case("Long title " * 100_000, None),
    "very long text with a NUL at its end": Case(
        "x" * 1_000_000 + "\x00", "U+0000 (NUL) at character 1000001", "x" * 1_000_000 + "\\u0000"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_text_is_storable_unless_it_holds_nul_or_a_lone_surrogate(case: Case):
    problem = text_problem(case.text)
    if case.problem is None:
        assert problem is None
        assert is_storable(case.text)
        assert storable(case.text) == case.text  # storable text is never changed
    else:
        assert problem is not None and case.problem in problem, problem
        assert not is_storable(case.text)
        assert storable(case.text) == case.escaped
        assert is_storable(storable(case.text))


def test_the_series_form_names_each_text_and_passes_null_and_non_text():
    values = pd.Series(
        ["ok", None, pd.NA, "", "   ", "Ann\x00e", 12, 3.5, ["\x00"], {"a": "\ud83d"}, "\ud83d"],
        dtype=object,
    )
    problems = text_problems(values)
    assert problems.dtype == "string"
    bad = problems.notna().tolist()
    # only the strings are text: a list or an object holding a NUL is not a text itself
    assert bad == [False] * 5 + [True] + [False] * 4 + [True]
    assert problems[5] == text_problem("Ann\x00e")
    assert problems[10] == text_problem("\ud83d")
    escaped = storable_texts(values)
    assert escaped[5] == "Ann\\u0000e" and escaped[10] == "\\ud83d"
    kept = [i for i in range(len(values)) if i not in (5, 10)]
    assert escaped[kept].tolist() == values[kept].tolist()


def test_a_clean_series_is_returned_as_it_is():
    values = pd.Series(["a", pd.NA, "b"], dtype="string")
    assert storable_texts(values) is values
    assert text_problems(values).isna().all()


# ----- every text field of every entity follows the rule --------------------------------------
GOOD = {
    "learners": {"ID": 100001, "FirstName": "Amelia", "LastName": "Smith", "Email": "a@x.org",
                 "MISID": "T1", "ULN": "1234567890", "DefaultAssessorID": 100050,
                 "LastModified": "2026-03-28T14:23:29Z"},
    "assessors": {"ID": 100050, "FirstName": "Siân", "LastName": "Ó Briain", "Email": "s@x.org",
                  "Role": 5},
    "learning_aims": {"ID": 500001, "UserID": 100001, "Code": "196AS", "Title": "Adult Care",
                      "TotalElements": 20, "ElementsDone": 10, "RegistrationNumber": "REG1",
                      "RegistrationDate": "2025-06-01T23:30:00Z",
                      "CertificateAppliedDate": None, "CertificateReceivedDate": None},
    "reviews": {"ID": 900001, "LearnerID": 100001, "AssessorID": 100050,
                "ScheduledFor": "2026-03-20T10:00:00Z", "Status": 1, "StartedOn": None,
                "LearnerSignedOn": None, "EndTime": None, "VisitID": 700001},
}  # fmt: skip
PARSE = {
    "learners": parse_learners,
    "assessors": parse_assessors,
    "learning_aims": parse_learning_aims,
    "reviews": parse_reviews,
}
TEXT_FIELDS = [
    (entity, field.onefile) for entity, fields in FIELDS.items() for field in fields
    if field.kind == "text"
]  # fmt: skip
SPOILS = {"NUL": ("Ann\x00e", "U+0000 (NUL) at character 4"),
          "lone surrogate": ("Zoë \ud83d", "U+D83D at character 5 is a lone high surrogate")}  # fmt: skip


def test_there_are_text_fields_to_check():
    assert {entity for entity, _ in TEXT_FIELDS} == {"learners", "assessors", "learning_aims"}
    assert len(TEXT_FIELDS) >= 10


@pytest.mark.parametrize("spoil", SPOILS.values(), ids=SPOILS.keys())
@pytest.mark.parametrize(("entity", "name"), TEXT_FIELDS, ids=[f"{e}.{n}" for e, n in TEXT_FIELDS])
def test_an_unstorable_text_makes_its_row_a_reject_and_the_rest_stages(entity, name, spoil):
    text, problem = spoil
    good = GOOD[entity]
    spoiled = {**good, "ID": good["ID"] + 1, name: text}
    other = {**good, "ID": good["ID"] + 2}
    parsed = PARSE[entity]([good, spoiled, other], 5740)
    id_column = FIELDS[entity][0].column
    assert parsed.frame[id_column].tolist() == [good["ID"], good["ID"] + 2]
    assert len(parsed.rejects) == 1
    reject = parsed.rejects.iloc[0]
    assert reject["source_id"] == str(good["ID"] + 1)
    assert reject["reason"] == f"{name}: {text_problem(text)}: {json.dumps(text)}"
    assert problem in reject["reason"]
    # The reject is storable: its reason quotes the value escaped, its raw is ASCII JSON
    # that gives back the exact row.
    assert reject["reason"].isascii() and is_storable(reject["reason"])
    assert reject["raw"].isascii()
    assert json.loads(reject["raw"]) == spoiled
    for column in parsed.frame.select_dtypes("string"):
        assert parsed.frame[column].map(is_storable, na_action="ignore").fillna(True).all()


def test_an_unstorable_text_is_named_even_when_it_is_also_too_long():
    too_long = "R" * 100 + "\x00"  # registration_number is String(50)
    parsed = parse_learning_aims([{**GOOD["learning_aims"], "RegistrationNumber": too_long}], 1)
    (reason,) = parsed.rejects["reason"]
    assert reason.startswith("RegistrationNumber: U+0000 (NUL) at character 101")
    assert "… (" in reason  # the quoted value is shortened; raw keeps it whole
    assert json.loads(parsed.rejects["raw"].iloc[0])["RegistrationNumber"] == too_long


def test_storable_text_of_any_kind_stages_as_it_is():
    texts = [case.text for case in CASES.values() if case.problem is None]
    rows = [{**GOOD["assessors"], "ID": i + 1, "LastName": text} for i, text in enumerate(texts)]
    parsed = parse_assessors(rows, 1)
    assert parsed.rejects.empty, parsed.rejects["reason"].tolist()
    assert parsed.frame["last_name"].tolist() == texts
    assert [json.loads(raw) for raw in parsed.frame["raw"]] == rows
    assert all(raw.isascii() for raw in parsed.frame["raw"])


@pytest.mark.parametrize(
    ("sent", "source_id"),
    [("12\x00", '"12\\u0000"'), ("\ud83d", '"\\ud83d"'), ("A-12", "A-12"), (" ", " ")],
)
def test_a_reject_source_id_that_is_not_storable_is_kept_as_its_json(sent, source_id):
    parsed = parse_reviews([{**GOOD["reviews"], "ID": sent}], 1)
    assert parsed.rejects["source_id"].tolist() == [source_id]
    assert json.loads(parsed.rejects["raw"].iloc[0])["ID"] == sent


def test_a_number_with_more_digits_than_python_converts_is_a_reject_not_an_error():
    digits = "7" * 5000
    parsed = parse_learning_aims([{**GOOD["learning_aims"], "TotalElements": digits}], 1)
    (reason,) = parsed.rejects["reason"]
    assert reason.startswith('TotalElements: not a whole number: "777')
    assert parsed.frame.empty
