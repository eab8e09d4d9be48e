"""A push whose writers' lock was taken over while it was sending stops at once: no OneFile
write after the takeover, nothing more recorded, and a clear ``LockLost`` (issue 18, fencing).
The takeover is what a successor does to a holder paused past the staleness limit: it claims
the lock row with a new token, here from another engine."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from onefile.hook import OneFileApiError, OneFileHook
from picsweb_sync.run import locks
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import push
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables.common import database_epoch

WRITE = re.compile(r"^/(LearningAim/\d+|Visit|Review)$")


def _cleared(world, run) -> RunContext:
    return world.cleared(run, "paused holder", 2)


def _take_over(world, name: str) -> None:
    """Another claimant takes lock ``name`` (a new token), through its own engine."""
    other = sa.create_engine(world.picsweb.url)
    try:
        with other.begin() as conn:
            conn.execute(
                sa.update(pt.sync_lock)
                .where(pt.sync_lock.c.name == name)
                .values(
                    holder="run successor, push try 1",
                    token=pt.sync_lock.c.token + 1,
                    heartbeat_at=database_epoch(),
                )
            )
    finally:
        other.dispose()


def _writes(world) -> list:
    return [c for c in world.sim.calls if c.method == "POST" and WRITE.match(c.path)]


def _left_pending(world, monkeypatch, method: str, kind: str):
    def outage(self, *args, **kwargs):
        raise OneFileApiError(503, None, "injected outage", "POST", method)

    with monkeypatch.context() as patch:
        patch.setattr(OneFileHook, method, outage)
        run = world.run()
    assert str(run.state) == "failed"
    with world.picsweb.connect() as conn:
        pending = pt.outbox_rows(conn, run.run_id, kind)
    assert len(pending) >= 3
    return run


@pytest.mark.parametrize(
    ("method", "kind", "lock", "stage"),
    [
        ("update_learning_aim", pt.AIM_UPDATE, locks.QUALIFICATIONS, push.push_learning_aims),
        ("create_review", pt.REVIEW_CREATE, locks.REVIEWS, push.push_reviews),
    ],
    ids=["aim-updates", "review-creates"],
)
def test_a_push_whose_lock_was_taken_over_sends_no_further_write(
    world, monkeypatch, method, kind, lock, stage
):
    run = _left_pending(world, monkeypatch, method, kind)
    real = getattr(OneFileHook, method)
    taken: list[int] = []

    def taken_over_after_the_first(self, *args):
        answer = real(self, *args)
        if not taken:
            taken.append(len(_writes(world)))
            _take_over(world, lock)
        return answer

    monkeypatch.setattr(OneFileHook, method, taken_over_after_the_first)
    world.sim.reset_calls()
    with world.picsweb.connect() as conn:
        before = pt.outbox_rows(conn, run.run_id, kind)

    with pytest.raises(locks.LockLost, match=f"lost the {lock} lock"):
        stage(_cleared(world, run))

    assert taken, "the push sent nothing"
    assert len(_writes(world)) == taken[0], "a write was sent after the lock was taken over"
    with world.picsweb.connect() as conn:
        after = pt.outbox_rows(conn, run.run_id, kind)
    # Nothing was recorded after the takeover: the one write made is recovered by the new
    # holder as after a crash (an aim re-checked and found filled, a create of unknown
    # outcome found by its VisitID).
    changed = after.merge(before, on="outbox_id", suffixes=("", "_before"))
    changed = changed[changed["state"] != changed["state_before"]]
    assert changed.empty, changed[["target_id", "state", "state_before"]]
    assert after["result_id"].isna().all()  # the created review is of unknown outcome
