"""OneFile <-> PICSWeb daily sync: wiring only. Every rule lives in ``include/picsweb_sync``."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, conf, dag, get_current_context, task

DOC_MD = """
# OneFile ↔ PICSWeb sync

Keeps learners' qualifications and progress reviews in step between **PICSWeb** (the MIS)
and **OneFile** (the e-portfolio), by the rules of PICSWeb's OneFile integration.

| step | what it does | safe to rerun alone? |
|---|---|---|
| `start_run` | reads the PICSWeb *OneFile Settings* row; stops the run (green) when integration is off | yes |
| `extract_*` | one task per OneFile organisation: learners, assessors, learning aims, reviews → staging. Malformed rows become rejects with a reason | yes: replaces its own staging rows |
| `merge_qualifications` | rules 1–4 (elements, registration, certificate dates) → change sets | yes: replaces its change set |
| `load_qualifications` | writes the PICSWeb changes in one transaction, audited field by field | yes: a change is applied only where PICSWeb still holds the value the merge saw; anything else is a *conflict* for the next run |
| `push_learning_aims` | sends the values PICSWeb fills in to OneFile through the outbox | yes: only unsent rows go again |
| `merge_reviews` / `load_reviews` | rule 6: OneFile reviews update or create PICSWeb reviews (only with *Download Review Data* on) | yes |
| `plan_review_uploads` / `push_reviews` | rule 5: new PICSWeb reviews are created in OneFile exactly once (only with *Upload Review Data* on) | yes: a review created before a crash is found again, never created twice |
| `finish_run` | run record, `last_synchronised`, purge of old staging | yes |
| `record_failure` | runs only when a step failed: marks the run record failed | yes |

**Review window.** Scheduled and manual runs sync reviews scheduled from
`review_days_before` days before the data interval to `review_days_after` days after it.
A **backfill** (`airflow backfill create --dag-id onefile_picsweb_sync --from-date … --to-date …`)
syncs only the reviews scheduled inside each run's interval and skips the learner,
qualification and upload work (mode `auto`; force with the `mode` param).

**Where to look when something is off:** the tables `sync_run` (one row per run with
counts), `sync_reject` (rows set aside, with the reason), `sync_audit` (every field
changed, old and new) and `sync_outbox` (what was sent to OneFile, and its state).

Connections: `onefile_api` (http; host = base URL with `/api/v2.1`, password = customer
token), `picsweb_db` (mssql in production). Secrets live only in those connections.

