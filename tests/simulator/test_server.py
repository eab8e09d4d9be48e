"""The simulator over real HTTP: every endpoint, error and fault the contract describes."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import onefile_simulator
from onefile_simulator import OneFileSimulator

from .conftest import CUSTOMER_TOKEN, login

ORG = 5740  # the generator's first organisation


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _page_through(api: requests.Session, url: str, body: dict, size: int) -> tuple[list, list]:
    """All rows of a search, and the (status, row count) of each page asked for."""
    rows, pages = [], []
    for page in range(1, 1000):
        answer = api.post(f"{url}/{page}/{size}", json=body, timeout=5)
        batch = answer.json() if answer.status_code == 200 else []
        pages.append((answer.status_code, len(batch)))
        rows += batch
        if len(batch) < size:
            return rows, pages
    raise AssertionError("search never ended")


# ----- authentication ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("quote_token", "decode"),
    [(False, lambda text: text), (True, json.loads)],
    ids=["bare", "json-string"],
)
def test_authentication_answers_a_token_that_opens_the_api(start_sim, quote_token, decode):
    sim = start_sim(quote_token=quote_token)
    answer = requests.post(
        f"{sim.base_url}/Authentication", headers={"X-CustomerToken": CUSTOMER_TOKEN}, timeout=5
    )
    assert answer.status_code == 200
    assert answer.text.startswith('"') is quote_token
    token = decode(answer.text)
    search = requests.post(
        f"{sim.base_url}/Organisation/Search", json={}, headers={"X-TokenID": token}, timeout=5
    )
    assert search.status_code == 200


@pytest.mark.parametrize(
    "headers", [{"X-CustomerToken": "wrong"}, {}], ids=["wrong-customer-token", "no-header"]
)
def test_authentication_refuses_a_wrong_customer_token(sim, headers):
    answer = requests.post(f"{sim.base_url}/Authentication", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["code"] < 0
    assert "wrong" not in answer.text


@pytest.mark.parametrize(
    "token", [None, "not-a-token"], ids=["missing-session-token", "unknown-session-token"]
)
def test_calls_without_a_valid_session_token_get_401(sim, token):
    headers = {"X-TokenID": token} if token else {}
    answer = requests.post(
        f"{sim.base_url}/Organisation/Search", json={}, headers=headers, timeout=5
    )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("advance", "status"),
    [(dt.timedelta(hours=23, minutes=59), 200), (dt.timedelta(hours=24), 401)],
    ids=["just-under-24h", "24h"],
)
def test_session_token_expires_24_hours_after_issue(sim, api, advance, status):
    sim.clock.advance(advance)
    assert api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5).status_code == status


def test_expire_session_tokens_makes_issued_tokens_stale(sim, api):
    url = f"{sim.base_url}/Organisation/Search"
    assert api.post(url, json={}, timeout=5).status_code == 200
    sim.expire_session_tokens()
    assert api.post(url, json={}, timeout=5).status_code == 401
    assert login(sim).post(url, json={}, timeout=5).status_code == 200


# ----- searches -----------------------------------------------------------------------------
def test_organisation_search_lists_the_centres(sim, api):
    answer = api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5)
    assert answer.json() == [{"ID": o["ID"], "Name": o["Name"]} for o in sim.data.organisations]


def test_organisation_search_with_no_centres_answers_204(sim, api):
    sim.data.organisations.clear()
    answer = api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5)
    assert (answer.status_code, answer.content) == (204, b"")


@pytest.mark.parametrize(
    ("size", "empty_page_form", "expected_pages"),
    [
        (6, "empty_list", [(200, 6), (200, 6), (200, 6), (200, 2)]),
        (5, "empty_list", [(200, 5)] * 4 + [(200, 0)]),
        (5, "no_content", [(200, 5)] * 4 + [(204, 0)]),
        (20, "no_content", [(200, 20), (204, 0)]),
    ],
    ids=["short-last-page", "boundary-empty-list", "boundary-204", "one-full-page-204"],
)
def test_paging_is_one_based_and_ends_in_each_form(sim, api, size, empty_page_form, expected_pages):
    sim.empty_page_form = empty_page_form
    learners = [u for u in sim.data.users if u["OrganisationID"] == ORG and u["Role"] == 1]
    assert len(learners) == 20  # the page sizes above are chosen for 20
    rows, pages = _page_through(
        api, f"{sim.base_url}/User/Search", {"OrganisationID": ORG, "Role": 1}, size
    )
    assert pages == expected_pages
    assert rows == learners  # in order, no duplicates, none missing


def test_search_with_no_rows_answers_204(sim, api):
    answer = api.post(f"{sim.base_url}/User/Search/1/10", json={"OrganisationID": 1}, timeout=5)
    assert (answer.status_code, answer.content) == (204, b"")


def test_page_zero_is_refused(sim, api):
    answer = api.post(f"{sim.base_url}/User/Search/0/10", json={"OrganisationID": ORG}, timeout=5)
    assert answer.status_code == 400


def _median_last_modified(users: list[dict]) -> str:
    return sorted(users, key=lambda u: _instant(u["LastModified"]))[len(users) // 2]["LastModified"]


FILTER_CASES = {
    "user-role-assessor": (
        "User",
        lambda d: {"OrganisationID": ORG, "Role": 5},
        lambda d, f: [u for u in d.users if u["OrganisationID"] == ORG and u["Role"] == 5],
    ),
    "user-last-modified": (
        "User",
        lambda d: {"OrganisationID": ORG, "LastModified": _median_last_modified(d.users)},
        lambda d, f: [
            u
            for u in d.users
            if u["OrganisationID"] == ORG
            and _instant(u["LastModified"]) >= _instant(f["LastModified"])
        ],
    ),
    "aim-user-id": (
        "LearningAim",
        lambda d: {"UserID": d.learning_aims[5]["UserID"]},
        lambda d, f: [a for a in d.learning_aims if a["UserID"] == f["UserID"]],
    ),
    "aim-organisation": (
        "LearningAim",
        lambda d: {"OrganisationID": ORG},
        lambda d, f: [
            a
            for a in d.learning_aims
            if a["UserID"] in {u["ID"] for u in d.users if u["OrganisationID"] == ORG}
        ],
    ),
    "review-learner": (
        "Review",
        lambda d: {"OrganisationID": ORG, "LearnerID": d.reviews[0]["LearnerID"]},
        lambda d, f: [r for r in d.reviews if r["LearnerID"] == f["LearnerID"]],
    ),
    "review-date-window": (
        "Review",
        lambda d: {"DateFrom": "2026-03-20T00:00:00Z", "DateTo": "2026-04-05T00:00:00.000Z"},
        lambda d, f: [
            r
            for r in d.reviews
            if _instant(f["DateFrom"]) <= _instant(r["ScheduledFor"]) <= _instant(f["DateTo"])
        ],
    ),
}


@pytest.mark.parametrize("case", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_search_filters_select_exactly_the_matching_rows(sim, api, case):
    entity, make_filter, expected = case
    body = make_filter(sim.data)
    rows, _ = _page_through(api, f"{sim.base_url}/{entity}/Search", body, 7)
    wanted = expected(sim.data, body)
    everything = {"User": sim.data.users, "LearningAim": sim.data.learning_aims}.get(
        entity, sim.data.reviews
    )
    assert 0 < len(wanted) < len(everything)  # the filter really filters
    assert [r["ID"] for r in rows] == [r["ID"] for r in wanted]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"OrganisationID": ORG, "Colour": "red"}, -2),
        ({"OrganisationID": "5740"}, -3),
        ({"LastModified": "yesterday"}, -3),
        ([1, 2], -1),
    ],
    ids=["unknown-filter", "text-organisation", "bad-instant", "not-an-object"],
)
def test_bad_search_bodies_get_400_with_a_code(sim, api, body, code):
    answer = api.post(f"{sim.base_url}/User/Search/1/10", json=body, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["code"] == code


# ----- single rows ------------------------------------------------------------------------
@pytest.mark.parametrize("entity", ["User", "Review"])
def test_get_one_row_and_404_when_missing(sim, api, entity):
    rows = sim.data.users if entity == "User" else sim.data.reviews
    found = api.get(f"{sim.base_url}/{entity}/{rows[3]['ID']}", timeout=5)
    assert found.json() == rows[3]
    missing = api.get(f"{sim.base_url}/{entity}/42", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["code"] < 0


# ----- learning aim update ----------------------------------------------------------------
def test_learning_aim_update_changes_only_the_fields_sent(sim, api):
    aim = sim.data.learning_aims[2]
    before = dict(aim)
    change = {"RegistrationNumber": "ABC123", "RegistrationDate": "2026-06-01T00:00:00Z"}
    answer = api.post(f"{sim.base_url}/LearningAim/{aim['ID']}", json=change, timeout=5)
    assert (answer.status_code, answer.content) == (204, b"")
    assert aim == {**before, **change}
    rows, _ = _page_through(
        api, f"{sim.base_url}/LearningAim/Search", {"UserID": aim["UserID"]}, 100
    )
    assert next(r for r in rows if r["ID"] == aim["ID"])["RegistrationNumber"] == "ABC123"


@pytest.mark.parametrize(
    ("aim_id", "body", "status", "code"),
    [
        (None, {"NoSuchField": 1}, 400, -2),
        (None, {"UserID": 1}, 400, -2),
        (None, {"TotalElements": -1}, 400, -3),
        (None, {"TotalElements": "12"}, 400, -3),
        (None, {"RegistrationDate": "2026-02-30T00:00:00Z"}, 400, -3),
        (None, {}, 400, -1),
        (1, {"RegistrationNumber": "X"}, 404, -4),
    ],
    ids=[
        "unknown-field",
        "read-only-field",
        "negative-count",
        "text-count",
        "bad-date",
        "empty-body",
        "unknown-aim",
    ],
)
def test_learning_aim_update_errors(sim, api, aim_id, body, status, code):
    aim = sim.data.learning_aims[0]
    before = dict(aim)
    answer = api.post(f"{sim.base_url}/LearningAim/{aim_id or aim['ID']}", json=body, timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert aim == before


# ----- creates ----------------------------------------------------------------------------
def _learner_and_assessor(sim: OneFileSimulator) -> tuple[dict, int]:
    learner = next(u for u in sim.data.users if u["Role"] == 1 and u["OrganisationID"] == ORG)
    assessor = next(u for u in sim.data.users if u["Role"] in (4, 5, 10))
    return learner, assessor["ID"]


def _visit_body(learner: dict, assessor_id: int) -> dict:
    return {
        "LearnerID": learner["ID"],
        "OrganisationID": learner["OrganisationID"],
        "DateFrom": "2026-04-02T08:00:00Z",
        "DateTo": "2026-04-02T09:00:00Z",
        "VisitTypeID": 3,
        "SMSReminder": False,
        "AssessorID": assessor_id,
    }


def test_visit_then_review_create_and_the_review_is_found_by_search(sim, api):
    before = sim.clock.now().replace(microsecond=0)  # CreatedOn keeps milliseconds only
    learner, assessor_id = _learner_and_assessor(sim)
    visit = api.post(f"{sim.base_url}/Visit", json=_visit_body(learner, assessor_id), timeout=5)
    assert visit.status_code == 200
    visit_id = visit.json()
    assert visit_id not in {r["ID"] for r in sim.data.visits[:-1]}
    assert sim.data.visits[-1]["ID"] == visit_id
    review_body = {
        "LearnerID": learner["ID"],
        "Status": 1,
        "ScheduledFor": "2026-04-02T08:00:00Z",
        "VisitID": visit_id,
        "AssessorID": assessor_id,
    }
    created = api.post(f"{sim.base_url}/Review", json=review_body, timeout=5)
    assert created.status_code == 200
    review_id = created.json()
    window = {
        "OrganisationID": ORG,
        "LearnerID": learner["ID"],
        "DateFrom": "2026-04-02T00:00:00Z",
        "DateTo": "2026-04-03T00:00:00Z",
    }
    rows, _ = _page_through(api, f"{sim.base_url}/Review/Search", window, 100)
    found = [r for r in rows if r["VisitID"] == visit_id]
    assert [r["ID"] for r in found] == [review_id]
    row = found[0]
    assert (row["Status"], row["AssessorID"], row["ScheduledFor"]) == (
        1,
        assessor_id,
        "2026-04-02T08:00:00Z",
    )
    created_on = _instant(row["CreatedOn"])
    assert before <= created_on <= sim.clock.now()  # stamped by the simulator's clock
    assert api.get(f"{sim.base_url}/Review/{review_id}", timeout=5).json() == row


def _other_learners_visit(sim, api, learner):
    other = next(
        u
        for u in sim.data.users
        if u["Role"] == 1 and u["ID"] != learner["ID"] and u["OrganisationID"] == ORG
    )
    _, assessor_id = _learner_and_assessor(sim)
    return api.post(f"{sim.base_url}/Visit", json=_visit_body(other, assessor_id), timeout=5).json()


CREATE_ERRORS = {
    "visit-unknown-centre": ("Visit", lambda s, a, lrn, v: {**v, "OrganisationID": 1}, -11),
    "visit-missing-field": (
        "Visit",
        lambda s, a, lrn, v: {k: v[k] for k in v if k != "DateTo"},
        -1,
    ),
    "visit-unknown-field": ("Visit", lambda s, a, lrn, v: {**v, "Colour": "red"}, -2),
    "visit-unknown-learner": ("Visit", lambda s, a, lrn, v: {**v, "LearnerID": 1}, -20),
    "visit-learner-elsewhere": ("Visit", lambda s, a, lrn, v: {**v, "OrganisationID": 5741}, -20),
    "visit-assessor-is-a-learner": (
        "Visit",
        lambda s, a, lrn, v: {**v, "AssessorID": lrn["ID"]},
        -21,
    ),
    "visit-ends-before-start": (
        "Visit",
        lambda s, a, lrn, v: {**v, "DateTo": "2026-04-02T07:00:00Z"},
        -3,
    ),
    "visit-bad-type": ("Visit", lambda s, a, lrn, v: {**v, "VisitTypeID": 9}, -3),
    "review-status-not-1": (
        "Review",
        lambda s, a, lrn, v: {"LearnerID": lrn["ID"], "Status": 2, "ScheduledFor": v["DateFrom"]},
        -3,
    ),
    "review-bad-instant": (
        "Review",
        lambda s, a, lrn, v: {"LearnerID": lrn["ID"], "Status": 1, "ScheduledFor": "soon"},
        -3,
    ),
    "review-other-learners-visit": (
        "Review",
        lambda s, a, lrn, v: {
            "LearnerID": lrn["ID"],
            "Status": 1,
            "ScheduledFor": v["DateFrom"],
            "VisitID": _other_learners_visit(s, a, lrn),
        },
        -22,
    ),
}


@pytest.mark.parametrize("case", CREATE_ERRORS.values(), ids=CREATE_ERRORS.keys())
def test_create_errors_answer_400_with_a_negative_code(sim, api, case):
    entity, make_body, code = case
    learner, assessor_id = _learner_and_assessor(sim)
    body = make_body(sim, api, learner, _visit_body(learner, assessor_id))
    counts = (len(sim.data.visits), len(sim.data.reviews))
    answer = api.post(f"{sim.base_url}/{entity}", json=body, timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (400, code)
    assert answer.json()["message"]
    assert (len(sim.data.visits), len(sim.data.reviews)) == counts


# ----- rate limit -------------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [None, 2], ids=["no-retry-after", "retry-after"])
def test_rate_limit_answers_429_over_the_sliding_window(start_sim, retry_after):
    sim = start_sim(rate_limit=(5, 0.5))
    sim.retry_after_on_limit = retry_after
    api = login(sim)  # call 1 of 5
    url = f"{sim.base_url}/Organisation/Search"
    statuses = [api.post(url, json={}, timeout=5) for _ in range(5)]
    assert [a.status_code for a in statuses] == [200, 200, 200, 200, 429]
    assert statuses[-1].headers.get("Retry-After") == (retry_after and str(retry_after))
    assert [c.status for c in sim.calls][-1] == 429  # refusals are recorded too
    time.sleep(0.55)
    assert api.post(url, json={}, timeout=5).status_code == 200


# ----- faults -----------------------------------------------------------------------------
def test_status_fault_hits_the_first_n_matching_calls_only(sim, api):
    sim.faults.add(status=503, times=2, path_contains="/User/Search", method="POST")
    url = f"{sim.base_url}/User/Search/1/5"
    organisations = api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5)
    statuses = [
        api.post(url, json={"OrganisationID": ORG}, timeout=5).status_code for _ in range(3)
    ]
    assert (organisations.status_code, statuses) == (200, [503, 503, 200])


def test_status_fault_can_send_retry_after(sim, api):
    sim.faults.add(status=429, retry_after=3)
    answer = api.post(f"{sim.base_url}/Organisation/Search", json={}, timeout=5)
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")


def test_ratio_fault_fails_a_seeded_share_reproducibly(sim, api):
    url = f"{sim.base_url}/Organisation/Search"

    def run() -> list[int]:
        sim.faults.clear()
        sim.faults.add(status=500, ratio=0.5, path_contains="/Organisation")
        return [api.post(url, json={}, timeout=5).status_code for _ in range(20)]

    first = run()
    assert 0 < first.count(500) < 20
    assert run() == first


def test_delay_fault_outlasts_a_client_timeout_once(sim, api):
    sim.faults.delay(0.6, times=1, path_contains="/Organisation")
    url = f"{sim.base_url}/Organisation/Search"
    with pytest.raises(requests.Timeout):
        api.post(url, json={}, timeout=0.2)
    assert api.post(url, json={}, timeout=5).status_code == 200


def test_drop_connection_fault_closes_without_an_answer(sim, api):
    sim.faults.drop_connection(times=1, path_contains="/Organisation")
    url = f"{sim.base_url}/Organisation/Search"
    with pytest.raises(requests.ConnectionError):
        api.post(url, json={}, timeout=5)
    assert [c.status for c in sim.calls_to("/Organisation")] == [None]
    assert api.post(url, json={}, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("entity", "kind", "broken"),
    [
        ("User", "missing_id", lambda row: "ID" not in row),
        ("User", "bad_date", lambda row: _bad_instant(row["LastModified"])),
        ("LearningAim", "text_number", lambda row: isinstance(row["TotalElements"], str)),
        ("Review", "bad_date", lambda row: _bad_instant(row["ScheduledFor"])),
        ("Review", "text_number", lambda row: isinstance(row["AssessorID"], str)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_malformed_rows_spoil_the_next_page_only(sim, api, entity, kind, broken):
    sim.faults.malformed_rows(entity, kinds=(kind,), count=2)
    url = f"{sim.base_url}/{entity}/Search/1/10"
    first = api.post(url, json={"OrganisationID": ORG}, timeout=5).json()
    again = api.post(url, json={"OrganisationID": ORG}, timeout=5).json()
    assert [broken(row) for row in first] == [True, True] + [False] * 8
    assert not any(broken(row) for row in again)
    assert [(m.kind, m.source_id) for m in sim.faults.served_malformed] == [
        (kind, row["ID"]) for row in again[:2]
    ]


def _bad_instant(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return True
    return False


def test_calls_are_recorded_without_the_prefix_with_body_and_clock(sim, api):
    sim.reset_calls()
    before = sim.clock.now()
    api.post(f"{sim.base_url}/User/Search/2/50", json={"OrganisationID": ORG}, timeout=5)
    (call,) = sim.calls
    assert (call.method, call.path, call.status, call.body) == (
        "POST",
        "/User/Search/2/50",
        200,
        {"OrganisationID": ORG},
    )
    assert before <= call.at_clock <= sim.clock.now()  # stamped by the simulator's clock
    assert sim.calls_to("/User/Search") == [call]
    assert sim.calls_to("/Review") == []


# ----- command line -----------------------------------------------------------------------
def test_command_line_serves_a_generated_dataset_until_interrupted():
    source_root = Path(onefile_simulator.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onefile_simulator",
            "--seed",
            "3",
            "--port",
            "0",
            "--customer-token",
            "cli-token",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        base_url = process.stdout.readline().split()[-1]
        assert "cli-token" in process.stdout.readline()
        answer = requests.post(
            f"{base_url}/Authentication", headers={"X-CustomerToken": "cli-token"}, timeout=5
        )
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
