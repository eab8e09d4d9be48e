"""What issue 18 added to the outbox, on SQLite and PostgreSQL: the basis of each review
create (when OneFile accepted it, ``sync_create_basis``), kept once recorded; and the visits the sync made and could not use (``sync_empty_visit``), each recorded
with what to do and reported as a reject of its run."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables import outbox

RUN = "manual__2026-03-21T02:00:00+00:00"


def naive(*parts: int) -> dt.datetime:
    """A naive UTC datetime, the project's form for its own timestamps."""
    return dt.datetime(*parts, tzinfo=dt.UTC).replace(tzinfo=None)


def _enqueue(engine, *targets: int) -> list[int]:
    items = pd.DataFrame({"target_id": list(targets), "payload": [{"t": t} for t in targets]})
    with engine.begin() as conn:
        pt.enqueue_outbox(conn, RUN, pt.REVIEW_CREATE, items)
        rows = pt.outbox_rows(conn, RUN, pt.REVIEW_CREATE)
    return [int(i) for i in rows["outbox_id"]]


def test_the_basis_of_a_create_is_kept_once_recorded_and_read_per_create(engine):
    first, second, third = _enqueue(engine, 11, 12, 13)
    accepted = naive(2026, 3, 20, 9, 30, 15, 123000)
    with engine.begin() as conn:
        pt.mark_outbox(conn, first, "sent", result_id=900011)
        pt.mark_outbox(conn, third, "sent", result_id=900013)
        pt.mark_outbox(conn, second, "pending", visit_id=700012)
        bases = pd.DataFrame(
            {"outbox_id": [first], "target_id": [11], "result_id": [900011]}
        ).assign(basis_at=accepted)
        assert outbox.record_create_bases(conn, RUN, bases) == 1
        later = bases.assign(basis_at=accepted + dt.timedelta(hours=1))
        assert outbox.record_create_bases(conn, RUN, later) == 0  # the first time stays
        found = outbox.create_bases(conn, RUN)
    assert found.to_dict("records") == [
        {"target_id": 11, "result_id": 900011, "basis_at": pd.Timestamp(accepted)},
        {"target_id": 13, "result_id": 900013, "basis_at": pd.NaT},  # recorded before: none
    ]


def test_an_empty_visit_is_recorded_with_what_to_do_and_as_a_reject(engine):
    (outbox_id,) = _enqueue(engine, 21)
    visits = pd.DataFrame(
        {
            "outbox_id": [outbox_id, outbox_id],
            "review_id": [21, 21],
            "visit_id": pd.array([700021, None], dtype="Int64"),
            "learner_id": [5001, 5001],
            "organisation_id": [5740, 5740],
            "visit_from": ["2026-03-20T09:00:00Z", "2026-03-21T09:00:00Z"],
            "reason": ["the PICSWeb review changed", "POST /Visit failed (HTTP 500)"],
        }
    )
    with engine.begin() as conn:
        assert outbox.record_empty_visits(conn, RUN, visits) == 2
        listed = outbox.empty_visits(conn, RUN)
        everywhere = outbox.empty_visits(conn)
        rejects = pt.read_rejects(conn, RUN)
    assert len(everywhere) == 2
    known, unknown = (listed[listed["visit_id"].notna()].iloc[0], listed[listed["visit_id"].isna()])
    assert (int(known["visit_id"]), int(known["learner_id"]), int(known["review_id"])) == (
        700021,
        5001,
        21,
    )
    assert "delete visit 700021" in known["what_to_do"]
    assert "learner 5001's visits on 2026-03-20" in known["what_to_do"]
    assert "may or may not have made it" in unknown["what_to_do"].iloc[0]
    reasons = sorted(rejects["reason"])
    assert reasons[0].startswith("OneFile visit left empty (visit 700021, learner 5001, ")
    assert reasons[1].startswith("OneFile visit left empty (visit unknown, learner 5001, ")
    assert set(rejects["source_id"].fillna("-")) == {"700021", "-"}


def test_empty_visits_are_not_purged_with_their_run(engine):
    with engine.begin() as conn:
        outbox.record_empty_visits(
            conn,
            RUN,
            pd.DataFrame(
                {
                    "outbox_id": [1],
                    "review_id": [1],
                    "visit_id": pd.array([700001], dtype="Int64"),
                    "learner_id": [5001],
                    "organisation_id": [5740],
                    "visit_from": [None],
                    "reason": ["refused"],
                }
            ),
        )
        pt.purge(conn, older_than_days=1, now=naive(2026, 1, 1) + dt.timedelta(days=4000))
        assert len(outbox.empty_visits(conn)) == 1