Every task that calls OneFile runs in the pool `onefile_api` (1 slot), so the whole run
stays under OneFile's 300 calls a minute. Without that pool those tasks never start:
`airflow pools set onefile_api 1 "OneFile API rate limit"`.
"""


# Named explicitly: mapped tasks otherwise fall back to a fixed 300 s on the scheduler side,
# whatever [core] default_task_retry_delay says.
RETRY_DELAY = timedelta(seconds=conf.getint("core", "default_task_retry_delay", fallback=300))


# Every task that calls OneFile runs in this pool. With one slot they take turns, so the
# hook's client-side limiter (300 calls a minute) holds for the whole customer, not per
# task process. Create it once: `airflow pools set onefile_api 1 "OneFile API rate limit"`.
ONEFILE_POOL = "onefile_api"


def _ctx():
    from picsweb_sync.runtime import RunContext

    return RunContext.from_airflow(get_current_context())


@dag(
    dag_id="onefile_picsweb_sync",
    # A data-interval timetable, not a bare cron string (which in Airflow 3 gives empty
    # intervals): each run covers the UK day before it, which the review window and
    # backfills are measured from.
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="Europe/London"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-team",
        "retries": 2,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
    },
    tags=["onefile", "picsweb", "sync"],
    doc_md=DOC_MD,
    params={
        "onefile_conn_id": Param(
            "onefile_api", type="string", description="OneFile API connection"
        ),
        "picsweb_conn_id": Param("picsweb_db", type="string", description="PICSWeb database"),
        "staging_conn_id": Param(
            "picsweb_db", type="string", description="database of the sync's own tables"
        ),
        "review_days_before": Param(30, type="integer", minimum=0),
        "review_days_after": Param(30, type="integer", minimum=0),
        "mode": Param("auto", enum=["auto", "full", "reviews_only"]),
        "retention_days": Param(30, type="integer", minimum=1),
    },
)
def onefile_picsweb_sync():
    @task.short_circuit
    def start_run() -> dict:
        """Settings, project tables, run record; False (skip all) when integration is off."""
        from picsweb_sync import report

        return report.start_run(_ctx())

    @task
    def organisations(started: dict) -> list[int]:
        return started["organisation_ids"]

    @task(map_index_template="{{ organisation_id }}", pool=ONEFILE_POOL)
    def extract_learners(organisation_id: int) -> dict:
        from picsweb_sync import extract

        return extract.extract_learners(_ctx(), organisation_id)

    @task(map_index_template="{{ organisation_id }}", pool=ONEFILE_POOL)
    def extract_assessors(organisation_id: int) -> dict:
        from picsweb_sync import extract

        return extract.extract_assessors(_ctx(), organisation_id)

    @task(map_index_template="{{ organisation_id }}", pool=ONEFILE_POOL)
    def extract_learning_aims(organisation_id: int) -> dict:
        from picsweb_sync import extract

        return extract.extract_learning_aims(_ctx(), organisation_id)

    @task(map_index_template="{{ organisation_id }}", pool=ONEFILE_POOL)
    def extract_reviews(organisation_id: int) -> dict:
        from picsweb_sync import extract

        return extract.extract_reviews(_ctx(), organisation_id)

    @task(trigger_rule="none_failed")
    def merge_qualifications() -> dict:
        from picsweb_sync.merge import stage

        return stage.merge_qualifications(_ctx())

    @task(trigger_rule="none_failed")
    def load_qualifications() -> dict:
        from picsweb_sync import load

        return load.load_qualifications(_ctx())

    @task(trigger_rule="none_failed", pool=ONEFILE_POOL)
    def push_learning_aims() -> dict:
        from picsweb_sync import push

        return push.push_learning_aims(_ctx())

    @task(trigger_rule="none_failed")
    def merge_reviews() -> dict:
        from picsweb_sync.merge import stage

        return stage.merge_reviews(_ctx())

    @task(trigger_rule="none_failed")
    def load_reviews() -> dict:
        from picsweb_sync import load

        return load.load_reviews(_ctx())

    @task(trigger_rule="none_failed")
    def plan_review_uploads() -> dict:
        from picsweb_sync.merge import stage

        return stage.plan_review_uploads(_ctx())

    @task(trigger_rule="none_failed", pool=ONEFILE_POOL)
    def push_reviews() -> dict:
        from picsweb_sync import push

        return push.push_reviews(_ctx())

    @task(trigger_rule="none_failed")
    def finish_run() -> dict:
        from picsweb_sync import report

        return report.finish_run(_ctx())

    @task(trigger_rule="one_failed")
    def record_failure() -> None:
        """Runs only when a step failed: marks the run record failed for the data team."""
        from picsweb_sync import report

        report.record_failure(_ctx())

    started = start_run()
    orgs = organisations(started)
    learners = extract_learners.expand(organisation_id=orgs)
    assessors = extract_assessors.expand(organisation_id=orgs)
    aims = extract_learning_aims.expand(organisation_id=orgs)
    reviews = extract_reviews.expand(organisation_id=orgs)

    merged_quals = merge_qualifications()
    loaded_quals = load_qualifications()
    pushed_aims = push_learning_aims()
    [learners, aims] >> merged_quals >> loaded_quals >> pushed_aims

    merged_reviews = merge_reviews()
    loaded_reviews = load_reviews()
    planned = plan_review_uploads()
    pushed_reviews = push_reviews()
    [learners, assessors, reviews] >> merged_reviews >> loaded_reviews >> planned >> pushed_reviews
    loaded_quals >> merged_reviews  # reviews see the qualification run's links and counts

    [pushed_aims, pushed_reviews] >> finish_run()
    [pushed_aims, pushed_reviews] >> record_failure()


onefile_picsweb_sync()
