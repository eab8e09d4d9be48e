"""A run whose upload reached OneFile but failed for good before storing the Review ID:
the next run must find that review (the VisitID carried over from the failed run's
outbox row), never create a second one."""

from __future__ import annotations

from picsweb_sync.stages import push
from picsweb_sync.stages.push import answers
from picsweb_sync.storage import picsweb_tables as pw


def _posts(world, path):
    return [c for c in world.sim.calls if c.method == "POST" and c.path == path]


def test_a_run_that_failed_after_the_review_call_is_recovered_by_the_next_run(world, monkeypatch):
    real = push.record_review_id
    doomed: list[int] = []

    def always_crash_for_the_first(ctx, outbox_id, review_id, onefile_id, **kw):
        if not doomed or doomed[0] == review_id:
            doomed[:1] = [review_id]
            raise ConnectionError("injected crash after the Review call, every attempt")
        return real(ctx, outbox_id, review_id, onefile_id, **kw)

    monkeypatch.setattr(answers, "record_review_id", always_crash_for_the_first)
    first = world.run()
    assert str(first.state) == "failed"  # push_reviews failed on every try
    reviews_after_first = len(world.sim.data.reviews)
    assert len(_posts(world, "/Review")) == 1  # the doomed review was created once

    monkeypatch.setattr(answers, "record_review_id", real)
    world.sim.reset_calls()
    second = world.run()
    assert str(second.state) == "success"

    stored = world.table(pw.review, "review_id").set_index("review_id")
    onefile_id = int(stored.loc[doomed[0], "onefile_system_id"])
    created = [r for r in world.sim.data.reviews if r["ID"] == onefile_id]
    assert len(created) == 1
    same_visit = [r for r in world.sim.data.reviews if r.get("VisitID") == created[0]["VisitID"]]
    assert len(same_visit) == 1, "the doomed review was created twice"
    # Run 2 created every other upload but not the recovered one again.
    new_in_second = len(world.sim.data.reviews) - reviews_after_first
    assert new_in_second == len(_posts(world, "/Review"))
    assert all(c.body.get("VisitID") != created[0]["VisitID"] for c in _posts(world, "/Review"))

    # Run 3: the recovered review is an ordinary linked review again. A OneFile change
    # to it is downloaded (it is no longer held back as "awaiting its link").
    for row in world.sim.data.reviews:
        if row["ID"] == onefile_id:
            row["StartedOn"] = row["ScheduledFor"]
    third = world.run()
    assert str(third.state) == "success"
    stored = world.table(pw.review, "review_id").set_index("review_id")
    assert stored.loc[doomed[0], "attended"] == "Y"
    assert stored.loc[doomed[0], "actual_date"] is not None
