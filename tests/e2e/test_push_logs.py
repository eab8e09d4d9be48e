"""What ``push_reviews`` logs about the creates it recovered or re-sent (``push_log``), end to
end: a first run through the real DAG (``dag.test()``, the simulator over HTTP, PostgreSQL)
is made to crash inside its push, then the push is run again as a cleared task would run
it, and its log lines must name the PICSWeb review, the OneFile visit and the OneFile
review as both systems hold them afterwards, never the customer's token. A plain first
send is not logged one by one."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from onefile.hook import OneFileHook
from picsweb_sync.stages import push
from picsweb_sync.stages.push import answers
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt

LOGGER = "picsweb_sync.stages.push"


def _outbox(world, run_id: str):
    with world.picsweb.connect() as conn:
        return pt.outbox_rows(conn, run_id, pt.REVIEW_CREATE).set_index("target_id")


def _linked(world, review_id: int) -> int:
    stored = world.table(pw.review, "review_id").set_index("review_id")
    return int(stored.loc[review_id, "onefile_system_id"])


def _lines(caplog, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.getMessage().startswith(start)
    ]


def _no_secret(world, caplog) -> None:
    assert world.sim.customer_token not in caplog.text


def _crash_between_visit_and_review(world, monkeypatch):
    """The first run's push makes its first visit and crashes before that Review call:
    returns (run, PICSWeb review ID, VisitID) of the create left half done."""
    real = OneFileHook.create_review
    doomed: list[int] = []

    def crash(self, payload):
        if not doomed or doomed[0] == payload["LearnerID"]:
            doomed[:1] = [payload["LearnerID"]]
            raise ConnectionError("injected crash between the Visit and the Review call")
        return real(self, payload)

    monkeypatch.setattr(OneFileHook, "create_review", crash)
    first = world.run()
    monkeypatch.setattr(OneFileHook, "create_review", real)
    assert str(first.state) == "failed"
    outbox = _outbox(world, first.run_id)
    waiting = outbox[outbox["visit_id"].notna() & outbox["result_id"].isna()]
    (review_id,) = waiting.index
    return first, int(review_id), int(waiting.loc[review_id, "visit_id"])


@pytest.mark.parametrize("rescheduled", [False, True], ids=["same review", "rescheduled"])
def test_a_review_call_sent_again_is_logged_with_its_ids(world, monkeypatch, caplog, rescheduled):
    first, review_id, visit_id = _crash_between_visit_and_review(world, monkeypatch)
    if rescheduled:  # in PICSWeb, before the rerun: the review moves a day later
        with world.picsweb.begin() as conn:
            r = pw.review.c
            conn.execute(
                sa.update(pw.review)
                .where(r.review_id == review_id)
                .values(scheduled_date=r.scheduled_date + sa.text("1"))
            )
    caplog.set_level(logging.INFO, logger=LOGGER)

    counts = push.push_reviews(world.cleared(first))

    assert counts["sent"] >= 1
    onefile_id = _linked(world, review_id)
    outbox_id = int(_outbox(world, first.run_id).loc[review_id, "outbox_id"])
    (line,) = _lines(caplog, "PICSWeb review ")  # the other creates were first sends
    if rescheduled:
        (created,) = [r for r in world.sim.data.reviews if r["ID"] == onefile_id]
        new_visit = created["VisitID"]
        assert new_visit != visit_id
        assert line == (
            f"PICSWeb review {review_id} re-sent: OneFile review {onefile_id} on visit "
            f"{new_visit} (outbox {outbox_id}; the PICSWeb review changed after an earlier "
            f"try made visit {visit_id} (left empty): sent on a new visit)"
        )
        (empty,) = [m for m in _lines(caplog, "outbox ") if ") left empty: " in m]
        assert f"OneFile visit {visit_id} of learner " in empty
        assert f"(for PICSWeb review {review_id}) left empty" in empty
    else:
        assert line == (
            f"PICSWeb review {review_id} re-sent: OneFile review {onefile_id} on visit "
            f"{visit_id} (outbox {outbox_id}; the Review call sent again on the visit an "
            "earlier try made)"
        )
    _no_secret(world, caplog)


def test_a_create_of_unknown_outcome_found_is_logged_as_recovered(world, monkeypatch, caplog):
    real = push.record_review_id
    doomed: list[int] = []

    def crash_after_the_first_review(ctx, outbox_id, review_id, onefile_id, **basis):
        if not doomed or doomed[0] == review_id:
            doomed[:1] = [review_id]
            raise ConnectionError("injected crash after the Review call")
        return real(ctx, outbox_id, review_id, onefile_id, **basis)

    monkeypatch.setattr(answers, "record_review_id", crash_after_the_first_review)
    first = world.run()
    monkeypatch.setattr(answers, "record_review_id", real)
    assert str(first.state) == "failed"
    (review_id,) = doomed
    row = _outbox(world, first.run_id).loc[review_id]
    caplog.set_level(logging.INFO, logger=LOGGER)

    counts = push.push_reviews(world.cleared(first))

    assert counts["recovered"] == 1
    onefile_id = _linked(world, review_id)
    (line,) = _lines(caplog, "PICSWeb review ")
    assert line == (
        f"PICSWeb review {review_id} recovered: OneFile review {onefile_id} on visit "
        f"{int(row['visit_id'])}, linked and not created again (outbox {int(row['outbox_id'])}; "
        f"the outcome of run {first.run_id}'s create was unknown)"
    )
    _no_secret(world, caplog)


def test_creates_retried_within_the_try_are_logged_with_their_ids(world, monkeypatch, caplog):
    """The first run crashes at its first Visit call, so every create is still to send.
    Rerun: the first Visit call answers 500 (tried again: re-sent), and the second Review
    call answers 500 although OneFile created it (found by its VisitID: recovered)."""
    real = OneFileHook.create_visit

    def crash(self, payload):
        raise ConnectionError("injected crash before the first Visit call")

    monkeypatch.setattr(OneFileHook, "create_visit", crash)
    first = world.run()
    monkeypatch.setattr(OneFileHook, "create_visit", real)
    assert str(first.state) == "failed"
    world.sim.faults.add(status=500, path_is="/Visit", method="POST")  # the first only
    world.sim.faults.add(
        status=500, path_is="/Review", method="POST", every=2, times=1, after_effect=True
    )
    caplog.set_level(logging.INFO, logger=LOGGER)

    counts = push.push_reviews(world.cleared(first))

    assert counts["sent"] >= 2 and counts["failed"] == 0
    outbox = _outbox(world, first.run_id)
    reviews = [c.body for c in world.sim.calls if c.method == "POST" and c.path == "/Review"]
    first_review, second_review = (
        int(outbox.index[outbox["visit_id"] == body["VisitID"]][0]) for body in reviews[:2]
    )
    tried_again = _lines(caplog, "PICSWeb review ")
    assert any(
        line.startswith(f"PICSWeb review {first_review} (outbox ")
        and "OneFile visit not made yet" in line
        and line.endswith("; trying again")
        for line in tried_again
    ), tried_again
    resent = _lines(caplog, f"PICSWeb review {first_review} re-sent")
    assert resent == [
        f"PICSWeb review {first_review} re-sent: OneFile review {_linked(world, first_review)} "
        f"on visit {int(outbox.loc[first_review, 'visit_id'])} "
        f"(outbox {int(outbox.loc[first_review, 'outbox_id'])}; attempt 2 of this try, after: "
        + resent[0].split("attempt 2 of this try, after: ", 1)[1]
    ]
    assert "500" in resent[0]
    (recovered,) = _lines(caplog, f"PICSWeb review {second_review} recovered")
    assert recovered.startswith(
        f"PICSWeb review {second_review} recovered: OneFile review "
        f"{_linked(world, second_review)} on visit "
        f"{int(outbox.loc[second_review, 'visit_id'])}, linked and not created again "
        f"(outbox {int(outbox.loc[second_review, 'outbox_id'])}; its Review call failed ("
    )
    assert recovered.endswith(") but had reached OneFile)")
    assert len(tried_again) == 3, tried_again  # tried again, re-sent, recovered: no more
    _no_secret(world, caplog)
