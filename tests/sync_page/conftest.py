"""The sync page's app in-process (FastAPI TestClient) over generated history on the real
PostgreSQL server, with a real Airflow auth manager and real JWTs.

The auth manager is Airflow's simple auth manager, signing and checking tokens with a test
secret exactly as the api-server does (``get_user`` -> ``get_user_from_token``, which
also looks up revoked tokens in the tests' migrated Airflow metadata DB), except that it
denies the user ``mallory`` every DAG: an auth manager's "no", whatever the role.
"""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from airflow.api_fastapi import app as airflow_app
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sync_page.app import URL_PREFIX, Sources, create_app

from tests.sync_page.history import History, write_history, write_learners

DENIED = "mallory"


class DenyingAuthManager(SimpleAuthManager):
    """The simple auth manager, denying one named user every DAG."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name() == DENIED:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )


def _clear_token_caches() -> None:
    SimpleAuthManager._get_token_signer.cache_clear()
    SimpleAuthManager._get_token_validator.cache_clear()


@pytest.fixture
def auth_manager(airflow_db, monkeypatch) -> DenyingAuthManager:
    """Airflow's global auth manager for the test (what get_user asks), with a JWT secret
    of the test's own."""
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
    _clear_token_caches()
    manager = DenyingAuthManager()
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", manager)
    yield manager
    _clear_token_caches()


@pytest.fixture
def token(auth_manager):
    """``token(name, role)``: a JWT of that user, as ``POST /auth/token`` issues it."""

    def make(name: str = "reader", role: str | None = "viewer", seconds: int = 600) -> str:
        user = SimpleAuthManagerUser(username=name, role=role)
        return auth_manager.generate_jwt(user, expiration_time_in_seconds=seconds)

    return make


@pytest.fixture(scope="package")
def history_url(pg_server) -> str:
    """One PostgreSQL database of generated history for the whole folder (read only)."""
    return pg_server.create_database("sync_page_history")


@pytest.fixture(scope="package")
def history(history_url) -> History:
    engine = sa.create_engine(history_url)
    try:
        written = write_learners(engine)
        return write_history(engine, written, days=400)
    finally:
        engine.dispose()


@pytest.fixture(scope="package")
def history_engine(history_url, history) -> sa.Engine:
    engine = sa.create_engine(history_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(history_engine, auth_manager) -> TestClient:
    """The app over the history, mounted at /onefile-sync as the api-server mounts it,
    without credentials."""
    app = create_app(Sources(picsweb=lambda: history_engine, staging=lambda: history_engine))
    parent = FastAPI()
    parent.mount(URL_PREFIX, app)
    with TestClient(parent) as test_client:
        yield test_client


@pytest.fixture
def reader(client, token) -> TestClient:
    """The same app, as a viewer with a Bearer token."""
    client.headers["Authorization"] = f"Bearer {token()}"
    return client
