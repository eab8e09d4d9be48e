"""The simulator's fault modes that the push's recovery tests need: every Nth matching call
failing, and a failure answered *after* the call took effect (a create that happened although
OneFile answered 500)."""

from __future__ import annotations

from tests.simulator.conftest import login


def _visit_body(sim) -> dict:
    learner = next(u for u in sim.data.users if u["Role"] == 1)
    assessor = next(u for u in sim.data.users if u["Role"] == 5)
    return {
        "LearnerID": learner["ID"],
        "OrganisationID": learner["OrganisationID"],
        "DateFrom": "2026-03-20T09:00:00Z",
        "DateTo": "2026-03-20T10:00:00Z",
        "VisitTypeID": 3,
        "SMSReminder": False,
        "AssessorID": assessor["ID"],
    }


def test_every_nth_matching_call_fails_and_no_other(sim):
    api = login(sim)
    sim.faults.add(status=500, every=3, path_contains="/Organisation")
    statuses = [
        api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5).status_code
        for _ in range(7)
    ]
    assert statuses == [200, 200, 500, 200, 200, 500, 200]
    # Calls that do not match are neither failed nor counted.
    assert api.post(f"{sim.base_url}/User/Search/1/5", json={}, timeout=5).status_code == 200


def test_every_nth_with_times_stops_after_that_many_failures(sim):
    api = login(sim)
    sim.faults.add(status=429, every=2, times=1, path_contains="/Organisation")
    statuses = [
        api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 429, 200, 200, 200]


def test_a_fault_after_effect_creates_the_visit_and_answers_500(sim):
    api = login(sim)
    visits_before = len(sim.data.visits)
    sim.faults.add(status=500, path_contains="/Visit", method="POST", after_effect=True)
    answer = api.post(f"{sim.base_url}/Visit", json=_visit_body(sim), timeout=5)
    assert answer.status_code == 500
    assert len(sim.data.visits) == visits_before + 1  # created all the same
    # A plain fault fails before anything happens.
    sim.faults.add(status=500, path_contains="/Visit", method="POST")
    answer = api.post(f"{sim.base_url}/Visit", json=_visit_body(sim), timeout=5)
    assert answer.status_code == 500
    assert len(sim.data.visits) == visits_before + 1


def test_a_fault_on_an_exact_path_leaves_the_searches_below_it_alone(sim):
    api = login(sim)
    sim.faults.add(status=500, path_is="/Organisation/Search", every=1)
    assert api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5).status_code == 500
    assert api.post(f"{sim.base_url}/User/Search/1/5", json={}, timeout=5).status_code == 200
    sim.faults.clear()
    sim.faults.add(status=500, path_is="/User", every=1)
    assert api.post(f"{sim.base_url}/User/Search/1/5", json={}, timeout=5).status_code == 200
