"""OneFile <-> PICSWeb daily sync: wiring only. Every rule lives in ``include/picsweb_sync``."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, conf, dag, get_current_context, task

from picsweb_sync.run.alerts import SyncAlertNotifier

DOC_MD = """
# OneFile ↔ PICSWeb sync

Keeps learners' qualifications and progress reviews in step between **PICSWeb** (the MIS)
and **OneFile** (the e-portfolio), by the rules of PICSWeb's OneFile integration.
Runs daily at **02:00 UK time** (Europe/London; the schedule follows the clock change),
each run covering the UK day before it.

| step | what it does | what a rerun (clear) does |
|---|---|---|
| `preflight` | checks PICSWeb before anything else, read-only: every table and column the sync uses (type, length), the *OneFile Settings* row, the text collation, the permissions, the sync's own tables. Anything **blocking** fails the run here, without retries, naming each problem and what to do (its log, `sync_run.failure`); warnings are logged. `make preflight` runs the full check, OneFile included | checks again: clear it once the problem is fixed |
| `start_run` | reads the PICSWeb *OneFile Settings* row; stops the run (green) when integration is off | reads the settings again; the run's later tasks use what it read |
| `extract_*` | one task per OneFile organisation (labelled by its ID): learners, assessors, learning aims, reviews → staging. A value that does not parse or does not fit its PICSWeb column is a *reject* with its reason; the rest goes on | extracts afresh and replaces its own staging rows: the run's data is then as new as any |
| `merge_qualifications` | rules 1–4 (elements, registration, certificate dates) → change set | decides again from the run's staged rows and PICSWeb as it is now |
| `load_qualifications` | writes the PICSWeb changes in one transaction, audited field by field | applies a change only where PICSWeb still holds the value the merge saw (else a *conflict*, left for the next run) and the row was not last written from newer OneFile data (else a *refused* reject); **refuses, changing nothing, when a newer run already loaded OneFile data extracted later than its change set's** (clear from `extract_` *with downstream* to redo an old run) |
| `push_learning_aims` | fills OneFile's blanks from PICSWeb through the outbox | sends only unsent rows, each re-checked just before sending: a field OneFile no longer has blank, or PICSWeb no longer holds, is not sent |
| `merge_reviews` / `load_reviews` | rule 6: OneFile reviews update or create PICSWeb reviews (only with *Download Review Data* on) | as the qualification merge and load (refuses when newer data over the same review window was loaded) |
| `plan_review_uploads` / `push_reviews` | rule 5: new PICSWeb reviews are created in OneFile exactly once (only with *Upload Review Data* on) | plans again from PICSWeb now; each create is re-checked against the PICSWeb review just before sending (no longer eligible: not sent; rescheduled: sent with its new time). A create that may have reached OneFile before a crash is found and linked, never repeated |
| `report_drift` | what still differs between OneFile and PICSWeb, field by field, each difference with its reason (below); read-only, no OneFile call: OneFile's side is the run's staging | reports again from both systems as they are then, replacing the run's rows |
| `finish_run` | run record, `last_synchronised` (not in a dry run), purge of old staging, the run's summary and note | closes the run record again; the summary counts what the rerun tasks did, and the run keeps its first end time |
| `check_thresholds` | fails the run loudly when rejects, conflicts or unexplained differences crossed a threshold (below); the data is already synced | checks the stored summary again |
| `record_failure` | runs only when a step failed: marks the run failed with each failed task and its error | writes the same record again |

**Every write carries its basis.** A change set, a reflected review and each PICSWeb row
the sync writes remember which OneFile data they come from and when it was extracted; a
write is applied only if no write of newer OneFile data over the same rows was applied
since, whatever run, task or clear it comes from. A run's staging, change sets and basis
are purged together; a change set without a basis is never applied.

**Two branches.** Qualifications and reviews share only the extracts: a failure in one
never stops the other. **Runs side by side** (backfills, a scheduled run beside them)
take turns at writing: a writing task that waits says in its log for which run, and gives
up after `lock_wait_minutes`.

**Review window.** Scheduled and manual runs sync reviews scheduled from
`review_days_before` days before the data interval to `review_days_after` days after it.
A **backfill** syncs only the reviews scheduled inside each run's interval and skips the
learner, qualification and upload work (mode `auto`; force with the `mode` param). All of
March, one run at a time:
`airflow backfill create --dag-id onefile_picsweb_sync --from-date 2026-03-01 --to-date 2026-03-31T23:59 --reprocess-behavior completed --max-active-runs 1`

