"""A real HTTP server that behaves like OneFile API v2.1, over an in-memory dataset.

It follows `shared/contract/onefile-api.md` to the letter so that the hook and the DAG are
tested against HTTP, not against mocks: authentication and 24-hour session tokens, 1-based
paging with all three ways a search can end, partial updates, Visit + Review creates, JSON
error bodies, a sliding-window rate limit, and faults a test switches on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from onefile_simulator.clock import SimClock
from onefile_simulator.data import OneFileData, format_instant, parse_instant
from onefile_simulator.faults import FaultInjector

API_PREFIX = "/api/v2.1"
SESSION_LIFETIME = dt.timedelta(hours=24)
LEARNER_ROLE = 1
ASSESSOR_ROLES = frozenset({4, 5, 10})
VISIT_TYPE_IDS = frozenset({1, 2, 3})
PAGE_CAP_OFFSETS = ("asked", "capped")

# Error codes. -11 is OneFile's own ("Centre not found"); the others are this simulator's
# choice, negative as OneFile's are, so clients exercise "report code and message".
ERR_BAD_REQUEST = -1
ERR_UNKNOWN_FIELD = -2
ERR_BAD_VALUE = -3
ERR_NOT_FOUND = -4
ERR_UNAUTHORISED = -5
ERR_RATE_LIMIT = -6
ERR_SERVER_FAULT = -7
ERR_CENTRE_NOT_FOUND = -11
ERR_LEARNER_NOT_FOUND = -20
ERR_ASSESSOR_NOT_FOUND = -21
ERR_VISIT_NOT_FOUND = -22

_SEARCH_PATH = re.compile(r"^/(User|LearningAim|Review)/Search/(-?\d+)/(-?\d+)$")
_ENTITY_PATH = re.compile(r"^/(User|Review|LearningAim)/(\d+)$")
_GET_PATH = re.compile(r"^/(User|Review)/(\d+)$")
_AIM_UPDATE_PATH = re.compile(r"^/LearningAim/(\d+)$")

# LearningAim fields a partial update may change, each with the check its value must pass.
_AIM_UPDATABLE: dict[str, str] = {
    "Title": "text?",
    "RegistrationNumber": "text?",
    "RegistrationDate": "instant?",
    "CertificateAppliedDate": "instant?",
    "CertificateReceivedDate": "instant?",
    "TotalElements": "count?",
    "ElementsDone": "count?",
    "Progress": "percent?",
}
_SEARCH_FILTERS = {
    "User": {"OrganisationID": "int", "Role": "int", "LastModified": "instant"},
    "LearningAim": {"OrganisationID": "int", "UserID": "int"},
    "Review": {
        "OrganisationID": "int",
        "LearnerID": "int",
        "DateFrom": "instant",
        "DateTo": "instant",
    },
}
_VISIT_FIELDS = {
    "LearnerID": "int",
    "OrganisationID": "int",
    "DateFrom": "instant",
    "DateTo": "instant",
    "VisitTypeID": "int",
    "SMSReminder": "bool",
    "AssessorID": "int?",
}
_VISIT_REQUIRED = ("LearnerID", "OrganisationID", "DateFrom", "DateTo", "VisitTypeID")
_REVIEW_FIELDS = {
    "LearnerID": "int",
    "Status": "int",
    "ScheduledFor": "instant",
    "VisitID": "int?",
    "AssessorID": "int?",
}
_REVIEW_REQUIRED = ("LearnerID", "Status", "ScheduledFor")


@dataclass
class RecordedCall:
    """One call the simulator received; `status` is None when the connection was dropped."""

    method: str
    path: str
    status: int | None
    body: object
    at: float
    at_clock: dt.datetime


@dataclass
class _Answer:
    status: int
    payload: object = None  # JSON-encoded unless `text` is set
    text: str | None = None
    retry_after: int | None = None


class _ApiError(Exception):
    """Raised inside a handler to answer with a JSON error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.answer = _Answer(status, {"code": code, "message": message})


