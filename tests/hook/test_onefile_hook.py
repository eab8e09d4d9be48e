"""OneFileHook against the OneFile simulator over real HTTP: auth, paging, limits, retries, secrets."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from airflow.sdk.log import redact

from onefile.errors import OneFileApiError
from onefile.hook import OneFileHook, format_instant
from onefile.retries import full_jitter_backoff
from onefile.settings import OneFileSettings
from onefile_simulator import OneFileSimulator
from onefile_simulator.server import ERR_CENTRE_NOT_FOUND, ERR_SERVER_FAULT, ERR_UNKNOWN_FIELD
from tests.hook.conftest import CUSTOMER_TOKEN, FAST

LEARNER = 1
HookFor = Callable[..., OneFileHook]


def statuses(sim: OneFileSimulator, path_prefix: str) -> list[int]:
    return [call.status for call in sim.calls_to(path_prefix)]


def learners_of(sim: OneFileSimulator, organisation_id: int) -> list[dict]:
    return [
        user
        for user in sim.data.users
        if user["OrganisationID"] == organisation_id and user["Role"] == LEARNER
    ]


def first_org(sim: OneFileSimulator) -> int:
    return sim.data.organisations[0]["ID"]


def organisation_rows(sim: OneFileSimulator) -> list[dict]:
    """What Organisation/Search answers: the short rows of every centre."""
    return [{"ID": o["ID"], "Name": o["Name"]} for o in sim.data.organisations]


# ---------------------------------------------------------------- pure helpers
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 3, 29, 23, 30, 5), "2026-03-29T23:30:05Z"),  # noqa: DTZ001
        (datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), "2026-06-01T00:00:00Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "2026-01-02T03:04:05Z"),
    ],
    ids=["naive-is-utc", "bst-offset-converted", "milliseconds-dropped"],
)
def test_format_instant(value: datetime, expected: str) -> None:
    assert format_instant(value) == expected


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 1.0, 0.5), (3, 1.0, 4.0), (3, 0.25, 1.0), (10, 1.0, 30.0), (10, 0.0, 0.0)],
    ids=["first", "grows-2x", "jittered", "capped", "zero-jitter"],
)
def test_full_jitter_backoff(attempt: int, rand: float, expected: float) -> None:
    assert full_jitter_backoff(attempt, 0.5, 30.0, rand=lambda: rand) == expected


@pytest.mark.parametrize(
    ("extras", "overrides", "expected_page_size", "expected_period"),
    [
        ({}, {}, 100, 60.0),
        ({"page_size": "25", "rate_period_seconds": "10"}, {}, 25, 10.0),
        ({"page_size": 25}, {"page_size": 7, "rate_period_seconds": None}, 7, 60.0),
    ],
    ids=["defaults", "uri-extras-as-strings", "argument-beats-extra"],
)
def test_settings_precedence(
    extras: dict, overrides: dict, expected_page_size: int, expected_period: float
) -> None:
    settings = OneFileSettings.merged(extras, overrides)
    assert (settings.page_size, settings.rate_period_seconds) == (
        expected_page_size,
        expected_period,
    )


# ---------------------------------------------------------------- connection and auth
@pytest.mark.parametrize("form", ["json", "uri", "uri-encoded-host"])
def test_connection_forms_reach_the_api(
    sim: OneFileSimulator, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """Deployments give the connection as JSON or URI; both must land on {host}/api/v2.1."""
    base = sim.base_url
    hostport = base.split("://", 1)[1].split("/", 1)[0]
    value = {
        "json": json.dumps({"conn_type": "http", "host": base, "password": CUSTOMER_TOKEN}),
        "uri": f"http://:{CUSTOMER_TOKEN}@{hostport}/api%2Fv2.1",
        "uri-encoded-host": f"http://:{CUSTOMER_TOKEN}@"
        + base.replace(":", "%3A").replace("/", "%2F"),
    }[form]
    monkeypatch.setenv("AIRFLOW_CONN_ONEFILE_API", value)
    organisations = OneFileHook(clock=sim.clock.now, **FAST).search_organisations()
    assert organisations == organisation_rows(sim)


def test_authenticates_once_then_uses_session_token(
    sim: OneFileSimulator, hook: OneFileHook
) -> None:
    org = first_org(sim)
    assert hook.search_organisations() == organisation_rows(sim)
    assert hook.get_user(learners_of(sim, org)[0]["ID"]) == learners_of(sim, org)[0]
    assert [(c.method, c.path, c.status) for c in sim.calls][:1] == [
        ("POST", "/Authentication", 200)
    ]
    assert len(sim.calls_to("/Authentication")) == 1
    assert all(call.status < 400 for call in sim.calls)
    assert hook.calls_made == len(sim.calls) == 3


# A wrong customer token: tests/hook/test_authentication_failure.py.


@pytest.mark.parametrize("quote_token", [False, True], ids=["bare", "json-quoted"])
def test_session_token_bare_or_quoted(
    start_sim: Callable[..., OneFileSimulator], hook_for: HookFor, quote_token: bool
) -> None:
    sim = start_sim(quote_token=quote_token)
    hook = hook_for(sim)
    assert hook.search_organisations() == organisation_rows(sim)
    assert statuses(sim, "/Organisation") == [200]


@pytest.mark.parametrize(
    ("advance", "expected_auth_calls"),
    [(timedelta(hours=22, minutes=59), 1), (timedelta(hours=23, seconds=1), 2)],
    ids=["22h59-keeps-token", "23h-renews"],
)
def test_session_token_renewed_after_23_hours(
    sim: OneFileSimulator, hook: OneFileHook, advance: timedelta, expected_auth_calls: int
) -> None:
    hook.search_organisations()
    sim.clock.advance(advance.total_seconds())
    hook.search_organisations()
    assert len(sim.calls_to("/Authentication")) == expected_auth_calls
    assert 401 not in [call.status for call in sim.calls]


def test_401_renews_once_and_repeats_the_call(sim: OneFileSimulator, hook: OneFileHook) -> None:
    hook.search_organisations()
    sim.expire_session_tokens()
    assert hook.search_organisations() == organisation_rows(sim)
    assert [(c.path, c.status) for c in sim.calls[1:]] == [
        ("/Organisation/Search", 200),
        ("/Organisation/Search", 401),
        ("/Authentication", 200),
        ("/Organisation/Search", 200),
    ]


def test_401_after_renewal_is_a_clear_error(sim: OneFileSimulator, hook: OneFileHook) -> None:
    sim.faults.add(status=401, times=2, path_contains="/Organisation")
    with pytest.raises(OneFileApiError, match="refused again") as raised:
        hook.search_organisations()
    assert raised.value.status == 401
    assert statuses(sim, "/Organisation") == [401, 401]
    assert len(sim.calls_to("/Authentication")) == 2


# ---------------------------------------------------------------- paging
@pytest.mark.parametrize(
    "ending", ["short_page", "empty_list", "no_content"], ids=lambda e: f"ends-on-{e}"
)
def test_paged_search_reads_every_row_and_stops(
    sim: OneFileSimulator, hook_for: HookFor, ending: str
) -> None:
    org = first_org(sim)
    expected = learners_of(sim, org)
    count = len(expected)
    assert count >= 4, "the dataset must give several pages"
    if ending == "short_page":
        size = next(s for s in range(2, count) if count % s)
    else:
        sim.empty_page_form = ending
        size = next((s for s in range(2, count) if count % s == 0), count)
    hook = hook_for(sim, page_size=size)

    rows = list(hook.search_users(org, LEARNER))

    assert sorted(r["ID"] for r in rows) == sorted(u["ID"] for u in expected)
    # A short last page is the last only once the page after it is empty (contract:
    # Paging [risk]), so it costs one confirming call; a full last page is followed by
    # the empty page (or 204) that ends the search anyway.
    pages = math.ceil(count / size) + 1 if ending == "short_page" else count // size + 1
    assert [c.path for c in sim.calls_to("/User/Search")] == [
        f"/User/Search/{page}/{size}" for page in range(1, pages + 1)
    ]
    assert statuses(sim, "/User/Search")[-1] == (204 if ending == "no_content" else 200)


def test_search_reviews_bounds_scheduled_for(sim: OneFileSimulator, hook: OneFileHook) -> None:
    """The date filter reaches OneFile in its instant format and bounds ScheduledFor."""
    org = first_org(sim)
    all_rows = list(hook.search_reviews(org))
    assert len(all_rows) >= 4, "the dataset must hold reviews"
    scheduled = sorted(_parse_instant(r["ScheduledFor"]) for r in all_rows)
    second = timedelta(seconds=1)
    date_from = scheduled[len(scheduled) // 4].replace(microsecond=0) - second
    date_to = scheduled[3 * len(scheduled) // 4].replace(microsecond=0) + second

    rows = list(hook.search_reviews(org, date_from=date_from, date_to=date_to))

    expected = {
        r["ID"] for r in all_rows if date_from <= _parse_instant(r["ScheduledFor"]) <= date_to
    }
    assert {r["ID"] for r in rows} == expected
    assert 0 < len(expected) < len(all_rows)


def _parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- writes
def test_create_visit_and_review_then_read_back(sim: OneFileSimulator, hook: OneFileHook) -> None:
    org = first_org(sim)
    learner = learners_of(sim, org)[0]
    visit_id = hook.create_visit(
        {
            "LearnerID": learner["ID"],
            "OrganisationID": org,
            "DateFrom": "2026-06-01T09:00:00Z",
            "DateTo": "2026-06-01T10:00:00Z",
            "VisitTypeID": 3,
            "SMSReminder": False,
            "AssessorID": learner["DefaultAssessorID"],
        }
    )
    review_id = hook.create_review(
        {
            "LearnerID": learner["ID"],
            "Status": 1,
            "ScheduledFor": "2026-06-01T09:00:00Z",
            "VisitID": visit_id,
            "AssessorID": learner["DefaultAssessorID"],
        }
    )
    review = hook.get_review(review_id)
    assert (review["ID"], review["VisitID"], review["LearnerID"]) == (
        review_id,
        visit_id,
        learner["ID"],
    )
    assert visit_id in {v["ID"] for v in sim.data.visits}


def test_update_learning_aim_sends_only_the_given_fields(
    sim: OneFileSimulator, hook: OneFileHook
) -> None:
    aim = sim.data.learning_aims[0]
    before = dict(aim)
    hook.update_learning_aim(aim["ID"], {"RegistrationNumber": "REG-42"})
    after = next(a for a in sim.data.learning_aims if a["ID"] == aim["ID"])
    assert after == {**before, "RegistrationNumber": "REG-42"}
    assert sim.calls_to(f"/LearningAim/{aim['ID']}")[0].status == 204


def test_search_learning_aims_of_one_learner(sim: OneFileSimulator, hook: OneFileHook) -> None:
    user_id = sim.data.learning_aims[0]["UserID"]
    rows = list(hook.search_learning_aims(user_id=user_id))
    assert {r["ID"] for r in rows} == {
        a["ID"] for a in sim.data.learning_aims if a["UserID"] == user_id
    }


# ---------------------------------------------------------------- 429, 5xx, timeouts, drops
@pytest.mark.parametrize(
    ("retry_after", "period", "min_gap"),
    [(1, 60.0, 1.0), (None, 0.5, 0.5)],
    ids=["retry-after-header", "no-header-waits-for-window"],
)
def test_429_waits_then_repeats(
    sim: OneFileSimulator, hook_for: HookFor, retry_after: int | None, period: float, min_gap: float
) -> None:
    hook = hook_for(sim, rate_period_seconds=period)
    sim.faults.add(status=429, times=1, path_contains="/Organisation", retry_after=retry_after)
    assert hook.search_organisations() == organisation_rows(sim)
    refused, accepted = sim.calls_to("/Organisation")
    assert (refused.status, accepted.status) == (429, 200)
    assert min_gap - 0.05 <= accepted.at - refused.at < min_gap + 1.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_backs_off_then_succeeds(sim: OneFileSimulator, hook: OneFileHook, status: int) -> None:
    sim.faults.add(status=status, times=2, path_contains="/User/Search")
    org = first_org(sim)
    rows = list(hook.search_users(org, LEARNER))
    assert len(rows) == len(learners_of(sim, org))
    assert statuses(sim, "/User/Search")[:3] == [status, status, 200]


def test_5xx_exhausted_names_call_status_code_and_message(
    sim: OneFileSimulator, hook_for: HookFor
) -> None:
    hook = hook_for(sim, max_retries=2)
    sim.faults.add(status=500, times=10, path_contains="/User/Search")
    with pytest.raises(OneFileApiError) as raised:
        list(hook.search_users(first_org(sim), LEARNER))
    error = raised.value
    assert statuses(sim, "/User/Search") == [500, 500, 500]
    assert (error.status, error.method, error.path) == (500, "POST", "/User/Search/1/100")
    assert (error.code, error.message) == (ERR_SERVER_FAULT, "Injected fault")
    for part in ("POST", "/User/Search/1/100", "500", str(ERR_SERVER_FAULT), "Injected fault"):
        assert part in str(error)


@pytest.mark.parametrize(
    ("call", "path", "code", "message"),
    [
        (
            lambda hook, sim: hook.update_learning_aim(
                sim.data.learning_aims[0]["ID"], {"NoSuchField": 1}
            ),
            "/LearningAim/",
            ERR_UNKNOWN_FIELD,
            "Unknown field NoSuchField",
        ),
        (
            lambda hook, sim: hook.create_visit(
                {
                    "LearnerID": sim.data.users[0]["ID"],
                    "OrganisationID": -5,
                    "DateFrom": "2026-06-01T09:00:00Z",
                    "DateTo": "2026-06-01T10:00:00Z",
                    "VisitTypeID": 3,
                }
            ),
            "/Visit",
            ERR_CENTRE_NOT_FOUND,
            "Centre not found",
        ),
    ],
    ids=["unknown-field", "centre-not-found"],
)
def test_400_is_not_retried_and_reports_onefile_code(
    sim: OneFileSimulator,
    hook: OneFileHook,
    call: Callable[[OneFileHook, OneFileSimulator], object],
    path: str,
    code: int,
    message: str,
) -> None:
    with pytest.raises(OneFileApiError) as raised:
        call(hook, sim)
    assert statuses(sim, path) == [400]
    assert (raised.value.status, raised.value.code, raised.value.message) == (400, code, message)
    assert message in str(raised.value)


@pytest.mark.parametrize("status", [403, 404])
def test_other_4xx_not_retried(sim: OneFileSimulator, hook: OneFileHook, status: int) -> None:
    sim.faults.add(status=status, times=5, path_contains="/Organisation")
    with pytest.raises(OneFileApiError) as raised:
        hook.search_organisations()
    assert raised.value.status == status
    assert statuses(sim, "/Organisation") == [status]


def test_timeout_is_retried(sim: OneFileSimulator, hook_for: HookFor) -> None:
    hook = hook_for(sim, timeout_seconds=0.3)
    sim.faults.delay(1.0, times=1, path_contains="/Organisation")
    assert hook.search_organisations() == organisation_rows(sim)
    assert hook.calls_made == 3  # authentication, the call that timed out, its repeat


def test_timeouts_exhausted_name_the_call(sim: OneFileSimulator, hook_for: HookFor) -> None:
    hook = hook_for(sim, timeout_seconds=0.2, max_retries=1)
    sim.faults.delay(1.0, times=5, path_contains="/Organisation")
    with pytest.raises(OneFileApiError) as raised:
        hook.search_organisations()
    assert (raised.value.status, raised.value.path) == (None, "/Organisation/Search")
    assert "Timeout" in str(raised.value)
    assert hook.calls_made == 3


def test_dropped_connection_is_retried(sim: OneFileSimulator, hook: OneFileHook) -> None:
    sim.faults.drop_connection(times=2, path_contains="/Organisation")
    assert hook.search_organisations() == organisation_rows(sim)
    assert hook.calls_made == 4  # authentication, two dropped, the one that worked


@pytest.mark.parametrize(
    ("fault", "expected_posts"),
    [({"status": 500}, 1), ({"status": 429, "retry_after": 0}, 2)],
    ids=["5xx-may-have-created-so-no-repeat", "429-refused-so-repeat"],
)
def test_create_repeats_only_when_onefile_surely_did_nothing(
    sim: OneFileSimulator, hook: OneFileHook, fault: dict, expected_posts: int
) -> None:
    """A repeated create after an ambiguous failure could make a second review."""
    review = sim.data.reviews[0]
    sim.faults.add(times=1, path_contains="/Review", method="POST", **fault)
    payload = {
        "LearnerID": review["LearnerID"],
        "Status": 1,
        "ScheduledFor": "2026-06-01T09:00:00Z",
        "VisitID": review["VisitID"],
        "AssessorID": review["AssessorID"],
    }
    if expected_posts == 1:
        with pytest.raises(OneFileApiError):
            hook.create_review(payload)
    else:
        assert hook.create_review(payload) in {r["ID"] for r in sim.data.reviews}
    assert len([c for c in sim.calls_to("/Review") if c.method == "POST"]) == expected_posts


# ---------------------------------------------------------------- secrets
def test_tokens_never_in_logs_or_errors(
    sim: OneFileSimulator,
    hook_for: HookFor,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = hook_for(sim, max_retries=1)
    errors: list[OneFileApiError] = []
    hook.search_organisations()
    sim.expire_session_tokens()
    hook.search_organisations()  # 401, renewal, repeat
    sim.faults.add(status=503, times=5, path_contains="/Organisation")
    sim.faults.add(status=401, times=2, path_contains="/User/")
    for call in (hook.search_organisations, lambda: hook.get_user(1)):
        with pytest.raises(OneFileApiError) as raised:
            call()
        errors.append(raised.value)
    session_token = hook._session_token
    assert session_token and session_token != CUSTOMER_TOKEN

    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err, *map(str, errors), *map(repr, errors)]
    assert any("retry" in text for text in texts), "the scenario must have logged something"
    for secret in (CUSTOMER_TOKEN, session_token):
        assert all(secret not in text for text in texts)
        assert secret not in redact(f"header {secret}"), "token not registered with the masker"


def test_error_text_redacts_a_token_echoed_by_onefile(hook: OneFileHook) -> None:
    """Should OneFile ever echo a token in its error message, our error text still hides it."""
    hook.search_organisations()
    answer = requests.Response()
    answer.status_code = 400
    answer._content = json.dumps(
        {"code": -1, "message": f"bad headers {CUSTOMER_TOKEN} / {hook._session_token}"}
    ).encode()
    error = hook._error(answer, "POST", "/Review")
    assert error.message == "bad headers *** / ***"
    assert CUSTOMER_TOKEN not in str(error)


# ---------------------------------------------------------------- rate limit
def test_burst_stays_under_the_rate_limit(
    start_sim: Callable[..., OneFileSimulator], hook_for: HookFor
) -> None:
    """500 calls from 4 threads with the server's limit equal to ours: no 429, no window over."""
    calls, period = 50, 1.0
    sim = start_sim(rate_limit=(calls, period))
    hook = hook_for(sim, calls_per_minute=calls, rate_period_seconds=period)
    user_id = sim.data.users[0]["ID"]
    hook.get_user(user_id)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: hook.get_user(user_id)["ID"], range(499)))

    assert results == [user_id] * 499
    assert len(sim.calls) == hook.calls_made == 501  # + authentication
    assert 429 not in [call.status for call in sim.calls]
    stamps = sorted(call.at for call in sim.calls)
    busiest = max(
        sum(1 for later in stamps[i:] if later < start + period) for i, start in enumerate(stamps)
    )
    assert busiest <= calls