**Rerun one task of a day:** `airflow tasks clear onefile_picsweb_sync -t push_reviews -s 2026-03-20 -e 2026-03-20T23:59 -y`
(runs start at 02:00, so the range ends at the day's end; `-t` matches any part of a task
id: `-t extract_` clears every extract task).

**The run's summary** is the run's note in the grid (when the `airflow_api` connection
lets the sync set it; always in the log and XCom of `finish_run` and `check_thresholds`):
learners, aims, assessors and reviews extracted; fields changed and reviews created in
PICSWeb and in OneFile; rejects by kind; conflicts; outbox rows still pending; the
differences left by reason (the drift report); and a link
to the run's page on the sync page (`/onefile-sync/runs/<run id>`, under Airflow's `[api] base_url`).
The table `sync_run_summary` keeps it, one row per run.

**Thresholds** (Params; `null` turns one off): `max_rejects` (100 rows set aside),
`max_reject_share` (0.10: rejects of the rows extracted), `max_conflicts` (50),
`max_conflict_share` (0.10: conflicts of the PICSWeb changes the loads tried) and
`max_unexplained` (0: differences the drift report cannot explain). Crossing one
never stops the sync halfway: every load and push runs and `finish_run` records the run;
then `check_thresholds` fails (red, no retry), naming each threshold and the numbers
(e.g. `rejects 42 > max_rejects 40`), in the task log, in `sync_run.failure`, in
`sync_run_summary.thresholds_crossed` and in the run's note. The run's data *is* synced:
fix the rejected rows or the conflicting edits, and the next run picks them up.

**Drift report** (`report_drift`, every run but a dry run): after the loads and pushes,
what still differs between the two systems, and why: each difference gets one reason (a
reject, a conflict, not linked, units attached, the rule keeps PICSWeb's value, switched
off in the settings, outside the review window, changed since the run read it, pending in
the outbox); the rows are in `sync_drift` and on the sync page, the counts in the summary.
A difference no reason explains is **unexplained**: a defect of the sync, never a data
problem. It fails the run at `check_thresholds` (`max_unexplained`); open the run's drift
on the sync page and report each unexplained row (learner, field, both values) to the
sync's maintainers. The rest of the run's data is synced.

**Dry run** (Param `dry_run`): extracts and merges as usual, records the change sets and
the summary of what the run *would* change, and writes nothing to PICSWeb or OneFile
(`last_synchronised` stays too). The sync page (`/onefile-sync/`) shows what it would
change.

**Where to look when something is off:** the tables `sync_run` (one row per run; a
failed run names its failed tasks and their errors), `sync_run_count` (counts per task),
`sync_reject` (rows set aside, with the reason), `sync_audit` (every field changed, old
and new) and `sync_outbox` (what was sent to OneFile, and its state: `skipped` rows say
why they no longer applied).

Connections: `onefile_api` (http; host = base URL with `/api/v2.1`, password = customer
token; a token OneFile refuses fails the run at once, naming the connection),
`picsweb_db` (mssql in production). Secrets live only in those connections.