def _error(status: int, code: int, message: str) -> _Answer:
    return _Answer(status, {"code": code, "message": message})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(name: str, kind: str, value: object) -> None:
    """Raise a 400 when `value` does not have the type field `name` requires."""
    base = kind.rstrip("?")
    if value is None:
        if kind.endswith("?"):
            return
        raise _ApiError(400, ERR_BAD_VALUE, f"{name} may not be null")
    valid = {
        "int": _is_int(value),
        "bool": isinstance(value, bool),
        "text": isinstance(value, str),
        "instant": parse_instant(value) is not None,
        "count": _is_int(value) and value >= 0,
        "percent": isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= 100,
    }[base]
    if not valid:
        raise _ApiError(400, ERR_BAD_VALUE, f"Invalid value for {name}")


def _check_body(body: object, fields: dict[str, str], required: tuple[str, ...] = ()) -> dict:
    """Validate a JSON object body against allowed fields, their types and required ones."""
    if not isinstance(body, dict):
        raise _ApiError(400, ERR_BAD_REQUEST, "The body must be a JSON object")
    for name, value in body.items():
        if name not in fields:
            raise _ApiError(400, ERR_UNKNOWN_FIELD, f"Unknown field {name}")
        _check_value(name, fields[name], value)
    for name in required:
        if body.get(name) is None:
            raise _ApiError(400, ERR_BAD_REQUEST, f"{name} is required")
    return body


