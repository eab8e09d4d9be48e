"""The line a holder of OneFile's call budget logs when a call must wait
(``picsweb_sync.run.budget_wait_log``), through the real shared budget on SQLite and
PostgreSQL: said with its duration and end when the limit is hit (a full ring, a 429
pause), not said when it is not, said once for many short waits; and the short waits in
between summed up in the next line (table-driven, on fake clocks)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from onefile.limiter import budget_key
from picsweb_sync.run import budget_wait_log as wl
from picsweb_sync.run import call_budget as cb
from picsweb_sync.run.budget_limiter import SharedCallBudget
from picsweb_sync.storage.engines import engine_for_url

PERIOD = 60.0
TOKEN = "cust-4b1e77d0c3-token"
LOGGER = "picsweb_sync.run.budget_limiter"
LINE = re.compile(
    r"waiting (?P<seconds>[\d.]+) s for OneFile's call budget "
    r"\(limit (?P<limit>[^;]+); until (?P<until>\d\d:\d\d:\d\d) UTC\)"
)


class _Slept(Exception):
    """Raised by the fake sleep: the test stops at the first wait."""


@pytest.fixture
def engine(db_url: str):
    engine = engine_for_url(db_url)
    cb.ensure_budget_tables(engine)
    yield engine
    engine.dispose()


def _wait_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and "waiting" in r.message]


def _stop_at_first_wait(waits: list[float]):
    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise _Slept

    return sleep


def _assert_line_says(line: str, wait: float, limit: str, before: float, after: float) -> None:
    said = LINE.fullmatch(line)
    assert said, line
    assert said["limit"] == limit
    assert abs(float(said["seconds"]) - wait) <= 0.5
    until = dt.time.fromisoformat(said["until"])
    earliest = datetime.fromtimestamp(before + wait - 1, UTC).time().replace(microsecond=0)
    latest = datetime.fromtimestamp(after + wait + 1, UTC).time()
    assert earliest <= until <= latest or earliest > latest  # (a wait across midnight)


@pytest.mark.parametrize(
    ("calls", "acquires", "waits"),
    [(3, 3, False), (3, 4, True), (1, 2, True)],
    ids=["within the limit", "one over", "single-slot"],
)
def test_a_call_that_waits_for_the_budget_says_so_with_how_long(
    engine: sa.Engine, caplog, calls: int, acquires: int, waits: bool
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    key = budget_key("http://onefile.example", TOKEN)
    slept: list[float] = []
    budget = SharedCallBudget(engine, key, calls, PERIOD, sleep=_stop_at_first_wait(slept))
    before = time.time()
    try:
        for _ in range(acquires):
            budget.acquire()
    except _Slept:
        pass
    after = time.time()
    lines = _wait_lines(caplog)
    if not waits:
        assert slept == [] and lines == []
        return
    (wait,) = slept
    assert wait > PERIOD - 5  # a full ring frees a period after its oldest call
    (line,) = lines
    _assert_line_says(line, wait, f"{calls} per minute", before, after)
    assert TOKEN not in caplog.text and key not in caplog.text


def test_a_429_pause_is_a_wait_said_with_its_end(engine: sa.Engine, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    slept: list[float] = []
    budget = SharedCallBudget(engine, "k", 300, PERIOD, sleep=_stop_at_first_wait(slept))
    budget.acquire()
    before = time.time()
    budget.pause(30.0)
    with pytest.raises(_Slept):
        budget.acquire()
    (wait,) = slept
    assert 25 < wait <= 30
    (line,) = _wait_lines(caplog)
    _assert_line_says(line, wait, "300 per minute", before, time.time())


def test_many_short_waits_make_one_line_not_one_a_call(engine: sa.Engine, caplog) -> None:
    """A real budget of 4 calls a second, 14 calls: the calls past the first four wait
    (for real) a fraction of a second several times, and the log says so once."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    budget = SharedCallBudget(engine, "k", 4, 1.0, sleep=sleep)
    for _ in range(14):
        budget.acquire()
    assert len(slept) >= 2, slept  # otherwise the test proves nothing
    assert all(s < wl.LONG_WAIT_SECONDS for s in slept)
    (line,) = _wait_lines(caplog)
    assert "(limit 4 per 1 s; until " in line


# ----- the summing-up, on fake clocks -----------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("waits", "expected"),
    [
        pytest.param(
            [(0, 0.2)],
            ["waiting 0.2 s for OneFile's call budget (limit 300 per minute; until 08:00:00 UTC)"],
            id="the first wait is said",
        ),
        pytest.param(
            [(0, 0.2), (1, 0.3), (2, 0.4), (70, 0.5)],
            [
                "waiting 0.2 s for OneFile's call budget (limit 300 per minute; until 08:00:00 UTC)",
                "waiting 0.5 s for OneFile's call budget (limit 300 per minute; until "
                "08:01:10 UTC); 2 shorter waits since 08:00:01 UTC, 0.7 s in all",
            ],
            id="short waits summed up in the next line",
        ),
        pytest.param(
            [(0, 0.2), (1, 42.0), (50, 0.3)],
            [
                "waiting 0.2 s for OneFile's call budget (limit 300 per minute; until 08:00:00 UTC)",
                "waiting 42 s for OneFile's call budget (limit 300 per minute; until 08:00:43 UTC)",
            ],
            id="a long wait is always said",
        ),
        pytest.param(
            [(0, 0.2), (5, 0.2), (59, 0.2), (61, 12.4)],
            [
                "waiting 0.2 s for OneFile's call budget (limit 300 per minute; until 08:00:00 UTC)",
                "waiting 12 s for OneFile's call budget (limit 300 per minute; until "
                "08:01:13 UTC); 2 shorter waits since 08:00:05 UTC, 0.4 s in all",
            ],
            id="a long wait carries the short ones before it",
        ),
    ],
)
def test_short_waits_are_said_at_most_once_a_minute(caplog, waits, expected) -> None:
    caplog.set_level(logging.INFO, logger="budget-test")
    clock = _Clock()
    start = clock.now
    log = wl.WaitLog(300, 60.0, logging.getLogger("budget-test"), monotonic=clock, wall=clock)
    for at, seconds in waits:
        clock.now = start + at
        log.waiting(seconds)
    assert [r.getMessage() for r in caplog.records] == expected


@pytest.mark.parametrize(
    ("calls", "period", "text"),
    [(300, 60.0, "300 per minute"), (10, 5.0, "10 per 5 s"), (100, 90.0, "100 per 90 s")],
)
def test_the_limit_reads_as_configured(calls, period, text) -> None:
    assert wl.limit_text(calls, period) == text
