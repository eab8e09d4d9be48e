"""OneFileHook: the one place that talks to the OneFile API v2.1.

It owns everything the contract (``shared/contract/onefile-api.md``) asks of a client:
session tokens (issue, renew after 23 hours, renew once on a 401), paged searches (a
short page confirmed by the next, a page size cap found and paged by), a
client-side rate limiter that keeps a healthy run under OneFile's 300 calls a minute,
retries for 429 / 5xx / timeouts / dropped connections, and keeping both tokens out of
logs and error messages. A customer token OneFile refuses is never retried: it fails the
Airflow task at once, without the task's retries (:class:`OneFileAuthenticationError`).

The connection (default ``onefile_api``, type http): ``host`` is the base URL including
``/api/v2.1`` (Live, Beta and Practice differ only there), ``password`` is the customer
token. Optional tuning, in the extras or as constructor arguments (arguments win):
``page_size``, ``calls_per_minute``, ``rate_period_seconds``, ``max_retries``,
``backoff_base_seconds``, ``backoff_max_seconds``, ``timeout_seconds``.

The limit is per customer, whoever calls (contract: Rate limit). On its own a hook counts
only its own calls (:class:`SlidingWindowLimiter`); the sync's tasks pass a
``limiter_factory`` that shares one window between every task and process through the
staging database (``picsweb_sync.run.call_budget``), keyed by :attr:`OneFileHook.budget_key`.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.log import mask_secret

SESSION_TOKEN_LIFETIME = timedelta(hours=23)
"""OneFile session tokens die 24 h after issue; renewing at 23 h leaves an hour of slack."""

_REDACTED = "***"

ARRIVAL_JITTER_MARGIN_SECONDS = 0.2
"""Added to the limiter's period: see :class:`SlidingWindowLimiter`."""


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


@dataclass(frozen=True)
class PageSizeCapped:
    """OneFile served fewer rows a page than asked for, and more rows followed: it caps
    the page size at ``cap``. ``advice`` is the warning :meth:`OneFileHook.search` logs."""

    entity: str
    asked: int
    cap: int
    conn_id: str

    @property
    def advice(self) -> str:
        return (
            f"OneFile caps search pages at {self.cap} rows: the {self.entity} search asked "
            f"for pages of {self.asked} and got {self.cap} on page 1, yet page 2 of "
            f"{self.cap} still held rows. Paging by {self.cap} instead (no row lost); set "
            f"page_size to {self.cap} in the extras of the {self.conn_id!r} connection "
            f'({{"page_size": {self.cap}}}, OneFileSettings.page_size) so the searches ask '
            "for what OneFile serves"
        )


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


@dataclass(frozen=True)
class SearchPage:
    """One search page as OneFile answered it (:meth:`OneFileHook.search_page`): its rows
    as sent (objects or not), the page number and size asked for, the HTTP status and the
    answer's headers."""

    rows: list[Any]
    page: int
    size: int
    status: int
    headers: dict[str, str]


@dataclass(frozen=True)
class OneFileSettings:
    """Tuning of one hook; defaults follow the contract (300 calls a minute, pages of 100)."""

    page_size: int = 100
    calls_per_minute: int = 300
    rate_period_seconds: float = 60.0
    max_retries: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    timeout_seconds: float = 30.0

    @classmethod
    def merged(cls, extras: dict[str, Any], overrides: dict[str, Any]) -> OneFileSettings:
        """Defaults, then connection extras, then constructor arguments that are not None.

        Extras from a URI-form connection arrive as strings, so each value is coerced to the
        field's type.
        """
        settings = cls()
        for source in (extras, overrides):
            chosen = {
                f.name: type(getattr(settings, f.name))(source[f.name])
                for f in fields(cls)
                if source.get(f.name) is not None
            }
            settings = replace(settings, **chosen)
        return settings


