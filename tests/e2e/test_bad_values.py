"""One bad OneFile value no longer stops the sync: the real DAG against the simulator and
PostgreSQL, with OneFile serving values that do not fit PICSWeb's columns and page elements
that are not objects (``shared/contract/picsweb-schema.md``, last paragraph).

Each bad row must be set aside with its reason, nothing of it may reach PICSWeb, and the
rest of the run must do exactly what a clean run without those rows does: the expected
values come from the oracles (plain loops over the generator's rows), never from the code
under test.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from tests.e2e.qualification_oracle import expected_after_sync
from tests.e2e.review_oracle import expected_reviews, instant, plan_uploads, reviews_in_window
from tests.e2e.test_review_sync import _assert_reviews, _assert_uploads_sent, _created, _window

BIG_ID = 2**70  # beyond 64 bits: casting it to Int64 used to raise OverflowError
LONG_REGISTRATION = "R" * 60  # trainee_qualification.registration_number is String(50)
LONG_TITLE = "T" * 1200  # no PICSWeb column: staging text is unbounded, so it is kept
TOO_MANY_ELEMENTS = 3_000_000_000  # trainee_qualification.total_elements is an INTEGER


def _quals(world) -> dict[int, dict]:
    frame = world.table(pw.trainee_qualification, "tq_id")
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {row["tq_id"]: row for row in rows}


def _rejects(world, run_id: str) -> list[dict]:
    table = pt.sync_reject
    with world.picsweb.connect() as conn:
        rows = conn.execute(
            sa.select(
                table.c.stage, table.c.entity, table.c.source_id, table.c.reason, table.c.raw
            ).where(table.c.run_id == run_id, table.c.stage.like("extract_%"))
        )
        return sorted((dict(row._mapping) for row in rows), key=_reject_order)


def _reject_order(reject: dict) -> tuple:
    return reject["stage"], reject["source_id"] is None, reject["source_id"] or ""


def _untitled(aim: dict) -> dict:
    return {field: value for field, value in aim.items() if field != "Title"}


def _extract_count(world, run_id: str, entity: str, name: str) -> int:
    table = pt.sync_run_count
    with world.picsweb.connect() as conn:
        return conn.execute(
            sa.select(sa.func.sum(table.c.value)).where(
                table.c.run_id == run_id,
                table.c.stage.like(f"extract_{entity}[%]"),
                table.c.name == name,
            )
        ).scalar_one()


def _aims_a_clean_run_changes(world) -> list[tuple[dict, int]]:
    """(aim, tq_id) of aims linked by ID to a qualification without units whose PICSWeb row
    a clean run changes: the rows where holding an aim back shows."""
    picsweb = world.original.picsweb
    clean, _ = expected_after_sync(picsweb, world.original.onefile.learning_aims)
    before = {q["tq_id"]: q for q in picsweb["trainee_qualification"]}
    with_units = {u["tq_id"] for u in picsweb["trainee_qualification_unit"]}
    tq_of = {q["onefile_learning_aim_id"]: q["tq_id"] for q in before.values()}
    return [
        (aim, tq_of[aim["ID"]])
        for aim in world.dataset.onefile.learning_aims
        if aim["ID"] in tq_of
        and tq_of[aim["ID"]] not in with_units
        and clean[tq_of[aim["ID"]]] != before[tq_of[aim["ID"]]]
    ]


def _review_a_clean_run_downloads(world) -> dict:
    """A OneFile review of a linked learner, well inside the run's window, that PICSWeb does
    not have yet (a clean run creates it); not the highest ID, so the simulator's next new
    review ID stays below it."""
    picsweb = world.original.picsweb
    linked = {t["onefile_learner_id"] for t in picsweb["trainee"]} - {None}
    known = {r["onefile_system_id"] for r in picsweb["review"]}
    reviews = world.dataset.onefile.reviews
    highest = max(r["ID"] for r in reviews)
    today = dt.datetime.combine(world.dataset.today, dt.time(12), tzinfo=dt.UTC)
    return next(
        r
        for r in sorted(reviews, key=lambda r: r["ID"])
        if r["LearnerID"] in linked
        and r["ID"] not in known
        and r["ID"] != highest
        and abs(instant(r["ScheduledFor"]) - today) < dt.timedelta(days=10)
    )


def test_bad_values_are_set_aside_and_the_rest_of_the_run_syncs(world):
    candidates = _aims_a_clean_run_changes(world)
    assert len(candidates) >= 4, "the generated mix has too few linked aims to spoil"
    (long_number, number_tq), (many, many_tq), (big, big_tq), (titled, titled_tq) = candidates[:4]
    long_number["RegistrationNumber"] = LONG_REGISTRATION
    many["TotalElements"] = TOO_MANY_ELEMENTS
    titled["Title"] = LONG_TITLE
    # An ID beyond 64 bits, and null page elements, cannot be stored in the simulator's data
    # (it numbers new rows from the highest ID, and indexes rows by ID): they are served as
    # raw page elements instead, with the aim and review they replace taken out.
    review = _review_a_clean_run_downloads(world)
    world.dataset.onefile.learning_aims.remove(big)
    world.dataset.onefile.reviews.remove(review)
    world.sim.faults.inject_rows("LearningAim", [None, {**big, "ID": BIG_ID}])
    world.sim.faults.inject_rows("Review", [None, {**review, "ID": BIG_ID}])

    run = world.run()
    assert str(run.state) == "success"
    assert len(world.sim.faults.served_injected) == 4

    # ----- each bad row is a reject with its reason, and counted -------------------------
    rejects = _rejects(world, run.run_id)
    want = [
        {"stage": "extract_learning_aims", "entity": "learning_aims", "source_id": source_id}
        for source_id in (str(long_number["ID"]), str(many["ID"]), str(BIG_ID), None)
    ] + [
        {"stage": "extract_reviews", "entity": "reviews", "source_id": source_id}
        for source_id in (str(BIG_ID), None)
    ]
    assert [{k: r[k] for k in ("stage", "entity", "source_id")} for r in rejects] == sorted(
        want, key=_reject_order
    )
    reason = {(r["stage"], r["source_id"]): r["reason"] for r in rejects}
    assert reason["extract_learning_aims", str(long_number["ID"])].startswith(
        "RegistrationNumber: 60 characters, longer than PICSWeb's "
        "trainee_qualification.registration_number (50)"
    )
    assert reason["extract_learning_aims", str(many["ID"])].startswith(
        "TotalElements: 3000000000 is out of range for INTEGER "
        "(PICSWeb's trainee_qualification.total_elements"
    )
    for stage in ("extract_learning_aims", "extract_reviews"):
        assert reason[stage, str(BIG_ID)].startswith(
            f"ID: {BIG_ID} is out of range for BIGINT (PICSWeb's "
        )
        assert reason[stage, None] == "not a JSON object: null"
    raw = {(r["stage"], r["source_id"]): r["raw"] for r in rejects}
    assert (
        f'"RegistrationNumber": "{LONG_REGISTRATION}"'
        in raw["extract_learning_aims", str(long_number["ID"])]
    )
    assert raw["extract_reviews", None] == "null"
    assert _extract_count(world, run.run_id, "learning_aims", "rejected") == 4
    assert _extract_count(world, run.run_id, "reviews", "rejected") == 2

    # ----- qualifications: exactly a clean run without the rejected aims -----------------
    picsweb = world.original.picsweb
    rejected_aims = {long_number["ID"], many["ID"], big["ID"]}
    good_aims = [a for a in world.original.onefile.learning_aims if a["ID"] not in rejected_aims]
    want_quals, want_aims = expected_after_sync(picsweb, good_aims)
    have_quals = _quals(world)
    assert have_quals == want_quals
    before = {q["tq_id"]: q for q in picsweb["trainee_qualification"]}
    for tq_id in (number_tq, many_tq, big_tq):  # nothing of a rejected aim reached PICSWeb
        assert have_quals[tq_id] == before[tq_id]
    assert have_quals[titled_tq] != before[titled_tq]  # the long title held nothing back
    audited = world.audit(run.run_id)
    quals_audited = audited[audited["entity"] == "trainee_qualification"]["entity_key"]
    assert {str(number_tq), str(many_tq), str(big_tq)}.isdisjoint(quals_audited)
    # OneFile: the good aims got what the oracle says; a rejected aim got no update.
    stored = {a["ID"]: a for a in world.sim.data.learning_aims}
    assert {i: _untitled(stored[i]) for i in want_aims} == {
        i: _untitled(a) for i, a in want_aims.items()
    }
    assert stored[titled["ID"]]["Title"] == LONG_TITLE
    assert stored[long_number["ID"]]["RegistrationNumber"] == LONG_REGISTRATION
    assert stored[many["ID"]]["TotalElements"] == TOO_MANY_ELEMENTS
    updated = {c.path for c in world.sim.calls if c.method == "POST" and "/Search" not in c.path}
    assert {f"/LearningAim/{i}" for i in (long_number["ID"], many["ID"], BIG_ID)}.isdisjoint(
        updated
    )
    # The 1,200-character title is staged whole (staging text is unbounded).
    with world.picsweb.connect() as conn:
        staged = pt.read_staging(conn, run.run_id, "learning_aims")
    assert staged.loc[staged["learning_aim_id"] == titled["ID"], "title"].tolist() == [LONG_TITLE]
    assert BIG_ID not in set(staged["learning_aim_id"].dropna().astype(object))

    # ----- reviews: exactly a clean run without the rejected review ----------------------
    users = world.original.onefile.users
    uploads, _ = plan_uploads(picsweb, users)
    served = [r for r in world.original.onefile.reviews if r["ID"] != review["ID"]]
    downloads = reviews_in_window(served, users, picsweb, *_window(run))
    assert review["ID"] in {
        r["ID"] for r in reviews_in_window([review], users, picsweb, *_window(run))
    }, "the spoiled review is one a clean run would download"
    _assert_uploads_sent(world, uploads)
    want_rows, want_new = expected_reviews(picsweb, users, downloads, _created(world, uploads))
    _assert_reviews(world, want_rows, want_new)
    system_ids = set(world.table(pw.review, "review_id")["onefile_system_id"].dropna())
    assert review["ID"] not in system_ids  # nothing of the rejected review reached PICSWeb

    # ----- a second run sets the same rows aside again, and changes nothing else ---------
    world.sim.faults.inject_rows("LearningAim", [None, {**big, "ID": BIG_ID}])
    world.sim.faults.inject_rows("Review", [None, {**review, "ID": BIG_ID}])
    second = world.run()
    assert str(second.state) == "success"
    assert world.audit(second.run_id).empty
    assert [(r["stage"], r["source_id"], r["reason"]) for r in _rejects(world, second.run_id)] == [
        (r["stage"], r["source_id"], r["reason"]) for r in rejects
    ]
    assert _quals(world) == have_quals
