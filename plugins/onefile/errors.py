"""What a failed OneFile call raises, and how a failed answer becomes that exception.

Three exceptions, one for each way a call can fail for good: :class:`OneFileApiError`
(one call refused or unanswered: callers record it and go on), :class:`OneFilePagingError`
(a paged search whose pages contradict each other) and :class:`OneFileAuthenticationError`
(the customer token refused: fails the Airflow task at once). Their text is built from the
method, the path and OneFile's own error body, never from headers, so it cannot carry a
token; :func:`error_from_answer` blanks a token OneFile echoes in its body as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException


class OneFileApiError(AirflowException):
    """A OneFile call that failed for good: names the call, the status and OneFile's own code.

    ``status`` is None when no HTTP answer came back (timeout, dropped connection). The text
    is built only from the method, the path and OneFile's error body, never from headers, so
    it cannot carry a token.
    """

    def __init__(
        self, status: int | None, code: int | None, message: str, method: str, path: str
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        answer = f"HTTP {status}" if status is not None else "no answer"
        detail = f"code {code}: {message}" if code is not None else message
        super().__init__(f"OneFile {method} {path} failed: {answer}, {detail}")


class OneFilePagingError(OneFileApiError):
    """A paged search whose pages contradict each other (:meth:`OneFileHook.search`):
    raised instead of returning part of the search's rows. ``status`` is None (each call
    was answered; it is the answers together that are wrong)."""

    def __init__(self, entity: str, message: str, path: str) -> None:
        self.entity = entity
        super().__init__(None, None, message, "POST", path)
        self.args = (f"OneFile {entity} search inconsistent at POST {path}: {message}",)


class OneFileAuthenticationError(AirflowFailException):
    """OneFile refused the customer token (401 or 403 at ``POST /Authentication``), or the
    connection has none. No retry can fix that, so it is raised at once, and as an
    :class:`~airflow.sdk.exceptions.AirflowFailException` it fails the Airflow task without
    its retries: a wrong token goes red in seconds, not after every retry delay.

    Deliberately *not* a :class:`OneFileApiError`: callers catch that to record one
    OneFile call's failure and go on with the next (a refused write is a rejected row); an
    authentication failure is no row's fault and must stop the task. The text names the
    connection and the HTTP status, never a token.
    """

    def __init__(
        self,
        conn_id: str,
        status: int | None,
        method: str = "POST",
        path: str = "/Authentication",
    ) -> None:
        self.conn_id = conn_id
        self.status = status
        self.method = method
        self.path = path
        if status is None:
            text = (
                f"OneFile connection {conn_id!r} has no customer token: "
                "set the connection's password"
            )
        else:
            text = (
                f"OneFile refused the customer token of connection {conn_id!r} "
                f"(HTTP {status} at {method} {path}): check the connection's password"
            )
        super().__init__(text)

    def serialize(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """What Airflow needs to rebuild the exception elsewhere (keyword arguments, since
        the default of ``(str(self),)`` does not fit this constructor)."""
        cls = type(self)
        names = ("conn_id", "status", "method", "path")
        return f"{cls.__module__}.{cls.__name__}", (), {n: getattr(self, n) for n in names}


def error_from_answer(
    response: requests.Response, method: str, path: str, redact: Callable[[str], str]
) -> OneFileApiError:
    """OneFileApiError from a failed answer, with OneFile's ``code``/``message`` if any;
    ``redact`` blanks either token should OneFile echo it in the message."""
    code: int | None = None
    message = response.reason or ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("code") if isinstance(body.get("code"), int) else None
        message = str(body.get("message", message))
    return OneFileApiError(response.status_code, code, redact(message), method, path)
