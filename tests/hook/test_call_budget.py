"""OneFile's limit is per customer: hooks of tasks in a row, and of processes at once,
share one budget through the staging database (PostgreSQL here), so OneFile never sees
more than the limit in any window and never answers 429.

The simulator enforces a small real limit (20 calls in any 2 s) and records when each
call arrived; the assertions count calls per window in that log, never durations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from onefile.hook import OneFileHook
from onefile_simulator import OneFileSimulator
from picsweb_sync.run import call_budget as cb
from picsweb_sync.run.budget_limiter import limiter_factory
from picsweb_sync.storage.engines import engine_for_url
from tests.hook.conftest import FAST, conn_json

LIMIT, PERIOD = 20, 2.0
REPO = Path(__file__).resolve().parents[2]


def busiest_window(sim: OneFileSimulator, period: float = PERIOD) -> int:
    """The most calls OneFile received in any ``period`` seconds (sliding)."""
    stamps = sorted(call.at for call in sim.calls)
    return max(
        (
            sum(1 for later in stamps[i:] if later < start + period)
            for i, start in enumerate(stamps)
        ),
        default=0,
    )


def refused(sim: OneFileSimulator) -> int:
    return sum(1 for call in sim.calls if call.status == 429)


@pytest.fixture
def limited_sim(start_sim: Callable[..., OneFileSimulator], monkeypatch) -> OneFileSimulator:
    sim = start_sim(rate_limit=(LIMIT, PERIOD))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ONEFILE_API",
        conn_json(sim.base_url, calls_per_minute=LIMIT, rate_period_seconds=PERIOD),
    )
    return sim


def task_hook(staging_url: str | None) -> tuple[OneFileHook, sa.Engine | None]:
    """A hook as one task builds it: with its own engine on the staging database (a new
    task process has its own connections), or, without one, on its own."""
    if staging_url is None:
        return OneFileHook(**FAST), None
    engine = engine_for_url(staging_url)
    return OneFileHook(limiter_factory=limiter_factory(engine), **FAST), engine


def run_tasks_in_a_row(sim: OneFileSimulator, staging_url: str | None, tasks: int, calls: int):
    user_id = sim.data.users[0]["ID"]
    for _ in range(tasks):
        hook, engine = task_hook(staging_url)
        for _ in range(calls):
            assert hook.get_user(user_id)["ID"] == user_id
        if engine is not None:
            engine.dispose()


@pytest.mark.parametrize("tasks", [2, 4])
def test_tasks_in_a_row_share_one_window(
    limited_sim: OneFileSimulator, pg_url: str, tasks: int
) -> None:
    """Each task's first calls follow straight on its predecessor's: a window of its own
    would let it spend the limit again; the shared one makes it wait its turn."""
    run_tasks_in_a_row(limited_sim, pg_url, tasks=tasks, calls=12)
    assert len(limited_sim.calls) == tasks * 13  # + one authentication per task
    assert refused(limited_sim) == 0
    assert busiest_window(limited_sim) <= LIMIT


def test_hooks_each_on_their_own_overspend_the_customers_limit(
    limited_sim: OneFileSimulator,
) -> None:
    """The control: the same tasks with only their own limiters meet OneFile's 429 (what
    the shared budget is for, and proof that the test above can fail)."""
    run_tasks_in_a_row(limited_sim, None, tasks=4, calls=12)
    assert refused(limited_sim) > 0


def run_workers_at_once(
    sim: OneFileSimulator, pg_url: str, limits: list[int], calls: int
) -> tuple[list[str], list[str]]:
    """One task process per limit (its connection's ``calls_per_minute``, per ``PERIOD``),
    started together, each making ``calls`` reads of its own user (so the log tells them
    apart). Their last lines and the users they read."""
    users = [str(user["ID"]) for user in sim.data.users[: len(limits)]]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.hook.budget_worker", pg_url, str(calls), user_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=os.environ
            | {
                "AIRFLOW_CONN_ONEFILE_API": conn_json(
                    sim.base_url, calls_per_minute=limit, rate_period_seconds=PERIOD
                )
            },
        )
        for user_id, limit in zip(users, limits, strict=True)
    ]
    try:
        for worker in workers:  # log lines may come first
            while (line := worker.stdout.readline()) and line.strip() != "ready":
                pass
            assert line.strip() == "ready"
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outcomes = [
            worker.communicate(timeout=600)[0].strip().splitlines()[-1] for worker in workers
        ]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return outcomes, users


def called_together(sim: OneFileSimulator, users: list[str]) -> bool:
    """Each one's calls span the other's first ones."""
    spans = [[call.at for call in sim.calls_to(f"/User/{user_id}")] for user_id in users]
    return min(spans[0]) < max(spans[1]) and min(spans[1]) < max(spans[0])


def test_two_processes_at_once_share_one_window(limited_sim: OneFileSimulator, pg_url: str):
    """Two task processes started together, each with 25 calls to make: 52 calls in all,
    interleaved, never more than 20 in any 2 s, and no 429."""
    outcomes, users = run_workers_at_once(limited_sim, pg_url, [LIMIT, LIMIT], 25)
    assert outcomes == ["done 26", "done 26"]
    assert len(limited_sim.calls) == 52
    assert refused(limited_sim) == 0
    assert busiest_window(limited_sim) <= LIMIT
    assert called_together(limited_sim, users)


@pytest.mark.parametrize("other_limit", [30, 60])
def test_two_processes_with_different_limits_keep_to_the_lowest(
    limited_sim: OneFileSimulator, pg_url: str, other_limit: int
) -> None:
    """The same customer through two connections (or one edited while a run's tasks still
    hold hooks built from its old value): one says OneFile's real limit, 20 calls in 2 s,
    the other more. Together they never make more than 20 calls in any 2 s, and meet no
    429: the budget keeps the lowest limit its holders were configured with."""
    outcomes, users = run_workers_at_once(limited_sim, pg_url, [LIMIT, other_limit], 25)
    assert outcomes == ["done 26", "done 26"]
    assert len(limited_sim.calls) == 52
    assert refused(limited_sim) == 0
    assert busiest_window(limited_sim) <= LIMIT
    assert called_together(limited_sim, users)


def test_a_429_seen_by_one_task_holds_the_others(
    limited_sim: OneFileSimulator, pg_url: str
) -> None:
    """OneFile refuses one task's call with Retry-After: 1. Another task, calling while
    the first waits, is held back too: its call arrives no earlier than that second."""
    user_id = limited_sim.data.users[0]["ID"]
    first, first_engine = task_hook(pg_url)
    other, other_engine = task_hook(pg_url)
    other.get_user(user_id)  # session and budget set up before the refusal
    limited_sim.faults.add(status=429, times=1, path_contains="/Review/", retry_after=1)
    review_id = limited_sim.data.reviews[0]["ID"]
    answers: list[dict] = []
    waiting = threading.Thread(target=lambda: answers.append(first.get_review(review_id)))
    waiting.start()
    deadline = time.monotonic() + 60
    while not any(call.status == 429 for call in limited_sim.calls):
        assert time.monotonic() < deadline, "the refused call never arrived"
        time.sleep(0.01)
    with first_engine.connect() as conn:  # the pause is recorded before the task sleeps
        while not conn.execute(
            sa.select(cb.sync_call_budget.c.paused_until > cb.database_epoch())
        ).scalar():
            assert time.monotonic() < deadline, "the 429 was never shared"
            time.sleep(0.01)
            conn.rollback()
    other.get_user(user_id)
    waiting.join()
    assert [answer["ID"] for answer in answers] == [review_id]
    (refusal,) = [call for call in limited_sim.calls if call.status == 429]
    held_back = limited_sim.calls_to("/User/")[-1]
    assert held_back.at >= refusal.at + 1.0 - 0.05
    assert [call.status for call in limited_sim.calls_to("/Review/")] == [429, 200]
    first_engine.dispose()
    other_engine.dispose()