class _SlidingWindowLimiter:
    """At most `limit` accepted calls in any `period` seconds of real (monotonic) time."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._stamps and self._stamps[0] <= now - self.period:
                self._stamps.popleft()
            if len(self._stamps) >= self.limit:
                return False
            self._stamps.append(now)
            return True


class _IdIndex:
    """ID -> row lookup over a list that tests may also change directly.

    A hit is trusted only while it still carries the asked ID; a miss rebuilds the index
    once, so rows appended or replaced behind the simulator's back are still found.
    """

    def __init__(self, rows: Callable[[], list[dict]]) -> None:
        self._rows = rows
        self._map: dict[object, dict] = {}

    def get(self, row_id: int) -> dict | None:
        row = self._map.get(row_id)
        if row is not None and row.get("ID") == row_id:
            return row
        self._map = {r.get("ID"): r for r in self._rows()}
        return self._map.get(row_id)

    def add(self, row: dict) -> None:
        """A row the simulator itself just appended: found without rebuilding the index
        (a review create looks up the visit made just before it; at provider scale a
        rebuild per create cost more than the rest of the call)."""
        self._map[row.get("ID")] = row


class OneFileSimulator:
    """OneFile API v2.1 on `host` (127.0.0.1 by default), serving (and changing) `data`.

    Use as `with OneFileSimulator(data) as sim:` or `start()`/`stop()`. `base_url` ends with
    `/api/v2.1`; `calls` records every call. Set `empty_page_form` ("empty_list" or
    "no_content") to choose how a search ends when the rows run out on a page boundary,
    and `retry_after_on_limit` to send Retry-After with rate-limit 429s.

    `page_size_cap` (None: no cap, as the contract assumes) makes every search page hold
    at most that many rows whatever size is asked for: the contract's Paging [risk]. Where
    a capped page starts is `page_cap_offset`'s choice, since a capping server may count
    it either way: "asked" (page p starts at row (p-1) x the size asked for, so rows
    between a capped page's end and the next page's start are never served at that size)
    or "capped" (page p starts at row (p-1) x the capped size).
    """

    def __init__(
        self,
        data: OneFileData,
        customer_token: str = "sim-customer-token",
        rate_limit: tuple[int, float] = (300, 60.0),
        quote_token: bool = False,
        clock: SimClock | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        page_size_cap: int | None = None,
        page_cap_offset: str = "asked",
    ) -> None:
        self.data = data
        self.host = host
        self.customer_token = customer_token
        self.quote_token = quote_token
        self.clock = clock or SimClock()
        self.faults = FaultInjector()
        self.calls: list[RecordedCall] = []
        self.empty_page_form = "empty_list"
        self.retry_after_on_limit: int | None = None
        self.page_size_cap: int | None = None
        self.page_cap_offset = "asked"
        self.base_url = ""
        self._port = port
        self.rate_limit = rate_limit
        self._sessions: dict[str, dt.datetime] = {}
        self._lock = threading.RLock()
        self.cap_page_size(page_size_cap, page_cap_offset)
        self._search_cache: dict[str, list[dict]] = {}
        self._next_ids: dict[str, int] = {}
        self._users = _IdIndex(lambda: self.data.users)
        self._aims = _IdIndex(lambda: self.data.learning_aims)
        self._reviews = _IdIndex(lambda: self.data.reviews)
        self._visits = _IdIndex(lambda: self.data.visits)
        self._orgs = _IdIndex(lambda: self.data.organisations)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def rate_limit(self) -> tuple[int, float]:
        """(calls, seconds): more calls than that in any sliding window get 429."""
        return self._limiter.limit, self._limiter.period

    @rate_limit.setter
    def rate_limit(self, value: tuple[int, float]) -> None:
        self._limiter = _SlidingWindowLimiter(*value)

    # ----- lifecycle -------------------------------------------------------------------
    def start(self) -> str:
        """Start serving on a free port (or the one given) and return the base URL."""
        handler = type("_BoundHandler", (_Handler,), {"sim": self})
        self._server = ThreadingHTTPServer((self.host, self._port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to this long
            name="onefile-simulator",
            daemon=True,
        )
        self._thread.start()
        # Listening on every interface, it is reached here through the loopback address.
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        self.base_url = f"http://{shown}:{self._server.server_address[1]}{API_PREFIX}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OneFileSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- test helpers ----------------------------------------------------------------
    def calls_to(self, path_prefix: str) -> list[RecordedCall]:
        """The recorded calls whose path starts with `path_prefix` (e.g. "/User/Search")."""
        with self._lock:
            return [c for c in self.calls if c.path.startswith(path_prefix)]

    def cap_page_size(self, cap: int | None, offset: str = "asked") -> None:
        """Serve at most `cap` rows a search page (None: no cap); `offset` says where a
        capped page starts ("asked" or "capped": see the class doc)."""
        if cap is not None and cap < 1:
            raise ValueError(f"a page size cap is at least 1, not {cap}")
        if offset not in PAGE_CAP_OFFSETS:
            raise ValueError(f"offset must be one of {PAGE_CAP_OFFSETS}, not {offset!r}")
        with self._lock:
            self.page_size_cap, self.page_cap_offset = cap, offset

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def expire_session_tokens(self) -> None:
        """Make every issued session token stale: the next call with one gets 401."""
        with self._lock:
            self._sessions.clear()

    # ----- request handling ------------------------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        method = handler.command
        path = urlsplit(handler.path).path
        relative = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        try:
            body = json.loads(raw) if raw.strip() else None
            body_ok = True
        except ValueError:
            body, body_ok = None, False
        call = RecordedCall(method, relative, None, body, time.monotonic(), self.clock.now())
        with self._lock:
            self.calls.append(call)

        if not self._limiter.allow():
            answer = _error(429, ERR_RATE_LIMIT, "Too many requests")
            answer.retry_after = self.retry_after_on_limit
        else:
            answer = self._answer_with_faults(handler, method, path, relative, body, body_ok)
            if answer is None:  # connection dropped
                return
        call.status = answer.status
        handler.send_answer(answer)

    def _answer_with_faults(
        self,
        handler: _Handler,
        method: str,
        path: str,
        relative: str,
        body: object,
        body_ok: bool,
    ) -> _Answer | None:
        fault = self.faults.take(method, relative)
        if fault is not None and fault.kind == "drop":
            handler.drop()
            return None
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        lost = None  # an injected answer, sent instead of the real one
        if fault is not None and fault.kind == "status":
            lost = _error(fault.status, ERR_SERVER_FAULT, "Injected fault")
            lost.retry_after = fault.retry_after
            if not fault.after_effect:  # else the call is carried out, its answer lost
                return lost
        if not path.startswith(API_PREFIX + "/"):
            return _error(404, ERR_NOT_FOUND, "Not found")
        if not body_ok:
            return _error(400, ERR_BAD_REQUEST, "The body is not valid JSON")
        try:
            answer = self._route(method, relative, handler.headers, body)
        except _ApiError as err:
            answer = err.answer
        return answer if lost is None else lost

    def _route(self, method: str, path: str, headers, body: object) -> _Answer:
        if path == "/Authentication":
            if method != "POST":
                return _error(405, ERR_BAD_REQUEST, "Method not allowed")
            return self._authenticate(headers.get("X-CustomerToken"))
        if not self._session_valid(headers.get("X-TokenID")):
            return _error(401, ERR_UNAUTHORISED, "Session token missing, expired or unknown")
        routes: list[tuple[str, re.Pattern[str], Callable[..., _Answer]]] = [
            ("POST", _SEARCH_PATH, self._search),
            ("GET", _GET_PATH, self._get_one),
            ("POST", _AIM_UPDATE_PATH, self._update_aim),
        ]
        with self._lock:
            if method == "POST" and path == "/Organisation/Search":
                return self._search_organisations(body)
            if method == "POST" and path == "/Visit":
                return self._create_visit(body)
            if method == "POST" and path == "/Review":
                return self._create_review(body)
            for route_method, pattern, action in routes:
                match = pattern.match(path)
                if match and method == route_method:
                    return action(body, *match.groups())
        if _ENTITY_PATH.match(path) or _SEARCH_PATH.match(path):
            return _error(405, ERR_BAD_REQUEST, "Method not allowed")
        return _error(404, ERR_NOT_FOUND, "Not found")

    # ----- authentication --------------------------------------------------------------
    def _authenticate(self, customer_token: str | None) -> _Answer:
        if customer_token is None or not secrets.compare_digest(
            customer_token.encode(), self.customer_token.encode()
        ):
            return _error(401, ERR_UNAUTHORISED, "Invalid customer token")
        token = secrets.token_hex(16)
        with self._lock:
            self._sessions[token] = self.clock.now()
        if self.quote_token:
            return _Answer(200, token)
        return _Answer(200, text=token)

    def _session_valid(self, token: str | None) -> bool:
        with self._lock:
            issued = self._sessions.get(token) if token else None
        return issued is not None and self.clock.now() - issued < SESSION_LIFETIME

    # ----- searches --------------------------------------------------------------------
    def _search_organisations(self, body: object) -> _Answer:
        if body is not None and not isinstance(body, dict):
            raise _ApiError(400, ERR_BAD_REQUEST, "The body must be a JSON object")
        rows = [{"ID": o["ID"], "Name": o["Name"]} for o in self.data.organisations]
        return _Answer(200, rows) if rows else _Answer(204)

    def _search(self, body: object, entity: str, page_text: str, size_text: str) -> _Answer:
        page, size = int(page_text), int(size_text)
        if page < 1 or size < 1:
            raise _ApiError(400, ERR_BAD_VALUE, "Page number and page size start at 1")
        filters = _check_body({} if body is None else body, _SEARCH_FILTERS[entity])
        key = entity + json.dumps(filters, sort_keys=True)
        # Page 1 starts a fresh search; later pages reuse its result, as a big dataset
        # would otherwise be filtered once per page.
        matched = self._search_cache.get(key)
        if page == 1 or matched is None:
            matched = self._filter(entity, filters)
            self._search_cache[key] = matched
        if not matched:
            return _Answer(204)
        rows = matched[self._page_slice(page, size)]
        if not rows:
            return _Answer(204) if self.empty_page_form == "no_content" else _Answer(200, [])
        return _Answer(200, self.faults.corrupt_page(entity, rows))

    def _page_slice(self, page: int, size: int) -> slice:
        """Where page `page` of `size` rows starts and ends, under `page_size_cap`."""
        cap = self.page_size_cap
        if cap is None or size <= cap:
            return slice((page - 1) * size, page * size)
        start = (page - 1) * (size if self.page_cap_offset == "asked" else cap)
        return slice(start, start + cap)

    def _filter(self, entity: str, filters: dict) -> list[dict]:
        """The rows of `entity` that satisfy a search body, in stored order."""
        org = filters.get("OrganisationID")
        if entity == "User":
            role = filters.get("Role")
            since = parse_instant(filters.get("LastModified"))
            return [
                u
                for u in self.data.users
                if (org is None or u.get("OrganisationID") == org)
                and (role is None or u.get("Role") == role)
                and (since is None or _at_or_after(u.get("LastModified"), since))
            ]
        user_org = {u.get("ID"): u.get("OrganisationID") for u in self.data.users}
        if entity == "LearningAim":
            user_id = filters.get("UserID")
            return [
                a
                for a in self.data.learning_aims
                if (org is None or user_org.get(a.get("UserID")) == org)
                and (user_id is None or a.get("UserID") == user_id)
            ]
        learner_id = filters.get("LearnerID")
        date_from = parse_instant(filters.get("DateFrom"))
        date_to = parse_instant(filters.get("DateTo"))
        return [
            r
            for r in self.data.reviews
            if (org is None or user_org.get(r.get("LearnerID")) == org)
            and (learner_id is None or r.get("LearnerID") == learner_id)
            and _within(r.get("ScheduledFor"), date_from, date_to)
        ]

    # ----- single rows -----------------------------------------------------------------
    def _get_one(self, body: object, entity: str, id_text: str) -> _Answer:
        index = self._users if entity == "User" else self._reviews
        row = index.get(int(id_text))
        if row is None:
            raise _ApiError(404, ERR_NOT_FOUND, f"{entity} not found")
        return _Answer(200, row)

    def _update_aim(self, body: object, id_text: str) -> _Answer:
        aim = self._aims.get(int(id_text))
        if aim is None:
            raise _ApiError(404, ERR_NOT_FOUND, "LearningAim not found")
        changes = _check_body(body, _AIM_UPDATABLE)
        if not changes:
            raise _ApiError(400, ERR_BAD_REQUEST, "Nothing to update")
        aim.update(changes)
        self._search_cache.clear()
        return _Answer(204)

    # ----- creates ---------------------------------------------------------------------
    def _create_visit(self, body: object) -> _Answer:
        visit = _check_body(body, _VISIT_FIELDS, _VISIT_REQUIRED)
        if self._orgs.get(visit["OrganisationID"]) is None:
            raise _ApiError(400, ERR_CENTRE_NOT_FOUND, "Centre not found")
        learner = self._learner(visit["LearnerID"])
        if learner.get("OrganisationID") != visit["OrganisationID"]:
            raise _ApiError(400, ERR_LEARNER_NOT_FOUND, "Learner not found in this centre")
        self._check_assessor(visit.get("AssessorID"))
        if visit["VisitTypeID"] not in VISIT_TYPE_IDS:
            raise _ApiError(400, ERR_BAD_VALUE, "Invalid value for VisitTypeID")
        if parse_instant(visit["DateTo"]) < parse_instant(visit["DateFrom"]):
            raise _ApiError(400, ERR_BAD_VALUE, "DateTo is before DateFrom")
        row = {
            "ID": self._new_id("visits"),
            "LearnerID": visit["LearnerID"],
            "OrganisationID": visit["OrganisationID"],
            "DateFrom": visit["DateFrom"],
            "DateTo": visit["DateTo"],
            "VisitTypeID": visit["VisitTypeID"],
            "SMSReminder": visit.get("SMSReminder", False),
            "AssessorID": visit.get("AssessorID"),
            "CreatedOn": format_instant(self.clock.now()),
        }
        self.data.visits.append(row)
        self._visits.add(row)
        return _Answer(200, row["ID"])

    def _create_review(self, body: object) -> _Answer:
        review = _check_body(body, _REVIEW_FIELDS, _REVIEW_REQUIRED)
        if review["Status"] != 1:
            raise _ApiError(400, ERR_BAD_VALUE, "A new review must have Status 1")
        self._learner(review["LearnerID"])
        self._check_assessor(review.get("AssessorID"))
        visit_id = review.get("VisitID")
        if visit_id is not None:
            visit = self._visits.get(visit_id)
            if visit is None or visit.get("LearnerID") != review["LearnerID"]:
                raise _ApiError(400, ERR_VISIT_NOT_FOUND, "Visit not found")
        row = {
            "ID": self._new_id("reviews"),
            "LearnerID": review["LearnerID"],
            "AssessorID": review.get("AssessorID"),
            "EmployerID": None,
            "ScheduledFor": review["ScheduledFor"],
            "Status": 1,
            "CreatedOn": format_instant(self.clock.now()),
            "StartedOn": None,
            "AssessorSignedOn": None,
            "LearnerSignedOn": None,
            "EmployerSignedOn": None,
            "EndTime": None,
            "VisitID": visit_id,
        }
        self.data.reviews.append(row)
        self._search_cache.clear()
        return _Answer(200, row["ID"])

    def _learner(self, learner_id: int) -> dict:
        learner = self._users.get(learner_id)
        if learner is None or learner.get("Role") != LEARNER_ROLE:
            raise _ApiError(400, ERR_LEARNER_NOT_FOUND, "Learner not found")
        return learner

    def _check_assessor(self, assessor_id: int | None) -> None:
        if assessor_id is None:
            return
        assessor = self._users.get(assessor_id)
        if assessor is None or assessor.get("Role") not in ASSESSOR_ROLES:
            raise _ApiError(400, ERR_ASSESSOR_NOT_FOUND, "Assessor not found")

    def _new_id(self, table: str) -> int:
        """Next ID for a created row: one above the highest seen, kept as a counter so
        thousands of creates do not rescan the table."""
        if table not in self._next_ids:
            rows = getattr(self.data, table)
            ids = [r["ID"] for r in rows if _is_int(r.get("ID"))]
            self._next_ids[table] = (
                max(ids, default={"visits": 700000, "reviews": 900000}[table]) + 1
            )
        new_id = self._next_ids[table]
        self._next_ids[table] += 1
        return new_id


def _at_or_after(value: object, since: dt.datetime) -> bool:
    instant = parse_instant(value)
    return instant is not None and instant >= since


def _within(value: object, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    if start is None and end is None:
        return True
    instant = parse_instant(value)
    if instant is None:
        return False
    return (start is None or instant >= start) and (end is None or instant <= end)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the simulator; knows only how to write an answer."""

    sim: OneFileSimulator
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        """No Nagle delay: headers and body go out in two writes, which on a kept-alive
        connection would otherwise cost 40 ms per call (delayed ACK)."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.sim._handle(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def send_answer(self, answer: _Answer) -> None:
        if answer.text is not None:
            data, content_type = answer.text.encode(), "text/plain; charset=utf-8"
        elif answer.status == 204:
            data, content_type = b"", None
        else:
            data, content_type = json.dumps(answer.payload).encode(), "application/json"
        try:
            self.send_response(answer.status)
            if content_type:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
            if answer.retry_after is not None:
                self.send_header("Retry-After", str(answer.retry_after))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout passed)

    def drop(self) -> None:
        """Close the connection without a byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Silent: the simulator records calls in `calls` and never logs headers or tokens."""
