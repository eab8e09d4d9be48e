"""A customer token OneFile refuses fails at once, and fails the Airflow task without retries.

A wrong token is not transient: retrying it (in the hook, or as an Airflow task retry with
exponential delays) only delays the red run by half an hour. The hook raises
``OneFileAuthenticationError``, an ``AirflowFailException``, on the first refusal: the task
SDK's runner (``airflow.sdk.execution_time.task_runner.run``) marks a task that raises one
FAILED at once, whatever its ``retries``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException

from onefile.errors import OneFileApiError, OneFileAuthenticationError
from onefile.hook import OneFileHook
from onefile_simulator import OneFileSimulator
from tests.hook.conftest import CUSTOMER_TOKEN

HookFor = Callable[..., OneFileHook]
WRONG_TOKEN = "wrong-customer-token-4f1d"


def refused(status: int) -> str:
    return (
        "OneFile refused the customer token of connection 'onefile_api' "
        f"(HTTP {status} at POST /Authentication): check the connection's password"
    )


def _wrong_token(sim: OneFileSimulator, hook_for: HookFor) -> OneFileHook:
    return hook_for(sim, password=WRONG_TOKEN)


def _forbidden(sim: OneFileSimulator, hook_for: HookFor) -> OneFileHook:
    sim.faults.add(status=403, times=10, path_contains="/Authentication")
    return hook_for(sim)


@pytest.mark.parametrize(
    ("make_hook", "status"),
    [
        pytest.param(_wrong_token, 401, id="401-wrong-token"),
        pytest.param(_forbidden, 403, id="403"),
    ],
)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda hook: hook.search_organisations(), id="search"),
        pytest.param(lambda hook: list(hook.search_users(5740, 1)), id="paged-search"),
        pytest.param(lambda hook: hook.create_visit({"LearnerID": 1}), id="create"),
    ],
)
def test_refused_customer_token_fails_at_once(
    sim: OneFileSimulator,
    hook_for: HookFor,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    make_hook,
    status,
    call,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = make_hook(sim, hook_for)
    with pytest.raises(OneFileAuthenticationError) as raised:
        call(hook)
    error = raised.value
    assert isinstance(error, AirflowFailException)  # Airflow: fail, no task retries
    assert not isinstance(error, OneFileApiError)  # no caller takes it for a row's failure
    assert str(error) == refused(status)
    assert (error.conn_id, error.status, error.method, error.path) == (
        "onefile_api",
        status,
        "POST",
        "/Authentication",
    )
    assert [(c.path, c.status) for c in sim.calls] == [("/Authentication", status)]
    assert hook.calls_made == 1
    captured = capsys.readouterr()
    for text in (caplog.text, captured.out, captured.err, str(error), repr(error)):
        assert WRONG_TOKEN not in text and CUSTOMER_TOKEN not in text


def test_refused_renewal_is_the_same_failure(sim: OneFileSimulator, hook: OneFileHook) -> None:
    """The token worked, then OneFile support regenerated it: the 401 of a call is renewed
    once (contract), and the renewal's own 401 fails at once, with no repeat of the call."""
    hook.search_organisations()
    sim.customer_token = "regenerated-by-support"
    sim.expire_session_tokens()
    with pytest.raises(OneFileAuthenticationError, match=r"HTTP 401 at POST /Authentication"):
        hook.search_organisations()
    assert [(c.path, c.status) for c in sim.calls] == [
        ("/Authentication", 200),
        ("/Organisation/Search", 200),
        ("/Organisation/Search", 401),
        ("/Authentication", 401),
    ]


def test_refused_renewal_after_23_hours(sim: OneFileSimulator, hook: OneFileHook) -> None:
    hook.search_organisations()
    sim.customer_token = "regenerated-by-support"
    sim.clock.advance(timedelta(hours=23, seconds=1).total_seconds())
    with pytest.raises(OneFileAuthenticationError):
        hook.search_organisations()
    assert [(c.path, c.status) for c in sim.calls[2:]] == [("/Authentication", 401)]


def test_a_401_of_a_later_call_still_renews_and_repeats_once(
    sim: OneFileSimulator, hook: OneFileHook
) -> None:
    """Unchanged by the above: a refused *session* token is renewed, not a failure."""
    hook.search_organisations()
    sim.expire_session_tokens()
    hook.search_organisations()
    assert [(c.path, c.status) for c in sim.calls[2:]] == [
        ("/Organisation/Search", 401),
        ("/Authentication", 200),
        ("/Organisation/Search", 200),
    ]


def test_connection_without_customer_token(sim: OneFileSimulator, hook_for: HookFor) -> None:
    hook = hook_for(sim, password="")
    with pytest.raises(OneFileAuthenticationError) as raised:
        hook.search_organisations()
    assert isinstance(raised.value, AirflowFailException)
    assert str(raised.value) == (
        "OneFile connection 'onefile_api' has no customer token: set the connection's password"
    )
    assert sim.calls == []


def test_other_statuses_at_authentication_are_not_an_authentication_failure(
    sim: OneFileSimulator, hook_for: HookFor
) -> None:
    """A 5xx at /Authentication is OneFile's fault: retried, then an ordinary API error."""
    sim.faults.add(status=503, times=10, path_contains="/Authentication")
    hook = hook_for(sim, max_retries=2)
    with pytest.raises(OneFileApiError) as raised:
        hook.search_organisations()
    assert not isinstance(raised.value, AirflowFailException)
    assert [c.status for c in sim.calls] == [503, 503, 503]


def test_the_exception_survives_airflow_serialisation() -> None:
    error = OneFileAuthenticationError("onefile_live", 403)
    path, args, kwargs = error.serialize()
    assert path == "onefile.errors.OneFileAuthenticationError"
    rebuilt = OneFileAuthenticationError(*args, **kwargs)
    assert str(rebuilt) == str(error) and rebuilt.status == 403