def full_jitter_backoff(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter spreads the retries of parallel tasks that failed together, so they do not
    hit a recovering server in lockstep.
    """
    return rand() * min(cap, base * 2**attempt)


def format_instant(value: datetime) -> str:
    """A datetime as OneFile's ``YYYY-MM-DDTHH:MM:SSZ``; naive values are UTC (project rule)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class CallLimiter(Protocol):
    """What the hook asks of its rate limiter (in memory, or shared by every task)."""

    def acquire(self) -> None:
        """Block until a call may start, and count it."""

    def pause(self, seconds: float) -> None:
        """No call starts for ``seconds`` (OneFile answered 429)."""

    def seconds_until_clear(self) -> float:
        """Seconds until none of the recent calls can still count in OneFile's window."""


LimiterFactory = Callable[[str, int, float], CallLimiter]
"""``(budget key, calls, period seconds) -> limiter``: see ``OneFileHook(limiter_factory=)``."""


class SlidingWindowLimiter:
    """At most ``calls`` starts in any ``period`` seconds, shared by all threads of one hook.

    The server stamps a call when it arrives, later than we do and by a varying amount
    (network, queueing), so two calls exactly one period apart here may look closer there
    and earn a 429. A fixed margin on the period absorbs that jitter; without it a burst
    against the simulator already sees 429s on loopback.
    """

    def __init__(self, calls: int, period: float, monotonic: Callable[[], float] = time.monotonic):
        self.calls = calls
        self.period = period + ARRIVAL_JITTER_MARGIN_SECONDS
        self._monotonic = monotonic
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a call may start, and count it. Waiters queue on the lock in turn."""
        with self._lock:
            while True:
                now = self._monotonic()
                if now < self._paused_until:
                    time.sleep(self._paused_until - now)
                    continue
                while self._starts and self._starts[0] <= now - self.period:
                    self._starts.popleft()
                if len(self._starts) < self.calls:
                    self._starts.append(now)
                    return
                time.sleep(self._starts[0] + self.period - now)

    def pause(self, seconds: float) -> None:
        """Hold back every thread's next call for ``seconds`` (a later pause wins)."""
        self._paused_until = max(self._paused_until, self._monotonic() + seconds)

    def seconds_until_clear(self) -> float:
        """Seconds until none of our recent calls can still count in the server's window."""
        with self._lock:
            if not self._starts:
                return 0.0
            return max(0.0, self._starts[-1] + self.period - self._monotonic())


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
        self._limiter_factory: LimiterFactory = limiter_factory or _own_limiter
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
                if not connection.password:
                    raise OneFileAuthenticationError(self.onefile_conn_id, None)
                self._customer_token = connection.password
                mask_secret(self._customer_token)
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
        for secret in (self._customer_token, self._session_token):
            if secret:
                text = text.replace(secret, _REDACTED)
        return text

    def _current_session_token(self, refused: str | None = None) -> str:
        """The session token, issued or renewed when missing, 23 h old, or just refused.

        ``refused`` is the token a 401 came back for: when several threads see that 401 at
        once, only the first renews and the others pick up its new token.
        """
        with self._token_lock:
            age_ok = (
                self._session_issued_at is not None
                and self._clock() - self._session_issued_at < SESSION_TOKEN_LIFETIME
            )
            if self._session_token is None or not age_ok or self._session_token == refused:
                issued_at = self._clock()
                response = self._send("POST", "/Authentication", None, authenticated=False)
                token = response.text.strip().strip('"').strip()
                if not token:
                    raise OneFileApiError(
                        response.status_code, None, "empty session token", "POST", "/Authentication"
                    )
                mask_secret(token)
                self._session_token, self._session_issued_at = token, issued_at
                self.log.info("OneFile session token issued")
            return self._session_token

    # --------------------------------------------------------------------- calls
    def _error(self, response: requests.Response, method: str, path: str) -> OneFileApiError:
        """OneFileApiError from a failed answer, with OneFile's ``code``/``message`` if any."""
        code: int | None = None
        message = response.reason or ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code") if isinstance(body.get("code"), int) else None
            message = str(body.get("message", message))
        return OneFileApiError(response.status_code, code, self._redact(message), method, path)

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
                if not retry_ambiguous:
                    raise error from None
                delay = self._backoff(attempt)
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
                if status == 429:
                    delay = _retry_after(response)
                    if delay is None:
                        delay = limiter.seconds_until_clear()
                    # Whoever shares the budget (other threads, tasks, processes) waits too.
                    limiter.pause(delay)
                elif status >= 500 and retry_ambiguous:
                    delay = self._backoff(attempt)
                else:
                    raise error
            if attempt >= self.settings.max_retries:
                raise error
            attempt += 1
            self.log.warning(
                "%s; retry %d of %d in %.2f s", error, attempt, self.settings.max_retries, delay
            )
            time.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return full_jitter_backoff(
            attempt, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
        )

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

        A search ends at an empty page or a 204. A short page (fewer rows than asked for)
        is the last only once the page after it confirms it (contract: Paging [risk]): a
        OneFile that caps the page size below ``page_size`` answers every page short, and
        taking the first for the last would silently drop the rest. So after a short,
        non-empty page the search asks once more (at most one extra call per search):

        - after a short page 1 of ``n`` rows, page 2 **of ``n`` rows**: it starts right
          after the rows read whichever size a capping OneFile counts its offsets by (the
          size asked for or the capped one), since a size of ``n`` is never capped. Empty
          or 204: the end. Rows: OneFile caps pages at ``n`` (:class:`PageSizeCapped` is
          logged as a warning naming the setting to change); they are the search's next
          rows, and the search pages on by ``n``, from page 3, so no row is lost or read
          twice;
        - after a short page ``p > 1`` (pages before it full, so no cap below this size),
          page ``p + 1`` of the same size: empty or 204 is the end; rows there mean the
          pages contradict each other, and :class:`OneFilePagingError` is raised rather
          than return part of the search.

        Rows are not de-duplicated here: the parser keeps one row per ID by its own rule
        (``picsweb_sync.onefile.fields``: the newest by ``LastModified``), which a first-seen
        rule here would contradict.
        """
        self._ready()
        asked = size = self.settings.page_size
        page = 1
        short: tuple[int, int, int] | None = None  # a short page to confirm: page, size, rows
        while True:
            path = f"/{entity}/Search/{page}/{size}"
            rows = _json_or_empty(self._send("POST", path, filters))
            if short is not None:
                if not rows:
                    return  # the page after a short page is empty: the end, confirmed
                short_page, short_size, short_rows = short
                if short_page != 1:
                    raise OneFilePagingError(
                        entity,
                        f"page {short_page} of {short_size} held {short_rows} rows, a short "
                        f"page, so the last, but {path} still holds {len(rows)}: OneFile's "
                        "pages contradict each other (rows added while paging, or a page "
                        "size cap that changes); the search is abandoned rather than return "
                        "part of its rows, so a retry reads it again",
                        path,
                    )
                # Page 1 came short, yet rows follow it: OneFile caps pages at its size.
                self.log.warning(
                    "%s", PageSizeCapped(entity, asked, size, self.onefile_conn_id).advice
                )
            short = None
            yield from rows
            if not rows:
                return  # an empty page or a 204 after a full page (or no rows at all)
            if len(rows) >= size:
                page += 1
                continue
            short = (page, size, len(rows))
            if page == 1:
                size = len(rows)  # page 2 of this size starts right after these rows
            page += 1

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


def _own_limiter(budget_key: str, calls: int, period: float) -> SlidingWindowLimiter:
    """The default: a window of this hook's own calls only."""
    return SlidingWindowLimiter(calls, period)


def budget_key(base_url: str, customer_token: str) -> str:
    """Who the rate limit belongs to: the customer, i.e. the token in its environment.

    A hash (the token itself is a secret and never stored): the same customer through two
    connections gets one key, two customers two keys.
    """
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{customer_token}".encode()).hexdigest()[:32]


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a numeric Retry-After header, or None when absent or not a number."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


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
