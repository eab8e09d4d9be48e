"""The ``inject_rows`` fault: raw JSON values served inside a search page, as they are."""

from __future__ import annotations

import copy

import pytest

STORED = {"User": "users", "LearningAim": "learning_aims", "Review": "reviews"}
ORG = 5740  # the generator's first organisation
ODD_ROWS = [None, "abc", [1], {"ID": 2**70, "RegistrationNumber": "R" * 60}]


@pytest.mark.parametrize("entity", ["User", "LearningAim", "Review"])
def test_injected_rows_follow_the_next_page_once_and_stored_data_is_untouched(sim, api, entity):
    url = f"{sim.base_url}/{entity}/Search/1/5"
    clean = api.post(url, json={"OrganisationID": ORG}, timeout=5).json()
    stored = copy.deepcopy(getattr(sim.data, STORED[entity]))
    sim.faults.inject_rows(entity, ODD_ROWS)
    first = api.post(url, json={"OrganisationID": ORG}, timeout=5).json()
    again = api.post(url, json={"OrganisationID": ORG}, timeout=5).json()
    assert first == clean + ODD_ROWS  # the big ID and the long text arrive exactly
    assert again == clean
    assert [(s.entity, s.row) for s in sim.faults.served_injected] == [
        (entity, row) for row in ODD_ROWS
    ]
    assert getattr(sim.data, STORED[entity]) == stored


def test_injected_rows_wait_for_a_page_with_rows_and_a_later_change_is_not_sent(sim, api):
    rows = [{"ID": 1}]
    sim.faults.inject_rows("Review", rows)
    rows[0]["ID"] = 2  # the fault sends the rows as they were given
    empty = api.post(f"{sim.base_url}/Review/Search/1/5", json={"LearnerID": 1}, timeout=5)
    assert empty.status_code == 204
    page = api.post(f"{sim.base_url}/Review/Search/1/5", json={"OrganisationID": ORG}, timeout=5)
    assert page.json()[-1] == {"ID": 1}


def test_injected_rows_are_switched_off_by_clear(sim, api):
    sim.faults.inject_rows("LearningAim", [None])
    sim.faults.clear()
    page = api.post(
        f"{sim.base_url}/LearningAim/Search/1/5", json={"OrganisationID": ORG}, timeout=5
    )
    assert None not in page.json()
    assert sim.faults.served_injected == []


def test_injecting_into_an_unknown_entity_is_refused(sim):
    with pytest.raises(ValueError, match="unknown searchable entity"):
        sim.faults.inject_rows("Visit", [None])