Every task that calls OneFile runs in the pool `onefile_api` (1 slot), so the whole run
stays under OneFile's 300 calls a minute. Without that pool those tasks never start:
`airflow pools set onefile_api 1 "OneFile API rate limit"`.
"""


# Every task has a finite execution_timeout: a hung call or a lock never released must end
# as a failure the team sees (and retries), not a run that blocks the next day's
# (max_active_runs=1). Sized from the benchmark (50,000 learners: the whole run took
# 1,274 s; 706 s of it extract/merge/load tasks, 548 s the pushes' 10,000 OneFile writes),
# then made generous, since a timeout is a failure someone must handle:
# - a writing task (loads, pushes) may first wait for another run's lock up to the
#   lock_wait_minutes Param (60 min): its timeout is that hour plus its own work;
#   raise these with that Param;
# - OneFile allows 300 calls a minute for the whole customer: 10,000 learning-aim updates
#   are at least 34 min of calls, 10,000 review creates (Visit + Review) 67 min, plus
#   the re-check reads. Waiting for the onefile_api pool slot is not running time.
# Outside Airflow's default: every task not named below gets DEFAULT_TIMEOUT.
DEFAULT_TIMEOUT = timedelta(minutes=30)  # start_run, organisations, record_failure, ...
EXTRACT_TIMEOUT = timedelta(hours=1)  # one organisation's pages (benchmark: minutes)
MERGE_TIMEOUT = timedelta(hours=1)  # pandas over the whole run (benchmark: minutes)
LOAD_TIMEOUT = timedelta(minutes=60 + 60)  # lock wait + one transaction of changes
PUSH_TIMEOUT = timedelta(minutes=60 + 180)  # lock wait + 20,000 calls at 300/min, twice over
FINISH_TIMEOUT = timedelta(hours=1)  # summary + purge of 30 days of staging
DRIFT_TIMEOUT = MERGE_TIMEOUT  # the merges' rules again over the run's staging, read-only


# Named explicitly: mapped tasks otherwise fall back to a fixed 300 s on the scheduler side,
# whatever [core] default_task_retry_delay says.
RETRY_DELAY = timedelta(seconds=conf.getint("core", "default_task_retry_delay", fallback=300))


# Every task that calls OneFile runs in this pool. With one slot they take turns, so the
# hook's client-side limiter (300 calls a minute) holds for the whole customer, not per
# task process. Create it once: `airflow pools set onefile_api 1 "OneFile API rate limit"`.
ONEFILE_POOL = "onefile_api"

# Mapped extracts are labelled by their organisation in the grid. Read from the task's own
# arguments, so Airflow can render it before the task runs: a running or failing try shows
# the organisation, not a bare map index.
ORGANISATION_LABEL = "{{ task.op_kwargs['organisation_id'] }}"


def _run(stage: str, **arguments):
    """Run ``picsweb_sync.<stage>`` for the current task (see ``runtime.run_stage``)."""
    from picsweb_sync.run.runtime import run_stage

    return run_stage(stage, get_current_context(), **arguments)


@dag(
    dag_id="onefile_picsweb_sync",
    description="OneFile ↔ PICSWeb: learners' qualifications and reviews, daily at 02:00 UK time",
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
        "execution_timeout": DEFAULT_TIMEOUT,
    },
    tags=["onefile", "picsweb", "sync"],
    # A failed run (a crossed threshold fails it too) mails the team through the
    # sync_alerts_smtp connection; without it, nothing. Runs in the dag-processor.
    on_failure_callback=SyncAlertNotifier(),
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
        "dry_run": Param(
            False,
            type="boolean",
            description="extract and merge, record what would change; write nothing to "
            "PICSWeb or OneFile",
        ),
        "lock_wait_minutes": Param(
            60,
            type="integer",
            minimum=1,
            description="how long a writing task waits for another run's lock before failing "
            "(the loads' and pushes' execution_timeout allows 60 minutes of waiting)",
        ),
        # Thresholds: check_thresholds fails the run when one is crossed (null: off).
        "max_rejects": Param(
            100,
            type=["null", "integer"],
            minimum=0,
            description="fail the run when more rows than this are set aside (rejects)",
        ),
        "max_reject_share": Param(
            0.10,
            type=["null", "number"],
            minimum=0,
            description="fail the run when rejects are more than this share of the rows "
            "extracted (0.10 = 10 %)",
        ),
        "max_conflicts": Param(
            50,
            type=["null", "integer"],
            minimum=0,
            description="fail the run when more PICSWeb changes than this met a conflict",
        ),
        "max_conflict_share": Param(
            0.10,
            type=["null", "number"],
            minimum=0,
            description="fail the run when conflicts are more than this share of the PICSWeb "
            "changes tried (0.10 = 10 %)",
        ),
        "max_unexplained": Param(
            0,
            type=["null", "integer"],
            minimum=0,
            description="fail the run when its drift report leaves more differences between "
            "OneFile and PICSWeb than this unexplained (each one a defect of the sync)",
        ),
    },
)
def onefile_picsweb_sync():
    @task
    def preflight() -> dict:
        """PICSWeb's tables, settings, collation and permissions, read-only; fails the run
        at once (no retry) when something blocks it (``picsweb_sync.preflight.dag_check``)."""
        return _run("preflight.dag_check.check_before_run")

    @task.short_circuit
    def start_run() -> dict:
        """Settings, project tables, run record; False (skip all) when integration is off."""
        return _run("stages.start_finish.start_run")

    @task
    def organisations(started: dict) -> list[int]:
        return started["organisation_ids"]

    @task(
        map_index_template=ORGANISATION_LABEL, pool=ONEFILE_POOL, execution_timeout=EXTRACT_TIMEOUT
    )
    def extract_learners(organisation_id: int) -> dict:
        return _run("stages.extract.extract_learners", organisation_id=organisation_id)

    @task(
        map_index_template=ORGANISATION_LABEL, pool=ONEFILE_POOL, execution_timeout=EXTRACT_TIMEOUT
    )
    def extract_assessors(organisation_id: int) -> dict:
        return _run("stages.extract.extract_assessors", organisation_id=organisation_id)

    @task(
        map_index_template=ORGANISATION_LABEL, pool=ONEFILE_POOL, execution_timeout=EXTRACT_TIMEOUT
    )
    def extract_learning_aims(organisation_id: int) -> dict:
        return _run("stages.extract.extract_learning_aims", organisation_id=organisation_id)

    @task(
        map_index_template=ORGANISATION_LABEL, pool=ONEFILE_POOL, execution_timeout=EXTRACT_TIMEOUT
    )
    def extract_reviews(organisation_id: int) -> dict:
        return _run("stages.extract.extract_reviews", organisation_id=organisation_id)

    @task(trigger_rule="none_failed", execution_timeout=MERGE_TIMEOUT)
    def merge_qualifications() -> dict:
        return _run("stages.merge.merge_qualifications")

    @task(trigger_rule="none_failed", execution_timeout=LOAD_TIMEOUT)
    def load_qualifications() -> dict:
        return _run("stages.load.load_qualifications")

    @task(trigger_rule="none_failed", pool=ONEFILE_POOL, execution_timeout=PUSH_TIMEOUT)
    def push_learning_aims() -> dict:
        return _run("stages.push.aims.push_learning_aims")

    @task(trigger_rule="none_failed", execution_timeout=MERGE_TIMEOUT)
    def merge_reviews() -> dict:
        return _run("stages.merge.merge_reviews")

    @task(trigger_rule="none_failed", execution_timeout=LOAD_TIMEOUT)
    def load_reviews() -> dict:
        return _run("stages.load.load_reviews")

    @task(trigger_rule="none_failed", execution_timeout=MERGE_TIMEOUT)
    def plan_review_uploads() -> dict:
        return _run("stages.merge.plan_review_uploads")

    @task(trigger_rule="none_failed", pool=ONEFILE_POOL, execution_timeout=PUSH_TIMEOUT)
    def push_reviews() -> dict:
        return _run("stages.push.reviews.push_reviews")

    @task(trigger_rule="none_failed", execution_timeout=DRIFT_TIMEOUT)
    def report_drift() -> dict:
        """What still differs between OneFile and PICSWeb, and why: read-only, no OneFile
        call (skipped in a dry run); runs when a branch was skipped, not after a failure."""
        return _run("stages.drift.report_drift")

    @task(trigger_rule="none_failed", execution_timeout=FINISH_TIMEOUT)
    def finish_run() -> dict:
        return _run("stages.start_finish.finish_run")

    @task(trigger_rule="none_failed")
    def check_thresholds() -> dict:
        """Fails the run (no retry) when rejects, conflicts or unexplained differences
        crossed a threshold Param."""
        return _run("stages.start_finish.check_thresholds")

    @task(trigger_rule="one_failed")
    def record_failure() -> str:
        """Runs only when a step failed: marks the run record failed, saying why."""
        from picsweb_sync.run.runtime import failed_tasks

        return _run(
            "stages.start_finish.record_failure", failed_tasks=failed_tasks(get_current_context())
        )

    started = start_run()
    preflight() >> started
    orgs = organisations(started)
    learners = extract_learners.expand(organisation_id=orgs)
    assessors = extract_assessors.expand(organisation_id=orgs)
    aims = extract_learning_aims.expand(organisation_id=orgs)
    reviews = extract_reviews.expand(organisation_id=orgs)

    # Two branches that share only the extracts: a failure in one never stops the other.
    merged_quals = merge_qualifications()
    loaded_quals = load_qualifications()
    pushed_aims = push_learning_aims()
    [learners, aims] >> merged_quals >> loaded_quals >> pushed_aims

    merged_reviews = merge_reviews()
    loaded_reviews = load_reviews()
    planned = plan_review_uploads()
    pushed_reviews = push_reviews()
    [assessors, reviews] >> merged_reviews >> loaded_reviews >> planned >> pushed_reviews
    learners >> planned  # the upload plan needs each learner's organisation

    # Everything safe is done before the thresholds can fail the run. The drift report reads
    # what the loads and pushes left, and finish_run's summary counts it.
    drifted = report_drift()
    [pushed_aims, pushed_reviews] >> drifted >> finish_run() >> check_thresholds()
    [pushed_aims, pushed_reviews, drifted] >> record_failure()


onefile_picsweb_sync()
