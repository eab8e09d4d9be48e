"""A OneFile text no database can store never stops an extract (issue 18, case 7).

OneFile serves, over HTTP from the simulator (whose ``json.dumps`` writes them as ``\\u0000``
and ``\\ud83d``, valid JSON the hook decodes back), a learner named ``"Ann\\u0000e"``, a
learner whose name was cut in the middle of an emoji (a lone surrogate), learning aims with
a lone surrogate in the title and a NUL in the registration number, a review whose
``ScheduledFor`` holds a NUL, and a review with a lone surrogate in a field the sync does
not read. The extract tasks' bodies (``picsweb_sync.stages.extract``, as the DAG runs them: the
real hook, the call budget, staging on PostgreSQL, which refuses NUL) then:

- set each spoiled row aside with a reason naming the field, the code point and where it is;
- stage every other row exactly as an extract of the same OneFile before the spoiling did
  (the oracle is that earlier extract, so nothing here trusts the parser's own answers);
- keep the review with the odd unread field, its ``raw`` the exact row, escaped.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from onefile_simulator import OneFileSimulator, generate_dataset
from picsweb_sync.run.runtime import RunContext, settings_snapshot
from picsweb_sync.run.settings import read_settings
from picsweb_sync.stages import extract
from picsweb_sync.storage import project_tables as pt
from sync_demo.dag_runs import connection_env
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

FAST_HOOK = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "timeout_seconds": 5}
EXTRACTS = {
    "learners": extract.extract_learners,
    "learning_aims": extract.extract_learning_aims,
    "reviews": extract.extract_reviews,
}
KEY = {"learners": "learner_id", "learning_aims": "learning_aim_id", "reviews": "review_id"}
NUL = "U+0000 (NUL) at character {}, which PostgreSQL text cannot store and pymssql cannot send"
CUT = "U+D83D at character {} is a lone high surrogate (half of a UTF-16 pair"


@dataclass
class Setup:
    sim: OneFileSimulator
    engine: sa.Engine
    settings: dict
    when: datetime

    def context(self, run_id: str) -> RunContext:
        return RunContext(
            run_id=run_id,
            run_type="scheduled",
            interval_start=self.when - timedelta(days=1),
            interval_end=self.when,
            settings_snapshot=self.settings,
            task_label="extract",
            try_number=1,
        )

    def extract_all(self, run_id: str) -> None:
        ctx = self.context(run_id)
        for organisation_id in ctx.settings.organisation_ids:
            for run in EXTRACTS.values():
                run(ctx, organisation_id)

    def staged(self, run_id: str, entity: str) -> pd.DataFrame:
        with self.engine.connect() as conn:
            frame = pt.read_staging(conn, run_id, entity)
        return frame.sort_values(KEY[entity]).reset_index(drop=True)

    def rejects(self, run_id: str) -> pd.DataFrame:
        with self.engine.connect() as conn:
            frame = pt.read_rejects(conn, run_id)
        frame = frame[frame["stage"].str.startswith("extract_")]
        return frame.sort_values(["stage", "source_id", "raw"]).reset_index(drop=True)


@pytest.fixture
def setup(pg_url, monkeypatch) -> Setup:
    dataset = generate_dataset(seed=11, organisations=2, learners=12)
    engine = sa.create_engine(pg_url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, dataset.picsweb)
    pt.ensure_project_tables(engine)
    with engine.connect() as conn:
        settings = settings_snapshot(read_settings(conn))
    settings["download_review_data"] = True  # extract_reviews runs
    sim = OneFileSimulator(dataset.onefile)
    sim.start()
    for key, value in connection_env(sim.base_url, sim.customer_token, pg_url, FAST_HOOK).items():
        monkeypatch.setenv(key, value)
    yield Setup(sim, engine, settings, datetime.combine(dataset.today, time(2), tzinfo=UTC))
    sim.stop()
    engine.dispose()


def _first(rows: list[dict], **where) -> dict:
    return next(row for row in rows if all(row.get(k) == v for k, v in where.items()))


def test_unstorable_text_is_a_reject_and_the_rest_of_the_extract_stages(setup: Setup):
    setup.extract_all("manual__before")  # the oracle: the same OneFile, before the spoiling
    before = {entity: setup.staged("manual__before", entity) for entity in EXTRACTS}
    rejects_before = setup.rejects("manual__before")

    # ----- spoil rows that staged cleanly before ---------------------------------------------
    data = setup.sim.data
    staged_learners = set(before["learners"]["learner_id"])
    learners = [u for u in data.users if u["Role"] == 1 and u["ID"] in staged_learners]
    nul_learner, cut_learner = learners[0], learners[-1]
    nul_learner["FirstName"] = "Ann\x00e"
    cut_learner["LastName"] = "Smith \ud83d"  # "Smith 😀" cut after its first UTF-16 unit
    aims = [
        a for a in data.learning_aims if a["ID"] in set(before["learning_aims"]["learning_aim_id"])
    ]
    cut_aim, nul_aim = aims[0], aims[-1]
    cut_aim["Title"] = "Level 3 \ud83d"
    nul_aim["RegistrationNumber"] = "REG\x001"
    staged_reviews = before["reviews"]
    noted = _first(data.reviews, ID=int(staged_reviews["review_id"].iloc[0]))
    noted["Notes"] = "cut \ud83d"  # a field the sync does not read: kept, escaped, in raw
    template = _first(data.reviews, ID=int(staged_reviews["review_id"].iloc[-1]))
    bad_review = {
        **copy.deepcopy(template),
        "ID": max(r["ID"] for r in data.reviews) + 1000,
        "ScheduledFor": template["ScheduledFor"] + "\x00",
    }
    setup.sim.faults.inject_rows("Review", [bad_review])

    setup.extract_all("manual__after")
    assert len(setup.sim.faults.served_injected) == 1

    # ----- each spoiled row is a reject with a clear reason ----------------------------------
    rejects = setup.rejects("manual__after")
    new = rejects[~rejects["raw"].isin(set(rejects_before["raw"]))]
    reasons = {(r.stage, r.source_id): r.reason for r in new.itertuples()}
    assert set(reasons) == {
        ("extract_learners", str(nul_learner["ID"])),
        ("extract_learners", str(cut_learner["ID"])),
        ("extract_learning_aims", str(cut_aim["ID"])),
        ("extract_learning_aims", str(nul_aim["ID"])),
        ("extract_reviews", str(bad_review["ID"])),
    }
    assert reasons["extract_learners", str(nul_learner["ID"])] == (
        f'FirstName: {NUL.format(4)} to SQL Server: "Ann\\u0000e"'
    )
    assert reasons["extract_learners", str(cut_learner["ID"])].startswith(
        f"LastName: {CUT.format(7)}"
    )
    assert reasons["extract_learning_aims", str(cut_aim["ID"])].startswith(
        f"Title: {CUT.format(9)}"
    )
    assert reasons["extract_learning_aims", str(nul_aim["ID"])].startswith(
        f"RegistrationNumber: {NUL.format(4)}"
    )
    assert reasons["extract_reviews", str(bad_review["ID"])] == (
        f"ScheduledFor: not an ISO-8601 instant: {json.dumps(bad_review['ScheduledFor'])}"
    )
    # Each reject's raw gives back the row exactly as OneFile sent it, bad text and all.
    sent = {
        str(nul_learner["ID"]): nul_learner,
        str(cut_learner["ID"]): cut_learner,
        str(cut_aim["ID"]): cut_aim,
        str(nul_aim["ID"]): nul_aim,
        str(bad_review["ID"]): bad_review,
    }
    for row in new.itertuples():
        assert json.loads(row.raw) == sent[row.source_id]
    # The rejects of before are there again, unchanged.
    old = rejects[rejects["raw"].isin(set(rejects_before["raw"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, rejects_before)

    # ----- everything else staged exactly as before -------------------------------------------
    spoiled = {
        "learners": {nul_learner["ID"], cut_learner["ID"]},
        "learning_aims": {cut_aim["ID"], nul_aim["ID"]},
        "reviews": set(),
    }
    for entity, frame in before.items():
        after = setup.staged("manual__after", entity)
        want = frame[~frame[KEY[entity]].isin(spoiled[entity])].reset_index(drop=True)
        if entity == "reviews":  # the noted review's raw has its extra field, escaped
            is_noted = after["review_id"] == noted["ID"]
            (raw,) = after.loc[is_noted, "raw"]
            assert '"Notes": "cut \\ud83d"' in raw and raw.isascii()
            assert json.loads(raw) == noted
            after = after.assign(raw=after["raw"].where(~is_noted, want["raw"]))
        assert len(after) == len(want) > 0, entity
        pd.testing.assert_frame_equal(after, want)


def test_the_dag_run_succeeds_and_syncs_everything_else(world):
    """The real DAG (``dag.test()``): before, the extract failed on every try and every later
    task was upstream_failed, every day. Now the run succeeds, the spoiled aims are its
    rejects, and PICSWeb ends exactly as a clean run without those aims leaves it."""
    from tests.e2e.qualification_oracle import expected_after_sync
    from tests.e2e.test_bad_values import _aims_a_clean_run_changes, _quals, _rejects

    (cut, cut_tq), (nul, nul_tq) = _aims_a_clean_run_changes(world)[:2]
    cut["Title"] = "Level 3 \ud83d"
    nul["RegistrationNumber"] = "REG\x001"

    run = world.run()
    assert str(run.state) == "success"
    states = {str(ti.state) for ti in run.get_task_instances()}
    assert states <= {"success", "skipped"}, states

    reasons = {
        r["source_id"]: r["reason"]
        for r in _rejects(world, run.run_id)
        if r["stage"] == "extract_learning_aims"
    }
    assert reasons[str(cut["ID"])].startswith(f"Title: {CUT.format(9)}")
    assert reasons[str(nul["ID"])].startswith(f"RegistrationNumber: {NUL.format(4)}")
    picsweb = world.original.picsweb
    good = [
        a for a in world.original.onefile.learning_aims if a["ID"] not in (cut["ID"], nul["ID"])
    ]
    want, _ = expected_after_sync(picsweb, good)
    have = _quals(world)
    assert have == want
    before = {q["tq_id"]: q for q in picsweb["trainee_qualification"]}
    assert have[cut_tq] == before[cut_tq] and have[nul_tq] == before[nul_tq]
