"""OneFile's two tokens: the customer token from the connection and the session token.

The customer token (the connection's password) buys a session token at ``POST
/Authentication``; every other call carries the session token, renewed after 23 hours or
once on a 401 (the hook does the call; these helpers decide and check). Both tokens are
handed to Airflow's secret masker as soon as they are known, and :func:`redact` blanks them
in any text OneFile echoes, so neither reaches a log or an error message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import requests
from airflow.sdk.log import mask_secret

from onefile.errors import OneFileApiError, OneFileAuthenticationError

SESSION_TOKEN_LIFETIME = timedelta(hours=23)
"""OneFile session tokens die 24 h after issue; renewing at 23 h leaves an hour of slack."""

REDACTED = "***"


def customer_token_of(connection: Any, conn_id: str) -> str:
    """The connection's customer token (its password), masked from now on; a connection
    without one fails the task (:class:`OneFileAuthenticationError`)."""
    if not connection.password:
        raise OneFileAuthenticationError(conn_id, None)
    mask_secret(connection.password)
    return connection.password


def session_token_due(
    token: str | None,
    issued_at: datetime | None,
    clock: Callable[[], datetime],
    refused: str | None,
) -> bool:
    """Whether a session token must be issued: none yet, 23 h old by ``clock``, or the one
    just refused."""
    age_ok = issued_at is not None and clock() - issued_at < SESSION_TOKEN_LIFETIME
    return token is None or not age_ok or token == refused


def session_token_from(response: requests.Response) -> str:
    """The session token of a ``POST /Authentication`` answer (bare or a JSON string),
    masked from now on; an empty answer is a :class:`OneFileApiError`."""
    token = response.text.strip().strip('"').strip()
    if not token:
        raise OneFileApiError(
            response.status_code, None, "empty session token", "POST", "/Authentication"
        )
    mask_secret(token)
    return token


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Our own last line of defence: blank out each token wherever it might be echoed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
