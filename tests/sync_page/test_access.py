"""Every page, JSON endpoint and static file of the sync page refuses anyone Airflow's auth
manager has not authenticated (401) or does not allow to read the sync DAG's runs (403),
and gives them no data; an authenticated reader gets it, by Bearer token or by the UI's
JWT cookie."""

from __future__ import annotations

import pytest
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

from tests.sync_page.conftest import DENIED

ROUTES = [
    "/onefile-sync/",
    "/onefile-sync/runs/manual__2025-01-04T02%3A00%3A00%2B00%3A00",
    "/onefile-sync/audit?q=Smith",
    "/onefile-sync/api/runs",
    "/onefile-sync/api/runs?limit=5",
    "/onefile-sync/api/runs/manual__2025-01-04T02%3A00%3A00%2B00%3A00",
    "/onefile-sync/api/chart?days=30",
    "/onefile-sync/api/audit?q=1",
    "/onefile-sync/static/plotly.min.js",
    "/onefile-sync/static/sync_page.js",
    "/onefile-sync/static/sync_page.css",
]
# Text any successful answer of these routes would hold, which no refusal may.
SECRETS_OF_THE_DATA = ("manual__2025", "Smith", "O'Brien", "onefile_fields_changed", "Plotly")


def _refused(answer, status: int) -> None:
    assert answer.status_code == status, answer.text[:300]
    for text in SECRETS_OF_THE_DATA:
        assert text not in answer.text


@pytest.mark.parametrize("route", ROUTES)
def test_no_credentials_is_401(client, route):
    answer = client.get(route)
    _refused(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl",  # forged signature
        "Basic YWRtaW46YWRtaW4=",  # a password is no Airflow credential here
        "Bearer ",
    ],
    ids=["garbage", "forged", "basic", "empty"],
)
@pytest.mark.parametrize("route", ["/onefile-sync/api/runs", "/onefile-sync/"])
def test_a_bad_credential_is_401(client, route, header):
    _refused(client.get(route, headers={"Authorization": header}), 401)


def test_an_expired_token_is_401(client, token):
    expired = token(seconds=-3600)
    _refused(
        client.get("/onefile-sync/api/runs", headers={"Authorization": f"Bearer {expired}"}), 401
    )


def test_a_token_of_another_airflow_is_401(client, token, auth_manager, monkeypatch):
    """Signed with another JWT secret (another deployment's token)."""
    from tests.sync_page.conftest import _clear_token_caches

    good = token()
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "another-deployment-" + "x" * 64)
    _clear_token_caches()
    _refused(client.get("/onefile-sync/api/runs", headers={"Authorization": f"Bearer {good}"}), 401)


def test_a_revoked_token_is_401(client, token, auth_manager):
    """Logged out: Airflow keeps the token's id in its metadata DB as revoked."""
    revoked = token()
    assert (
        client.get(
            "/onefile-sync/api/runs", headers={"Authorization": f"Bearer {revoked}"}
        ).status_code
        == 200
    )
    auth_manager.revoke_token(revoked)
    _refused(
        client.get("/onefile-sync/api/runs", headers={"Authorization": f"Bearer {revoked}"}), 401
    )


@pytest.mark.parametrize("route", ROUTES)
def test_a_user_the_auth_manager_denies_is_403(client, token, route):
    """``mallory`` is an admin by role, but the auth manager denies her the DAG."""
    answer = client.get(route, headers={"Authorization": f"Bearer {token(DENIED, 'admin')}"})
    _refused(answer, 403)


def test_a_user_without_a_role_is_403(client, token):
    answer = client.get(
        "/onefile-sync/api/runs", headers={"Authorization": f"Bearer {token('nobody', None)}"}
    )
    _refused(answer, 403)


@pytest.mark.parametrize(
    ("route", "role"), [(route, "viewer") for route in ROUTES] + [(ROUTES[0], "admin")]
)
def test_an_authenticated_reader_gets_every_route(client, token, route, role):
    answer = client.get(route, headers={"Authorization": f"Bearer {token(role=role)}"})
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["cache-control"] in ("no-store", "private, max-age=3600")


def test_the_ui_cookie_is_a_credential(client, token):
    """The browser inside Airflow's UI sends the JWT cookie the UI login set."""
    client.cookies.set(COOKIE_NAME_JWT_TOKEN, token())
    answer = client.get("/onefile-sync/", headers={"Accept": "text/html"})
    assert answer.status_code == 200
    assert 'id="runs"' in answer.text


def test_a_bad_cookie_is_401(client):
    client.cookies.set(COOKIE_NAME_JWT_TOKEN, "forged")
    _refused(client.get("/onefile-sync/", headers={"Accept": "text/html"}), 401)


def test_a_refused_page_links_to_the_login_relatively(client):
    """A person who opens the page while logged out is sent to Airflow's login, by a
    link relative to the page (Airflow may be behind a proxy path)."""
    answer = client.get("/onefile-sync/runs/x", headers={"Accept": "text/html"})
    assert answer.status_code == 401
    assert 'href="../../auth/login"' in answer.text
    answer = client.get("/onefile-sync/", headers={"Accept": "text/html"})
    assert 'href="../auth/login"' in answer.text
