"""Named locks in the staging database, on SQLite and PostgreSQL: one holder at a time,
waiting says for whom, a dead holder's lock frees itself, and threads really exclude
each other."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from picsweb_sync import locks
from picsweb_sync.project_tables import ensure_project_tables, sync_lock
from picsweb_sync.project_tables.common import database_epoch


@pytest.fixture
def staging(empty_engine):
    ensure_project_tables(empty_engine)
    return empty_engine


def test_one_holder_at_a_time_and_release_frees_it(staging):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "run A") == 1
    assert locks.try_claim(staging, "reviews", "run A") == 2  # its own lock again
    assert locks.try_claim(staging, "reviews", "run B") is None
    assert locks.current_holder(staging, "reviews")[0] == "run A"
    assert not locks.release(staging, "reviews", "run B", 2)  # not B's to free
    assert not locks.release(staging, "reviews", "run A", 1)  # nor A's earlier claim's
    assert locks.try_claim(staging, "reviews", "run B") is None
    assert locks.release(staging, "reviews", "run A", 2)
    assert locks.try_claim(staging, "reviews", "run B") == 3


def test_a_waiting_task_names_the_holder_and_gives_up_after_its_timeout(staging, caplog):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "run manual__1, push_reviews try 1")
    naps: list[float] = []
    caplog.set_level(logging.INFO, logger="picsweb_sync.locks")
    with (
        pytest.raises(locks.LockTimeout, match="held by run manual__1, push_reviews try 1"),
        locks.held(staging, "reviews", "run backfill__2", timedelta(0), sleep=naps.append),
    ):
        pytest.fail("entered a lock someone else holds")
    assert "waiting for run manual__1, push_reviews try 1 to release" in caplog.text


def test_a_holder_whose_heartbeat_stopped_loses_the_lock(staging):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "killed worker")
    with staging.begin() as conn:  # its last heartbeat was longer ago than STALE_AFTER
        conn.execute(
            update(sync_lock).values(
                heartbeat_at=database_epoch() - locks.STALE_AFTER.total_seconds() - 1
            )
        )
    assert locks.try_claim(staging, "reviews", "next run")
    assert locks.current_holder(staging, "reviews")[0] == "next run"


def test_a_live_holder_keeps_its_lock(staging):
    locks._ensure_row(staging, "reviews")
    assert locks.try_claim(staging, "reviews", "working")
    with staging.begin() as conn:
        conn.execute(
            update(sync_lock).values(
                heartbeat_at=database_epoch() - locks.STALE_AFTER.total_seconds() + 5
            )
        )
    assert not locks.try_claim(staging, "reviews", "next run")


def test_threads_holding_the_lock_never_overlap(staging, monkeypatch):
    monkeypatch.setattr(locks, "POLL", timedelta(milliseconds=10))
    inside, overlaps, done = [0], [0], []
    guard = threading.Lock()

    def work(name: str) -> None:
        for _ in range(3):
            with locks.held(staging, "reviews", name, timedelta(seconds=60)):
                with guard:
                    inside[0] += 1
                    overlaps[0] = max(overlaps[0], inside[0])
                threading.Event().wait(0.02)
                with guard:
                    inside[0] -= 1
                done.append(name)

    threads = [threading.Thread(target=work, args=(f"run {n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 9
    assert overlaps[0] == 1
    assert locks.current_holder(staging, "reviews")[0] is None
