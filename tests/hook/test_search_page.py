"""``OneFileHook.search_page``: one search page with how OneFile answered it (the preflight
reports how paging ends and the rate-limit headers from it)."""

from __future__ import annotations

import pytest

ORG = 5740  # the generator's first organisation


@pytest.mark.parametrize(
    ("page", "empty_page_form", "status", "rows"),
    [
        (1, "empty_list", 200, 7),  # a full page: more follow
        (3, "empty_list", 200, 6),  # the short last page (20 learners)
        (4, "empty_list", 200, 0),  # past the end: an empty array ...
        (4, "no_content", 204, 0),  # ... or a 204 with no body
    ],
)
def test_one_page_with_its_status(sim, hook_for, page, empty_page_form, status, rows):
    sim.empty_page_form = empty_page_form
    hook = hook_for(sim, page_size=7)
    found = hook.search_page("User", {"OrganisationID": ORG, "Role": 1}, page)
    assert (found.page, found.size, found.status, len(found.rows)) == (page, 7, status, rows)
    searched = [c.path for c in sim.calls_to("/User/Search")]
    assert searched == [f"/User/Search/{page}/7"]


def test_the_answers_headers_and_rows_are_as_sent(sim, hook_for):
    sim.faults.inject_rows("Review", [None])
    hook = hook_for(sim, page_size=500)
    found = hook.search_page("Review", {"OrganisationID": ORG})
    assert found.rows[-1] is None  # rows as sent, not parsed
    assert found.headers["Content-Type"] == "application/json"
    assert list(hook.search("Review", {"OrganisationID": ORG})) == [
        row for row in found.rows if row is not None
    ]
