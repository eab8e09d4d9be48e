"""A JSON integer longer than Python converts (4,300 digits) in a search page is one row's
reject, not a ValueError that fails the whole extract (issue 18, case 7: one value never
stops a run)."""

from __future__ import annotations

import requests

from onefile import hook
from picsweb_sync.onefile import fields as onefile_fields


def _page(text: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = text.encode()
    return response


def test_a_huge_integer_is_kept_as_its_digits_and_its_row_is_a_reject():
    digits = "9" * 5000
    page = _page(
        '[{"ID": 1, "FirstName": "Ann", "LastName": "Lee", "DefaultAssessorID": ' + digits + "},"
        ' {"ID": 2, "FirstName": "Bo", "LastName": "Ng", "DefaultAssessorID": 7}]'
    )
    rows = hook._json_or_empty(page)
    assert rows[0]["DefaultAssessorID"] == digits
    assert rows[1]["DefaultAssessorID"] == 7
    parsed = onefile_fields.parse_learners(rows, organisation_id=11)
    assert parsed.frame["learner_id"].tolist() == [2]
    assert parsed.rejects["source_id"].tolist() == ["1"]
    assert "DefaultAssessorID" in parsed.rejects["reason"].iloc[0]


def test_ordinary_numbers_stay_numbers():
    assert hook._json_or_empty(_page('[{"ID": 12, "X": -3, "Y": 1.5}]')) == [
        {"ID": 12, "X": -3, "Y": 1.5}
    ]
    assert hook._json_or_empty(_page("")) == []
