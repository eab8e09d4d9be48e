"""The run summary on a real database (SQLite and PostgreSQL): computed from the sync's own
tables, stored in ``sync_run_summary`` by ``start_run`` / ``finish_run`` /
``record_failure``, and failed loudly by ``check_thresholds``."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import event
from sqlalchemy.sql import ClauseElement

from picsweb_sync.run import dry_run, freshness, summary, thresholds
from picsweb_sync.run import note as run_note
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import start_finish as report
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.data.conftest import settings_row

RUN = "scheduled__2026-03-20T02:00:00+00:00"
OTHER = "manual__2026-03-20T09:00:00+00:00"
START = dt.datetime(2026, 3, 19, 2, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 20, 2, tzinfo=dt.UTC)


def rejects(*reasons: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": "learning_aims",
            "source_id": [str(i) for i in range(len(reasons))],
            "reason": list(reasons),
            "raw": None,
        }
    )


def outbox(kind: str, *rows: tuple[int, dict, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "target_id": [r[0] for r in rows],
            "payload": pd.Series([r[1] for r in rows], dtype=object),
        }
    ).assign(state=[r[2] for r in rows], kind=kind)


def fill_run(conn, run_id: str, dry: bool = False) -> None:
    """A run's counts, rejects and outbox as its tasks write them, and its merges' basis."""
    for stage in (freshness.QUALIFICATIONS, freshness.REVIEWS):
        freshness.record_change_basis(
            conn, run_id, stage, freshness.merge_basis(conn, run_id, stage)
        )
    for org, (learners, aims, assessors, reviews) in {
        11: (30, 50, 4, 70),
        12: (10, 30, 2, 50),
    }.items():
        for entity, n in (
            ("learners", learners),
            ("learning_aims", aims),
            ("assessors", assessors),
            ("reviews", reviews),
        ):
            pt.record_counts(conn, run_id, f"extract_{entity}[{org}]", {"staged": n, "rejected": 1})
    pt.record_counts(
        conn,
        run_id,
        "load_qualifications",
        {"fields_changed": 27, "already_equal": 2, "conflicts": 1, "reviews_inserted": 0},
    )
    pt.record_counts(
        conn,
        run_id,
        "load_reviews",
        {"fields_changed": 3, "already_equal": 0, "conflicts": 2, "reviews_inserted": 3},
    )
    pt.record_counts(conn, run_id, "merge_qualifications", {"fields_changed": 100})  # not a load
    pt.record_counts(conn, run_id, "push_learning_aims", {"sent": 2, "skipped": 1})
    pt.record_counts(
        conn, run_id, "push_reviews", {"sent": 4, "recovered": 1, "fields_reflected": 2}
    )
    pt.record_rejects(
        conn,
        run_id,
        "extract_learning_aims",
        rejects(
            "RegistrationNumber: 60 characters, longer than PICSWeb's column (50)",
            "RegistrationNumber: 51 characters",
            "not a JSON object: null",
        ),
        organisation_id=11,
    )
    pt.record_rejects(
        conn,
        run_id,
        "load_qualifications",
        rejects("conflict: title changed in PICSWeb since the merge read it (now 'a')"),
    )
    pt.record_rejects(
        conn,
        run_id,
        "plan_review_uploads",
        rejects("no officer with a OneFile ID (review officer 3, main officer none)"),
    )
    if dry:  # what the dry-run push would send: 7 fields of 2 aims
        would_send = pd.DataFrame(
            {
                "entity": "LearningAim",
                "entity_id": [1, 1, 1, 2, 2, 2, 2],
                "field": ["TotalElements", "RegistrationNumber", "A", "B", "C", "D", "E"],
                "old": None,
                "new": pd.Series([1, "R", "a", "b", "c", "d", "e"], dtype=object),
                "rule": "fill_blank",
            }
        )
        dry_run.record_aim_updates(conn, run_id, would_send)
        return
    aims = outbox(
        pt.AIM_UPDATE,
        (1, {"TotalElements": 4, "RegistrationNumber": "R1"}, "sent"),
        (2, {"RegistrationDate": "2026-01-01"}, "sent"),
        (3, {"TotalElements": 1}, "skipped"),
        (4, {"TotalElements": 2}, "pending"),
    )
    creates = outbox(
        pt.REVIEW_CREATE,
        (10, {"visit": {}, "review": {}}, "sent"),
        (11, {"visit": {}, "review": {}}, "failed"),
        (12, {"visit": {}, "review": {}}, "rejected"),
    )
    for frame in (aims, creates):
        kind = frame["kind"].iloc[0]
        pt.enqueue_outbox(conn, run_id, kind, frame[["target_id", "payload"]])
        for target, state in zip(frame["target_id"], frame["state"], strict=True):
            outbox_id = conn.execute(
                sa.select(pt.sync_outbox.c.outbox_id).where(
                    pt.sync_outbox.c.run_id == run_id, pt.sync_outbox.c.target_id == int(target)
                )
            ).scalar_one()
            if state != "pending":
                pt.mark_outbox(conn, outbox_id, state)


EXPECTED = {
    "learners_extracted": 40,
    "learning_aims_extracted": 80,
    "assessors_extracted": 6,
    "reviews_extracted": 120,
    "picsweb_fields_changed": 32,  # 27 + 3 loaded, 2 reflected from uploaded reviews
    "picsweb_reviews_created": 3,
    "onefile_fields_changed": 3,  # the fields of the two sent aim updates
    "onefile_reviews_created": 1,
    "rejects": 4,
    "conflicts": 3,
    "outbox_pending": 2,  # one pending aim update, one failed create
    "dry_run": False,
    "rejects_by_kind": {
        "RegistrationNumber": 2,
        "no officer with a OneFile ID": 1,
        "not a JSON object": 1,
    },
}


def test_the_summary_counts_one_run_from_counts_rejects_and_the_outbox(engine):
    with engine.begin() as conn:
        fill_run(conn, RUN)
        fill_run(conn, OTHER)  # another run's rows are not this run's
        pt.record_counts(conn, OTHER, "load_reviews", {"fields_changed": 500})
    with engine.connect() as conn:
        got = summary.run_summary(conn, RUN)
    assert got == EXPECTED
    assert set(summary.SUMMARY_KEYS) <= set(got)
    assert sum(got["rejects_by_kind"].values()) == got["rejects"]


def test_a_dry_run_counts_what_its_pushes_would_send(engine):
    with engine.begin() as conn:
        fill_run(conn, RUN, dry=True)
    with engine.connect() as conn:
        got = summary.run_summary(conn, RUN, dry_run=True)
    assert got == EXPECTED | {
        "onefile_fields_changed": 7,
        "onefile_reviews_created": 4,
        "outbox_pending": 0,
        "dry_run": True,
    }


def test_a_run_with_nothing_recorded_has_every_key_at_zero(engine):
    with engine.connect() as conn:
        got = summary.run_summary(conn, "never-ran")
    assert got == dict.fromkeys(summary.SUMMARY_KEYS, 0) | {"dry_run": False, "rejects_by_kind": {}}


# ----- the run's row, through the stage functions --------------------------------------------
@pytest.fixture
def notes(monkeypatch) -> list[tuple[str, str, str]]:
    published: list[tuple[str, str, str]] = []
    monkeypatch.setattr(run_note, "publish", lambda *args: published.append(args) or True)
    return published


def context(engine, run_id: str = RUN, **params) -> RunContext:
    ctx = RunContext(
        run_id=run_id,
        run_type="scheduled",
        interval_start=START,
        interval_end=END,
        params=params,
        dag_id="onefile_picsweb_sync",
    )
    ctx.__dict__["picsweb"] = ctx.__dict__["staging"] = engine  # one database, as in tests
    return ctx


def row(engine, run_id: str = RUN) -> dict:
    with engine.connect() as conn:
        return summary.read_run_summary(conn, run_id)


def run_record(engine, run_id: str = RUN):
    with engine.connect() as conn:
        return conn.execute(sa.select(pt.sync_run).where(pt.sync_run.c.run_id == run_id)).one()


def last_synchronised(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(pw.onefile_settings.c.last_synchronised)).scalar_one()


def naive(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(tzinfo=None)


T1 = END + dt.timedelta(minutes=20)
T2 = END + dt.timedelta(hours=5)


def test_start_and_finish_store_the_run_summary_and_a_rerun_keeps_the_first_end(engine, notes):
    ctx = context(engine)
    assert report.start_run(ctx) is not False
    opened = row(engine)
    assert {k: opened[k] for k in ("dag_id", "run_type", "dry_run", "interval_start")} == {
        "dag_id": "onefile_picsweb_sync",
        "run_type": "scheduled",
        "dry_run": False,
        "interval_start": naive(START),
    }
    assert opened["interval_end"] == naive(END)
    assert opened["first_ended_at"] is None and opened["summary"] is None
    with engine.begin() as conn:
        fill_run(conn, RUN)

    done = report.finish_run(ctx, now=T1)

    assert done["summary"] == EXPECTED
    assert done["page"] == "/onefile-sync/runs/scheduled__2026-03-20T02%3A00%3A00%2B00%3A00"
    json.dumps(done)  # the XCom is plain JSON
    stored = row(engine)
    assert stored["summary"] == EXPECTED
    assert stored["first_ended_at"] == naive(T1)
    assert stored["thresholds_crossed"] == []
    assert run_record(engine).outcome == "success"
    assert last_synchronised(engine) is not None
    ((dag_id, run_id, note),) = notes
    assert (dag_id, run_id) == ("onefile_picsweb_sync", RUN)
    assert note.startswith("✅ synced")
    assert "extracted 40 learners, 80 aims, 6 assessors, 120 reviews" in note
    assert note.endswith(f"[details]({done['page']})")

    # A cleared start_run and finish_run, hours later, with one more change loaded.
    report.start_run(ctx)
    assert row(engine)["first_ended_at"] == naive(T1)
    assert row(engine)["summary"] == EXPECTED  # kept until the run ends again
    with engine.begin() as conn:
        pt.record_counts(conn, RUN, "load_reviews", {"fields_changed": 4, "conflicts": 2})
    report.finish_run(ctx, now=T2)
    again = row(engine)
    assert again["first_ended_at"] == naive(T1)  # the run's original end survives
    # In all: 27 + 3 + 4 loaded (the first try's 3 included), 2 reflected; the rerun's
    # own counts are its latest try's: 27 + 4 + 2, and no review created by the rerun.
    assert again["summary"]["picsweb_fields_changed"] == 36
    assert again["summary"]["picsweb_reviews_created"] == 3
    assert again["summary"]["reruns"] == {"load_reviews": 2}
    assert again["summary"]["latest_try"]["picsweb_fields_changed"] == 33
    assert again["summary"]["latest_try"]["picsweb_reviews_created"] == 0
    assert run_record(engine).ended_at == naive(T2)
    assert len(notes) == 2


def test_a_dry_run_never_sets_last_synchronised_and_says_what_it_would_change(engine, notes):
    ctx = context(engine, dry_run=True)
    report.start_run(ctx)
    with engine.begin() as conn:
        fill_run(conn, RUN, dry=True)
    before = last_synchronised(engine)

    done = report.finish_run(ctx, now=T1)

    assert last_synchronised(engine) == before
    assert row(engine)["dry_run"] is True
    assert done["summary"]["dry_run"] is True
    assert done["summary"]["onefile_fields_changed"] == 7
    note = notes[-1][2]
    assert note.startswith("🧪 dry run (nothing written)")
    assert "would change PICSWeb: 32 fields changed, 3 reviews created" in note


def test_a_real_run_sets_last_synchronised_where_a_dry_run_does_not(engine, notes):
    """The dry-run test above can fail: the same finish of a real run does set it."""
    before = last_synchronised(engine)
    ctx = context(engine)
    report.start_run(ctx)
    with engine.begin() as conn:
        fill_run(conn, ctx.run_id)
    report.finish_run(ctx, now=T1)
    assert last_synchronised(engine) != before


def test_a_run_without_a_qualification_basis_leaves_last_synchronised_alone(engine, notes):
    """A run whose change sets and their basis are gone (purged by retention) claims no
    sync when its finish_run is cleared (issue 18, case 3)."""
    before = last_synchronised(engine)
    ctx = context(engine)
    report.start_run(ctx)
    with engine.begin() as conn:
        fill_run(conn, ctx.run_id)
        conn.execute(sa.delete(pt.sync_change_basis))
    report.finish_run(ctx, now=T1)
    assert last_synchronised(engine) == before


def test_record_failure_stores_the_summary_and_names_the_failure_in_the_note(engine, notes):
    ctx = context(engine)
    report.start_run(ctx)
    with engine.begin() as conn:
        fill_run(conn, RUN)
        pt.record_task_error(conn, RUN, "load_reviews", 3, "RuntimeError: boom")

    failure = report.record_failure(ctx, ["load_reviews"])

    assert run_record(engine).outcome == "failed"
    stored = row(engine)
    assert stored["summary"] == EXPECTED
    assert stored["first_ended_at"] is not None
    note = notes[-1][2]
    assert note.startswith("❌ failed")
    assert "load_reviews (try 3): RuntimeError: boom" in note and "RuntimeError" in failure


def test_record_failure_of_a_run_whose_start_failed_opens_both_records(engine, notes):
    ctx = context(engine, "manual__x")
    report.record_failure(ctx, ["start_run"])
    assert run_record(engine, "manual__x").outcome == "failed"
    stored = row(engine, "manual__x")
    assert stored["run_type"] == "scheduled" and stored["summary"]["rejects"] == 0


def test_check_thresholds_fails_the_synced_run_loudly_naming_each_threshold(engine, notes):
    report.start_run(context(engine))
    with engine.begin() as conn:
        fill_run(conn, RUN)
    report.finish_run(context(engine), now=T1)
    synced = last_synchronised(engine)

    # The defaults, and every threshold off: nothing crossed, the run stays green.
    passed = report.check_thresholds(context(engine))
    assert passed == {
        "thresholds_crossed": [],
        "summary": EXPECTED,
        "page": "/onefile-sync/runs/scheduled__2026-03-20T02%3A00%3A00%2B00%3A00",
    }
    off = dict.fromkeys(thresholds.THRESHOLD_DEFAULTS)
    assert report.check_thresholds(context(engine, **off))["thresholds_crossed"] == []
    assert run_record(engine).outcome == "success"

    low = context(engine, max_rejects=3, max_conflicts=2)
    with pytest.raises(AirflowFailException) as failed:
        report.check_thresholds(low)

    message = str(failed.value)
    assert "rejects 4 > max_rejects 3" in message and "conflicts 3 > max_conflicts 2" in message
    assert "/onefile-sync/runs/" in message
    record = run_record(engine)
    assert record.outcome == "failed"
    assert "rejects 4 > max_rejects 3; conflicts 3 > max_conflicts 2" in record.failure
    stored = row(engine)
    assert stored["thresholds_crossed"] == [
        "rejects 4 > max_rejects 3",
        "conflicts 3 > max_conflicts 2",
    ]
    assert stored["first_ended_at"] == naive(T1)
    assert last_synchronised(engine) == synced  # the data stays synced
    assert notes[-1][2].startswith("⚠️ thresholds crossed: rejects 4 > max_rejects 3")

    # A cleared finish_run closes the run green again; the check then fails it again.
    report.finish_run(context(engine), now=T2)
    assert run_record(engine).outcome == "success" and row(engine)["thresholds_crossed"] == []
    with pytest.raises(AirflowFailException):
        report.check_thresholds(low)
    assert row(engine)["thresholds_crossed"] == [
        "rejects 4 > max_rejects 3",
        "conflicts 3 > max_conflicts 2",
    ]


def test_integration_off_ends_the_run_with_its_summary_and_note(engine, notes):
    with engine.begin() as conn:
        conn.execute(sa.update(pw.onefile_settings).values(integration_enabled=False))
    assert report.start_run(context(engine)) is False
    assert run_record(engine).outcome == "integration_off"
    assert row(engine)["first_ended_at"] is not None
    assert row(engine)["summary"]["learners_extracted"] == 0
    assert "integration off" in notes[-1][2]


def test_the_summary_statements_compile_for_sql_server(tmp_path, notes):
    """Every statement the summary functions issue, compiled with the mssql dialect."""
    from picsweb_sync.storage.engines import engine_for_url
    from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

    from .conftest import picsweb_rows
    from .test_mssql_compile import NOT_TSQL, tsql

    engine = engine_for_url(f"sqlite:///{tmp_path / 'w.sqlite'}")
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, picsweb_rows())
    pt.ensure_project_tables(engine)
    captured: list[ClauseElement] = []
    with engine.begin() as conn:
        fill_run(conn, RUN)

    @event.listens_for(engine, "before_execute")
    def capture(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, ClauseElement):
            captured.append(clauseelement)

    ctx = context(engine)
    report.start_run(ctx)
    report.finish_run(ctx, now=T1)
    with pytest.raises(AirflowFailException):
        report.check_thresholds(context(engine, max_rejects=0))
    report.record_failure(ctx, [])
    engine.dispose()
    summary_sql = [
        tsql(s) for s in captured if "sync_run_summary" in str(s) or "sync_outbox" in str(s)
    ]
    assert any(sql.startswith("UPDATE sync_run_summary") for sql in summary_sql)
    assert any("coalesce(sync_run_summary.first_ended_at" in sql.lower() for sql in summary_sql)
    for sql in map(tsql, captured):
        assert not [t for t in NOT_TSQL if t in sql.upper()], sql


def test_a_dry_run_with_its_own_staging_database_leaves_the_picsweb_database_alone(
    empty_engine, tmp_path, notes
):
    """With staging elsewhere, the PICSWeb database holds the sync's work tables and audit; a
    dry run neither creates them at its start nor purges them at its end (a real run does)."""
    picsweb = empty_engine
    create_picsweb_tables(picsweb)
    load_picsweb_rows(picsweb, {"onefile_settings": [settings_row()]})
    staging = sa.create_engine(f"sqlite:///{tmp_path / 'staging.db'}")

    def separate(dry: bool) -> RunContext:
        ctx = RunContext(
            run_id=RUN,
            run_type="scheduled",
            interval_start=START,
            interval_end=END,
            params={"dry_run": dry},
            picsweb_conn_id="picsweb",
            staging_conn_id="staging",
        )
        ctx.__dict__["picsweb"], ctx.__dict__["staging"] = picsweb, staging
        return ctx

    def side_tables() -> set[str]:
        names = {t.name for t in pt.PICSWEB_SIDE_TABLES}
        return names & set(sa.inspect(picsweb).get_table_names())

    report.start_run(separate(dry=True))
    report.finish_run(separate(dry=True), now=T1)
    assert side_tables() == set()

    report.start_run(separate(dry=False))  # the control: a real run keeps them there
    report.finish_run(separate(dry=False), now=T2)
    assert side_tables() == {t.name for t in pt.PICSWEB_SIDE_TABLES}
    staging.dispose()
