"""OneFileHook: the one place that talks to the OneFile API v2.1.

It owns everything the contract (``shared/contract/onefile-api.md``) asks of a client:
session tokens (issue, renew after 23 hours, renew once on a 401), paged searches (a
short page confirmed by the next, a page size cap found and paged by), a
client-side rate limiter that keeps a healthy run under OneFile's 300 calls a minute,
retries for 429 / 5xx / timeouts / dropped connections, and keeping both tokens out of
logs and error messages. A customer token OneFile refuses is never retried: it fails the
Airflow task at once, without the task's retries (:class:`OneFileAuthenticationError`).

This module wires them into one Airflow hook with its typed calls; each concern has its
module: ``auth`` (the two tokens), ``limiter`` (the call limiter, whose budget it counts),
``retries`` (what is repeated, after how long), ``paging`` (a search page by page),
``settings`` (the tuning) and ``errors`` (what a failed call raises).

The connection (default ``onefile_api``, type http): ``host`` is the base URL including
``/api/v2.1`` (Live, Beta and Practice differ only there), ``password`` is the customer
token. Optional tuning, in the extras or as constructor arguments (arguments win):
``page_size``, ``calls_per_minute``, ``rate_period_seconds``, ``max_retries``,
``backoff_base_seconds``, ``backoff_max_seconds``, ``timeout_seconds``.

The limit is per customer, whoever calls (contract: Rate limit). On its own a hook counts
only its own calls (:class:`~onefile.limiter.SlidingWindowLimiter`); the sync's tasks pass a
``limiter_factory`` that shares one window between every task and process through the
staging database (``picsweb_sync.run.call_budget``), keyed by :attr:`OneFileHook.budget_key`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook

from onefile import auth, retries
from onefile.errors import OneFileApiError, OneFileAuthenticationError, error_from_answer
from onefile.limiter import CallLimiter, LimiterFactory, budget_key, own_limiter
from onefile.paging import SearchPage, paged_rows
from onefile.settings import OneFileSettings

# The hook's public surface (errors, settings and pages are defined by concern, see above).
__all__ = [
    "OneFileApiError",
    "OneFileAuthenticationError",
    "OneFileHook",
    "OneFileSettings",
    "SearchPage",
    "format_instant",
]


def format_instant(value: datetime) -> str:
    """A datetime as OneFile's ``YYYY-MM-DDTHH:MM:SSZ``; naive values are UTC (project rule)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class OneFileHook(HttpHook):
    """Typed, rate-limited, retrying access to OneFile API v2.1 over an Airflow http connection.

    :param onefile_conn_id: the Airflow connection (see the module doc).
    :param clock: returns the current aware UTC time; token age is measured on it, so tests
        can share the simulator's clock. Defaults to the real time.
    :param limiter_factory: builds the rate limiter from ``(budget_key, calls_per_minute,
        rate_period_seconds)`` once the connection is read; by default an in-memory
        :class:`SlidingWindowLimiter` of this hook alone. The sync's tasks pass one that
        shares the customer's budget across tasks and processes.
    Other keyword arguments override the connection's tuning extras (:class:`OneFileSettings`).
    """

    conn_name_attr = "onefile_conn_id"
    default_conn_name = "onefile_api"
    conn_type = "http"
    hook_name = "OneFile"

    def __init__(
        self,
        onefile_conn_id: str = default_conn_name,
        *,
        clock: Callable[[], datetime] | None = None,
        page_size: int | None = None,
        calls_per_minute: int | None = None,
        rate_period_seconds: float | None = None,
        max_retries: int | None = None,
        backoff_base_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
        timeout_seconds: float | None = None,
        limiter_factory: LimiterFactory | None = None,
    ) -> None:
        super().__init__(method="POST", http_conn_id=onefile_conn_id)
        self.onefile_conn_id = onefile_conn_id
        self._clock = clock or (lambda: datetime.now(UTC))
        self._overrides = {
            "page_size": page_size,
            "calls_per_minute": calls_per_minute,
            "rate_period_seconds": rate_period_seconds,
            "max_retries": max_retries,
            "backoff_base_seconds": backoff_base_seconds,
            "backoff_max_seconds": backoff_max_seconds,
            "timeout_seconds": timeout_seconds,
        }
        self.calls_made = 0
        self._setup_lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._http: requests.Session | None = None
        self._customer_token = ""
        self._session_token: str | None = None
        self._session_issued_at: datetime | None = None
        self.settings = OneFileSettings()
        self._limiter_factory: LimiterFactory = limiter_factory or own_limiter
        self._limiter: CallLimiter | None = None
        self.budget_key = ""

    # ----------------------------------------------------------------- connection set-up
    def _set_base_url(self, connection: Any) -> None:
        """Accept the URI form ``http://:TOKEN@host:port/api/v2.1`` as well as a full-URL host.

        In URI form Airflow puts the path into ``schema``, which HttpHook would take for the
        URL scheme; rebuild the base URL from its parts instead.
        """
        host = connection.host or ""
        if "://" not in host and connection.schema not in (None, "", "http", "https"):
            scheme = connection.conn_type if connection.conn_type in ("http", "https") else "https"
            netloc = f"{host}:{connection.port}" if connection.port else host
            self.base_url = f"{scheme}://{netloc}/{connection.schema.strip('/')}"
            self._base_url_initialized = True
            return
        super()._set_base_url(connection)

    def _ready(self) -> tuple[requests.Session, CallLimiter]:
        """Load the connection once (lazily, so building a hook touches no connection)."""
        with self._setup_lock:
            if self._http is None or self._limiter is None:
                connection = self.get_connection(self.onefile_conn_id)
                self._customer_token = auth.customer_token_of(connection, self.onefile_conn_id)
                self.settings = OneFileSettings.merged(connection.extra_dejson, self._overrides)
                session = self.get_conn()
                # HttpHook turns unknown extras into headers; the tuning keys are not headers.
                for f in fields(OneFileSettings):
                    session.headers.pop(f.name, None)
                self.budget_key = budget_key(self.base_url, self._customer_token)
                self._limiter = self._limiter_factory(
                    self.budget_key,
                    self.settings.calls_per_minute,
                    self.settings.rate_period_seconds,
                )
                self._http = session
            return self._http, self._limiter

    # --------------------------------------------------------------------- tokens
    def _redact(self, text: str) -> str:
        """Our own last line of defence: blank out either token wherever it might be echoed."""
        return auth.redact(text, (self._customer_token, self._session_token))

    def _current_session_token(self, refused: str | None = None) -> str:
        """The session token, issued or renewed when missing, 23 h old, or just refused.

        ``refused`` is the token a 401 came back for: when several threads see that 401 at
        once, only the first renews and the others pick up its new token.
        """
        with self._token_lock:
            token, issued_at = self._session_token, self._session_issued_at
            if auth.session_token_due(token, issued_at, self._clock, refused):
                issued_at = self._clock()
                response = self._send("POST", "/Authentication", None, authenticated=False)
                token = auth.session_token_from(response)
                self._session_token, self._session_issued_at = token, issued_at
                self.log.info("OneFile session token issued")
            return self._session_token

    # --------------------------------------------------------------------- calls
    def _error(self, response: requests.Response, method: str, path: str) -> OneFileApiError:
        """OneFileApiError from a failed answer, with OneFile's ``code``/``message`` if any."""
        return error_from_answer(response, method, path, self._redact)

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        authenticated: bool = True,
        retry_ambiguous: bool = True,
    ) -> requests.Response:
        """One logical call: limiter, 401 renewal, and bounded retries; returns a 2xx answer.

        ``retry_ambiguous=False`` is for creates: after a 5xx, a timeout or a dropped
        connection OneFile may already have created the entity, so repeating the call could
        create it twice. Such a failure is raised at once; the caller recovers by searching.
        A 429 is always repeated: OneFile refused the call before doing anything.
        """
        session, limiter = self._ready()
        url = self.url_from_endpoint(path)
        renewed = False
        attempt = 0
        while True:
            if authenticated:
                token = self._current_session_token()
                headers = {"X-TokenID": token}
            else:
                headers = {"X-CustomerToken": self._customer_token}
            limiter.acquire()
            with self._count_lock:
                self.calls_made += 1
            self.log.debug("OneFile %s %s", method, path)
            try:
                response = session.request(
                    method, url, json=body, headers=headers, timeout=self.settings.timeout_seconds
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                error = OneFileApiError(None, None, type(exc).__name__, method, path)
                delay = retries.delay_after_no_answer(attempt, self.settings, retry_ambiguous)
                if delay is None:
                    raise error from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status in (401, 403) and not authenticated:
                    raise OneFileAuthenticationError(self.onefile_conn_id, status, method, path)
                error = self._error(response, method, path)
                if status == 401 and authenticated:
                    if renewed:
                        raise OneFileApiError(
                            status,
                            error.code,
                            f"{error.message} (refused again after renewing the session token)",
                            method,
                            path,
                        )
                    renewed = True
                    self.log.info("OneFile %s %s: 401, renewing the session token", method, path)
                    self._current_session_token(refused=token)
                    continue
                delay = retries.delay_after_refusal(
                    response, attempt, self.settings, limiter, retry_ambiguous
                )
                if delay is None:
                    raise error
            if attempt >= self.settings.max_retries:
                raise error
            attempt += 1
            self.log.warning(
                "%s; retry %d of %d in %.2f s", error, attempt, self.settings.max_retries, delay
            )
            time.sleep(delay)

    def _new_id(self, path: str, body: dict[str, Any]) -> int:
        """POST a create and return the new ID (OneFile answers it bare or as a JSON string)."""
        response = self._send("POST", path, body, retry_ambiguous=False)
        text = response.text.strip().strip('"').strip()
        if not text.lstrip("-").isdigit():
            raise OneFileApiError(
                response.status_code, None, f"expected a new ID, got {text[:80]!r}", "POST", path
            )
        return int(text)

    # --------------------------------------------------------------------- public API
    def search(self, entity: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Rows of ``POST /{entity}/Search/{page}/{size}``, page 1 on, lazily, each row once.

        A short page is the last only once the next confirms it; a page size cap OneFile
        applies is found, logged and paged by; pages that contradict each other raise
        :class:`~onefile.errors.OneFilePagingError` (see :func:`onefile.paging.paged_rows`).
        """
        self._ready()
        yield from paged_rows(
            entity,
            self.settings.page_size,
            self.onefile_conn_id,
            lambda path: _json_or_empty(self._send("POST", path, filters)),
            lambda capped: self.log.warning("%s", capped.advice),
        )

    def search_page(
        self, entity: str, filters: dict[str, Any], page: int = 1, size: int | None = None
    ) -> SearchPage:
        """One page of ``POST /{entity}/Search/{page}/{size}`` (the configured page size
        unless ``size`` is given) with how OneFile answered it: the status (a 204 ends a
        search too) and the answer's headers. For the preflight (``picsweb_sync.preflight``),
        which reports how paging ends, a page size cap and which rate-limit headers OneFile
        sends; the sync itself pages with :meth:`search`."""
        self._ready()
        size = size or self.settings.page_size
        response = self._send("POST", f"/{entity}/Search/{page}/{size}", filters)
        return SearchPage(
            rows=_json_or_empty(response),
            page=page,
            size=size,
            status=response.status_code,
            headers=dict(response.headers),
        )

    def search_organisations(self) -> list[dict[str, Any]]:
        """All organisations (centres) of the customer: one unpaged search."""
        return _json_or_empty(self._send("POST", "/Organisation/Search", {}))

    def search_users(
        self, organisation_id: int, role: int, last_modified: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Users of one organisation in one role, optionally only those changed since then."""
        filters: dict[str, Any] = {"OrganisationID": organisation_id, "Role": role}
        if last_modified is not None:
            filters["LastModified"] = format_instant(last_modified)
        return self.search("User", filters)

    def search_learning_aims(
        self, organisation_id: int | None = None, user_id: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Learning aims of an organisation or of one learner (at least one filter)."""
        filters = {
            key: value
            for key, value in (("OrganisationID", organisation_id), ("UserID", user_id))
            if value is not None
        }
        if not filters:
            raise ValueError("search_learning_aims needs organisation_id or user_id")
        return self.search("LearningAim", filters)

    def search_reviews(
        self,
        organisation_id: int,
        learner_id: int | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Reviews of an organisation; the dates bound ``ScheduledFor``."""
        filters: dict[str, Any] = {"OrganisationID": organisation_id}
        if learner_id is not None:
            filters["LearnerID"] = learner_id
        if date_from is not None:
            filters["DateFrom"] = format_instant(date_from)
        if date_to is not None:
            filters["DateTo"] = format_instant(date_to)
        return self.search("Review", filters)

    def get_user(self, user_id: int) -> dict[str, Any]:
        """One user row (``GET /User/{id}``)."""
        return self._send("GET", f"/User/{user_id}", None).json()

    def get_review(self, review_id: int) -> dict[str, Any]:
        """One review row (``GET /Review/{id}``)."""
        return self._send("GET", f"/Review/{review_id}", None).json()

    def update_learning_aim(self, aim_id: int, fields: dict[str, Any]) -> None:
        """Change only the given fields of a learning aim (OneFile answers 204)."""
        self._send("POST", f"/LearningAim/{aim_id}", fields)

    def create_visit(self, payload: dict[str, Any]) -> int:
        """Create a visit, the first half of creating a review; returns the VisitID."""
        return self._new_id("/Visit", payload)

    def create_review(self, payload: dict[str, Any]) -> int:
        """Create a review on an existing visit; returns the ReviewID."""
        return self._new_id("/Review", payload)


def _json_or_empty(response: requests.Response) -> list[dict[str, Any]]:
    """A search answer's rows: a 204 or an empty body means none.

    A JSON integer longer than Python converts (4,300 digits) is kept as its digits, a
    string, so one absurd value is that row's reject (``onefile_fields``: not a whole
    number), not a ``ValueError`` that loses the whole page."""
    if response.status_code == 204 or not response.content.strip():
        return []
    return json.loads(response.content, parse_int=_int_or_digits)


def _int_or_digits(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:  # past sys.get_int_max_str_digits()
        return digits
