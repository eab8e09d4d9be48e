"""Faults a test switches on to see how a client copes with a misbehaving OneFile."""

from __future__ import annotations

import copy
import random
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

MALFORMED_KINDS = ("missing_id", "bad_date", "text_number")

# Which field each kind of corruption spoils, per searchable entity. The fields are ones the
# sync parses (a date it converts, a number it stores), so a client that skips validation
# trips over them.
_BAD_DATE_FIELD = {
    "User": "LastModified",
    "LearningAim": "RegistrationDate",
    "Review": "ScheduledFor",
}
_TEXT_NUMBER_FIELD = {
    "User": "DefaultAssessorID",
    "LearningAim": "TotalElements",
    "Review": "AssessorID",
}
_BAD_DATE = "2026-02-30T25:61:00Z"
_TEXT_NUMBER = "twelve"


@dataclass
class FaultRule:
    """One switched-on fault: what it does and which calls it applies to."""

    kind: str  # "status", "delay" or "drop"
    remaining: int | None  # None: no limit
    path_contains: str | None = None
    method: str | None = None
    status: int | None = None
    retry_after: int | None = None
    ratio: float | None = None
    seconds: float = 0.0
    every: int | None = None  # only every Nth matching call (the Nth, 2Nth, ...)
    path_is: str | None = None  # only calls to exactly this path (``/Review``, not searches)
    after_effect: bool = False  # the call takes effect; only its answer is the fault
    seen: int = 0  # matching calls so far (for ``every``)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to a call, ignoring how many uses are left."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_is is not None and self.path_is != path:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(frozen=True)
class ServedMalformed:
    """A corrupted row that was actually sent, so a test knows which source row to expect rejected."""

    entity: str
    kind: str
    source_id: object


@dataclass(frozen=True)
class ServedInjected:
    """A raw page element that was actually sent (any JSON value, an object or not)."""

    entity: str
    row: object


