"""Who may read the sync page: every route depends on :func:`reader`.

Airflow does not guard the apps plugins mount, so the caller must be authenticated by
Airflow's auth manager (the UI's JWT cookie, or ``Authorization: Bearer <token>`` from
``POST /auth/token``) and allowed to read the sync DAG's runs (``is_authorized_dag(GET,
RUN)``). A missing, malformed, expired or revoked token is answered 401, a user the auth
manager denies 403; neither gets data.
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from sync_page.sources import Sources


class NotAuthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})


async def reader(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Any:
    """The Airflow user of the request, if Airflow's auth manager lets them read the sync
    DAG's runs: 401 without a valid credential, 403 when denied."""
    try:
        user = await get_user(request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException as exc:
        # Airflow answers a malformed, badly signed or revoked token with 403; for this
        # page every failed authentication is a 401 (log in again), 403 means "denied".
        if exc.status_code in (401, 403):
            raise NotAuthenticated() from None
        raise
    sources: Sources = request.app.state.sources
    allowed = get_auth_manager().is_authorized_dag(
        method="GET",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=sources.dag_id),
        user=user,
    )
    if not allowed:
        raise HTTPException(403, f"Not allowed to read the runs of DAG {sources.dag_id}")
    return user


Reader = Annotated[Any, Depends(reader)]
