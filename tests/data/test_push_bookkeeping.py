"""The push's bookkeeping in batches (``push.Bookkeeping``): what OneFile answered reaches the
outbox, the audit and PICSWeb's links a batch at a time, whatever is buffered is recorded
when the sending ends by an exception, and a batch costs one transaction per database, not
one per write. Plus the data-layer pieces it uses (``picsweb_writes.link_reviews``,
``mark_outbox(payload=...)``)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import push
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import picsweb_writes
from picsweb_sync.storage import project_tables as pt

RUN = "manual__2026-03-21T02:00:00+00:00"


def context(engine) -> RunContext:
    ctx = RunContext(
        run_id=RUN,
        run_type="manual",
        interval_start=dt.datetime(2026, 3, 20, 2, tzinfo=dt.UTC),
        interval_end=dt.datetime(2026, 3, 21, 2, tzinfo=dt.UTC),
    )
    ctx.__dict__["picsweb"] = ctx.__dict__["staging"] = engine  # one database, as in tests
    return ctx


def enqueue(engine, kind: str, *targets: int) -> list[int]:
    items = pd.DataFrame({"target_id": list(targets), "payload": [{"queued": t} for t in targets]})
    with engine.begin() as conn:
        pt.enqueue_outbox(conn, RUN, kind, items)
        rows = pt.outbox_rows(conn, RUN, kind)
    return [int(i) for i in rows["outbox_id"]]


def outbox(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pt.outbox_rows(conn, RUN).set_index("target_id")


def audit(engine) -> list[tuple]:
    a = pt.sync_audit.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.system, a.entity, a.entity_key, a.field, a.new_value).order_by(a.audit_id)
        )
        return [tuple(r) for r in rows]


def onefile_ids(engine) -> dict[int, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pw.review.c.review_id, pw.review.c.onefile_system_id))
        return {int(r): o for r, o in rows}


# ----- the data-layer pieces ------------------------------------------------------------------
def test_link_reviews_links_only_reviews_without_an_id_and_audits_those(engine):
    """Review 1 holds 900001 already, review 2 has none, review 99 does not exist."""
    links = pd.DataFrame({"review_id": [1, 2, 99], "onefile_id": [800001, 800002, 800099]})
    with engine.begin() as conn:
        written = picsweb_writes.link_reviews(conn, RUN, links)
    assert written == [False, True, False]
    assert onefile_ids(engine) == {1: 900001, 2: 800002}
    assert audit(engine) == [("picsweb", "review", "2", "onefile_system_id", "800002")]


def test_mark_outbox_keeps_the_payload_that_was_sent(engine):
    (outbox_id,) = enqueue(engine, pt.AIM_UPDATE, 500001)
    with engine.begin() as conn:
        pt.mark_outbox(conn, outbox_id, "sent", payload={"RegistrationNumber": "REG-9"})
    row = outbox(engine).loc[500001]
    assert (row["state"], row["payload"], row["attempts"]) == (
        "sent",
        {"RegistrationNumber": "REG-9"},
        1,
    )


# ----- batches ----------------------------------------------------------------------------------
def test_answers_wait_for_their_batch_then_are_recorded_together(engine):
    ctx = context(engine)
    ids = enqueue(engine, pt.AIM_UPDATE, 500001, 500002, 500003)
    with push.bookkeeping(ctx) as book:
        book.batch = 3
        book.aim_sent(ids[0], 500001, {"RegistrationNumber": "R1"})
        book.skipped(ids[1], "not sent: RegistrationNumber is no longer blank in OneFile")
        assert set(outbox(engine)["state"]) == {"pending"}  # nothing written yet
        assert audit(engine) == []
        book.aim_sent(ids[2], 500003, {"RegistrationNumber": "R3", "RegistrationDate": "x"})
        states = outbox(engine)["state"].to_dict()  # the third answer filled the batch
    assert states == {500001: "sent", 500002: "skipped", 500003: "sent"}
    assert outbox(engine).loc[500003, "payload"] == {
        "RegistrationNumber": "R3",
        "RegistrationDate": "x",
    }
    assert audit(engine) == [
        ("onefile", "LearningAim", "500001", "RegistrationNumber", "R1"),
        ("onefile", "LearningAim", "500003", "RegistrationNumber", "R3"),
        ("onefile", "LearningAim", "500003", "RegistrationDate", "x"),
    ]


def test_what_is_buffered_is_recorded_when_an_exception_ends_the_sending(engine):
    ctx = context(engine)
    ids = enqueue(engine, pt.REVIEW_CREATE, 2)
    with pytest.raises(ConnectionError), push.bookkeeping(ctx):
        push.record_review_id(ctx, ids[0], 2, 800002)  # buffered (batch not full)
        raise ConnectionError("the next OneFile call failed for good")
    row = outbox(engine).loc[2]
    assert (row["state"], row["result_id"]) == ("sent", 800002)
    assert onefile_ids(engine)[2] == 800002
    assert ("onefile", "Review", "800002", "created_from_picsweb_review", "2") in audit(engine)


def test_a_create_whose_review_already_has_another_id_is_sent_and_rejected(engine):
    ctx = context(engine)
    ids = enqueue(engine, pt.REVIEW_CREATE, 1)
    with push.bookkeeping(ctx):
        push.record_review_id(ctx, ids[0], 1, 800001)
    assert outbox(engine).loc[1, "state"] == "sent"
    assert onefile_ids(engine)[1] == 900001  # never overwritten
    with engine.connect() as conn:
        reasons = pt.read_rejects(conn, RUN)["reason"].tolist()
    assert len(reasons) == 1 and "link them by hand" in reasons[0]


def test_outside_a_push_an_answer_is_recorded_at_once(engine):
    """Recovery (settling creates of unknown outcome) records each review it finds."""
    ctx = context(engine)
    ids = enqueue(engine, pt.REVIEW_CREATE, 2)
    push.record_review_id(ctx, ids[0], 2, 800002)
    assert outbox(engine).loc[2, "state"] == "sent"
    assert onefile_ids(engine)[2] == 800002


@pytest.mark.parametrize(
    ("batch", "seconds", "commits"),
    [(10, 60.0, 2), (5, 60.0, 4), (10, 0.0, 20)],
    ids=["one-batch", "two-batches", "no-wait-each-answer-alone"],
)
def test_a_batch_costs_one_transaction_per_database(engine, batch, seconds, commits):
    """Ten created reviews: a PICSWeb and a staging transaction per batch (here one
    database, so two commits a batch); with no time to wait, two per review, as before."""
    ctx = context(engine)
    targets = list(range(10, 20))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(pw.review),
            [
                {"review_id": t, "trainee_id": 1, "review_type": "Normal"}
                | {"scheduled_date": dt.date(2026, 3, 25)}
                for t in targets
            ],
        )
    ids = enqueue(engine, pt.REVIEW_CREATE, *targets)
    seen: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: seen.append(1))
    with push.bookkeeping(ctx) as book:
        book.batch, book.seconds = batch, seconds
        for outbox_id, target in zip(ids, targets, strict=True):
            push.record_review_id(ctx, outbox_id, target, 800000 + target)
    assert len(seen) == commits
    assert set(outbox(engine).loc[targets, "state"]) == {"sent"}
    assert [onefile_ids(engine)[t] for t in targets] == [800000 + t for t in targets]