class FaultInjector:
    """Holds the faults a test switched on; the server asks it about every call.

    Rules apply in the order they were added; the first one that matches and still has uses
    left is consumed. A `ratio` rule fails a seeded-random share of matching calls, so a
    flaky-network test is repeatable.
    """

    def __init__(self, seed: int = 7) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._malformed: dict[str, deque[str]] = {}
        self._injected: dict[str, list[object]] = {}
        self._renamed: dict[str, dict[str, str]] = {}
        self._random = random.Random(seed)
        self.served_malformed: list[ServedMalformed] = []
        self.served_injected: list[ServedInjected] = []

    def add(
        self,
        status: int,
        times: int | None = None,
        path_contains: str | None = None,
        method: str | None = None,
        retry_after: int | None = None,
        ratio: float | None = None,
        every: int | None = None,
        after_effect: bool = False,
        path_is: str | None = None,
    ) -> None:
        """Answer matching calls with `status` (the first `times`, default 1; with `ratio`,
        that share of them; with `every`, every Nth matching call, the Nth first; with
        `ratio` or `every`, at most `times` when given). `path_is`: only calls to exactly
        that path (``"/Review"``: the create, not ``/Review/Search/...``).

        `after_effect`: the call is carried out first (a create creates, an update
        changes) and only then answered with `status`, as when OneFile fails after
        committing: the client cannot tell from the answer whether it happened."""
        if every is not None and every < 1:
            raise ValueError("every must be at least 1")
        if times is None and ratio is None and every is None:
            times = 1
        self._append(
            FaultRule(
                "status",
                times,
                path_contains,
                method,
                status,
                retry_after,
                ratio,
                every=every,
                after_effect=after_effect,
                path_is=path_is,
            )
        )

    def delay(
        self,
        seconds: float,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
        path_is: str | None = None,
    ) -> None:
        """Answer the next `times` matching calls (None: every one) only after `seconds`
        (beyond a client timeout); the call is carried out after the wait, even when the
        client has gone meanwhile. `method`, `path_is`: as for :meth:`add`."""
        self._append(
            FaultRule("delay", times, path_contains, method, seconds=seconds, path_is=path_is)
        )

    def drop_connection(self, times: int = 1, path_contains: str | None = None) -> None:
        """Close the socket of the next `times` matching calls without any answer."""
        self._append(FaultRule("drop", times, path_contains))

    def malformed_rows(
        self, entity: str, kinds: Iterable[str] = MALFORMED_KINDS, count: int = 1
    ) -> None:
        """Corrupt `count` rows per kind in the next search pages of `entity`.

        The corrupted copies replace rows of the page being served (the stored data stays
        intact), so paging is undisturbed; `served_malformed` tells which rows were spoiled.
        """
        if entity not in _BAD_DATE_FIELD:
            raise ValueError(f"unknown searchable entity {entity!r}")
        kinds = tuple(kinds)
        unknown = set(kinds) - set(MALFORMED_KINDS)
        if unknown:
            raise ValueError(f"unknown malformed kinds {sorted(unknown)}")
        with self._lock:
            queue = self._malformed.setdefault(entity, deque())
            for kind in kinds:
                queue.extend([kind] * count)

    def inject_rows(self, entity: str, rows: Iterable[object]) -> None:
        """Send `rows` as they are, after the rows of the next search page of `entity`
        that has any: raw JSON values a real OneFile page could hold by mistake (``None``,
        a string, a list, an object with odd values), which the stored data could not.

        The page grows by them (paging reads on, as after any full page); the stored data
        stays intact; `served_injected` tells which were sent.
        """
        if entity not in _BAD_DATE_FIELD:
            raise ValueError(f"unknown searchable entity {entity!r}")
        with self._lock:
            self._injected.setdefault(entity, []).extend(copy.deepcopy(list(rows)))

    def rename_field(self, entity: str, field: str, served_as: str) -> None:
        """Serve `field` of every `entity` row in search pages as `served_as`, until
        `clear`: a OneFile whose field is spelt otherwise than the contract assumes. The
        stored data keeps the contract's name."""
        if entity not in _BAD_DATE_FIELD:
            raise ValueError(f"unknown searchable entity {entity!r}")
        with self._lock:
            self._renamed.setdefault(entity, {})[field] = served_as

    def clear(self) -> None:
        """Switch every fault off and start the seeded randomness again."""
        with self._lock:
            self._rules.clear()
            self._malformed.clear()
            self._injected.clear()
            self._renamed.clear()
            self._random = random.Random(self._seed)
            self.served_malformed.clear()
            self.served_injected.clear()

    def _append(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault to apply to this call, if any, using up one of its uses."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.every is not None and rule.seen % rule.every:
                    continue
                if rule.ratio is not None and self._random.random() >= rule.ratio:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None

    def corrupt_page(self, entity: str, rows: list[dict]) -> list[object]:
        """The page to send: `rows` with renamed fields and queued corruptions applied to
        copies of them, then any injected rows."""
        with self._lock:
            page: list[object] = [_renamed(row, self._renamed.get(entity)) for row in rows]
            injected = self._injected.pop(entity, [])
            page += injected
            self.served_injected += [ServedInjected(entity, row) for row in injected]
            queue = self._malformed.get(entity)
            if not queue:
                return page
            for index in range(min(len(queue), len(rows))):
                kind = queue.popleft()
                source = rows[index]
                spoiled = dict(page[index])
                if kind == "missing_id":
                    spoiled.pop("ID", None)
                elif kind == "bad_date":
                    spoiled[_BAD_DATE_FIELD[entity]] = _BAD_DATE
                else:
                    spoiled[_TEXT_NUMBER_FIELD[entity]] = _TEXT_NUMBER
                page[index] = spoiled
                self.served_malformed.append(ServedMalformed(entity, kind, source.get("ID")))
            return page


def _renamed(row: dict, names: dict[str, str] | None) -> dict:
    """`row`, or a copy of it with the keys in `names` renamed (in place, order kept)."""
    if not names or not any(name in row for name in names):
        return row
    return {names.get(key, key): value for key, value in row.items()}
