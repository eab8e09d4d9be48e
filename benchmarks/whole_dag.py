"""The whole DAG at provider scale, timed as Airflow times it, beside the database's own floor.

``.venv/bin/python -m benchmarks.whole_dag [--sizes 2000,10000] [--limit 300/60]`` (``make
bench-dag``): for each size (learners in all, about 2 learning aims and 5 reviews each) it
generates a OneFile customer and the matching PICSWeb (``onefile_simulator``), puts PICSWeb
(and the sync's staging tables) on a throwaway PostgreSQL server on loopback, serves OneFile
from the simulator on 127.0.0.1 (its limit lifted unless ``--limit``), and runs the real DAG
with ``dag.test()``, every task in this process. Then, on the same server in the same run:

- **per task**: seconds as Airflow recorded them (the task instance's start and end), rows
  the task handled (its counts in ``sync_run_count``), the seconds its statements spent in
  the database (every psycopg2 cursor's executes and COPYs on that database, through
  SQLAlchemy or not) and in OneFile's HTTP calls
  (``requests``), and its peak memory: the process's RSS sampled every 20 ms by a thread,
  highest while the task ran, and that peak over the RSS when it began (``Δ``);
- **the floor**: the database work each task stands for, done the databases' own bulk way
  (``COPY`` of the same rows out of the tables it reads and into clones of the tables it
  writes, ``UPDATE … FROM`` a ``COPY``-filled temporary table for the same field changes,
  ``COPY`` into ``review`` for the same new reviews), inside a transaction rolled back after;
  beside it the **row-at-a-time baseline** of the same writes (one ``INSERT`` or ``UPDATE``
  per row); each task's time over its floor;
- **a second run** with 1 % of the OneFile rows changed (learning aims' elements done,
  reviews that took place), its seconds per task and their ratio to the first run's;
- **API accounting**: calls OneFile received against the minimum for the same data (the
  extracts' pages at the page size, plus the writes), and, with ``--limit``, the time of the
  tasks that call OneFile against ``calls ÷ limit``.

The table is printed and written as Markdown to ``benchmarks/results/whole_dag-<UTC>.md``
with the machine's facts. ``--profile merge_reviews,load_reviews`` runs those tasks of the
first run under cProfile and adds their top lines.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import math
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Airflow reads its configuration when first imported: a throwaway home of the benchmark's
# own (``dag.test()`` clears earlier runs of the same logical date, so sharing the demo's
# home with someone running ``make demo`` would break both), the project's DAG and plugin
# folders, and task logs at WARNING (the terminal shows the benchmark, not every INFO line).
AIRFLOW_HOME = tempfile.mkdtemp(prefix="whole-dag-airflow-")
os.environ.update(
    {
        "AIRFLOW_HOME": AIRFLOW_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)

import psutil  # noqa: E402
import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from benchmarks import run_page  # noqa: E402
from onefile_simulator import OneFileSimulator, generate_dataset  # noqa: E402
from picsweb_sync.storage import picsweb_tables as pw  # noqa: E402
from picsweb_sync.storage.sqlframes import value_kind  # noqa: E402
from sync_demo.dag_runs import connection_env, environment, run_dag  # noqa: E402
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows  # noqa: E402

LIFTED = 10**9
REVIEWS_PER_LEARNER = 5
AIMS_PER_LEARNER = 2
SAMPLE_SECONDS = 0.02
# Tasks that call OneFile (the one-slot pool's): their time is the API's, not the database's.
API_TASKS = ("extract_learners", "extract_assessors", "extract_learning_aims", "extract_reviews")
PUSH_TASKS = ("push_learning_aims", "push_reviews")
# The generated data sets rows aside on purpose (every case the rules meet): at scale that
# crosses the default thresholds, which would only fail the run's last task.
THRESHOLDS_OFF = {
    "max_rejects": None,
    "max_reject_share": None,
    "max_conflicts": None,
    "max_conflict_share": None,
}


# ----- probes: database time, HTTP time, memory -------------------------------------------
@dataclass
class Probes:
    """What happened when, in wall-clock seconds, to be split by task windows afterwards."""

    database: str  # the PICSWeb/staging database's name: statements on it are counted
    base_url: str  # OneFile's: calls to it are counted
    sql: list[tuple[float, float]] = field(default_factory=list)
    http: list[tuple[float, float]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original_connect = psycopg2.connect

        def connect(*args, **kwargs):
            kwargs.setdefault("cursor_factory", _TimedCursor)
            return original_connect(*args, **kwargs)

        original = requests.Session.request
        base = self.base_url

        def request(session, method, url, *args, **kwargs):
            started = time.time()
            try:
                return original(session, method, url, *args, **kwargs)
            finally:
                if str(url).startswith(base):
                    self.http.append((started, time.time() - started))

        def sample() -> None:
            process = psutil.Process()
            while not self._stop.wait(SAMPLE_SECONDS):
                self.rss.append((time.time(), process.memory_info().rss))

        _TimedCursor.probes = self
        psycopg2.connect = connect
        requests.Session.request = request
        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        try:
            yield
        finally:
            self._stop.set()
            sampler.join()
            requests.Session.request = original
            psycopg2.connect = original_connect
            _TimedCursor.probes = None

    def within(self, start: float, end: float) -> dict[str, float]:
        sql = sum(s for t, s in self.sql if start <= t < end)
        http = sum(s for t, s in self.http if start <= t < end)
        calls = sum(1 for t, _ in self.http if start <= t < end)
        inside = [rss for t, rss in self.rss if start <= t <= end]
        before = [rss for t, rss in self.rss if t <= start]
        base = before[-1] if before else (inside[0] if inside else 0)
        peak = max(inside, default=base)
        return {"sql": sql, "http": http, "calls": calls, "peak": peak, "delta": peak - base}


class _TimedCursor(psycopg2.extensions.cursor):
    """Every psycopg2 cursor of the run (``psycopg2.connect`` is wrapped while the probes are
    installed): the time of each statement, ``COPY`` and batch on the measured database,
    whether it came through SQLAlchemy or the DBAPI connection underneath."""

    probes: Probes | None = None

    def _timed(self, call, *args, **kwargs):
        started = time.time()
        try:
            return call(*args, **kwargs)
        finally:
            probes = _TimedCursor.probes
            if probes is not None and self.connection.info.dbname == probes.database:
                probes.sql.append((started, time.time() - started))

    def execute(self, query, vars=None):  # noqa: A002 (psycopg2's name)
        return self._timed(super().execute, query, vars)

    def executemany(self, query, vars_list):
        return self._timed(super().executemany, query, vars_list)

    def copy_expert(self, sql, file, size=8192):
        return self._timed(super().copy_expert, sql, file, size)

    def copy_from(self, *args, **kwargs):
        return self._timed(super().copy_from, *args, **kwargs)

    def copy_to(self, *args, **kwargs):
        return self._timed(super().copy_to, *args, **kwargs)


# ----- one run of the DAG -----------------------------------------------------------------
@dataclass
class TaskTime:
    task: str
    instances: int
    seconds: float
    start: float
    end: float
    state: str
    windows: list[tuple[float, float]]


def task_times(run_id: str) -> list[TaskTime]:
    """Each task of the run as Airflow recorded it (mapped instances summed), in start order."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.scalars(sa.select(TaskInstance).where(TaskInstance.run_id == run_id)).all()
        rows = [
            (ti.task_id, ti.start_date, ti.end_date, str(getattr(ti.state, "value", ti.state)))
            for ti in tis
        ]
    grouped: dict[str, list] = defaultdict(list)
    for task, start, end, state in rows:
        grouped[task].append((start, end, state))
    times = []
    for task, spans in grouped.items():
        ran = [(s.timestamp(), e.timestamp()) for s, e, _ in spans if s is not None and e]
        if not ran:
            continue
        states = {state for _, _, state in spans}
        times.append(
            TaskTime(
                task=task,
                instances=len(spans),
                seconds=sum(e - s for s, e in ran),
                start=min(s for s, _ in ran),
                end=max(e for _, e in ran),
                state="/".join(sorted(states)),
                windows=ran,
            )
        )
    return sorted(times, key=lambda t: t.start)


def run_counts(engine: sa.Engine, run_id: str) -> dict[str, dict[str, int]]:
    """``sync_run_count`` of the run: stage -> {count name: value}."""
    from picsweb_sync.storage.project_tables import sync_run_count as c

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.c.stage, c.c.name, c.c.value).where(c.c.run_id == run_id)
        ).all()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for stage, name, value in rows:
        counts[stage][name] = int(value)
    return counts


def rows_handled(task: str, counts: dict[str, dict[str, int]]) -> int | None:
    """The rows a task worked on, from its own counts: rows extracted (staged or set
    aside); for a merge, the rows it merged; for a load, the changes it tried and the reviews
    it inserted; for a push, the outbox rows it dealt with; for the upload plan, its reviews."""

    def summed(stage: str, *names: str) -> int:
        return sum(
            value
            for name_stage, values in counts.items()
            if name_stage == stage or name_stage.startswith(stage + "[")
            for name, value in values.items()
            if name in names
        )

    if task.startswith("extract_"):
        return summed(task, "staged", "rejected")
    if task == "merge_qualifications":
        return summed("extract_learning_aims", "staged")
    if task == "merge_reviews":
        return summed("extract_reviews", "staged")
    if task.startswith("load_"):
        return summed(task, "fields_changed", "already_equal", "conflicts", "reviews_inserted")
    if task.startswith("push_"):
        return summed(task, "recovered", "sent", "skipped", "rejected", "failed")
    if task == "plan_review_uploads":
        return summed(task, "uploads", "rejects")
    return None


@dataclass
class RunResult:
    run_id: str
    state: str
    wall: float
    tasks: list[TaskTime]
    counts: dict[str, dict[str, int]]
    probes: dict[str, dict[str, float]]  # task -> probe sums
    calls: list[Any]  # the simulator's call log for this run
    api_minimum: int
    api_pages_needed: int
    writes: int
    profiles: dict[str, str]


def profiled_stages(names: set[str], out: dict[str, str]):
    """``runtime.run_stage`` wrapped so the named tasks run under cProfile."""
    from picsweb_sync.run import runtime

    original = runtime.run_stage

    def run_stage(stage: str, context, **arguments):
        task = context["ti"].task_id
        if task not in names:
            return original(stage, context, **arguments)
        profile = cProfile.Profile()
        try:
            return profile.runcall(original, stage, context, **arguments)
        finally:
            text = io.StringIO()
            stats = pstats.Stats(profile, stream=text).strip_dirs().sort_stats("cumulative")
            stats.print_stats(30)
            out[task] = text.getvalue()
            RESULTS.mkdir(exist_ok=True)
            profile.dump_stats(RESULTS / f"{task}.prof")

    return run_stage, original


def one_run(
    sim: OneFileSimulator,
    engine: sa.Engine,
    env: dict[str, str],
    when: dt.datetime,
    database: str,
    page_size: int,
    profile: set[str],
) -> RunResult:
    from picsweb_sync.run import runtime

    sim.reset_calls()
    reviews_before = len(sim.data.reviews)
    probes = Probes(database=database, base_url=sim.base_url)
    profiles: dict[str, str] = {}
    wrapped, original = profiled_stages(profile, profiles)
    runtime.run_stage = wrapped
    try:
        with environment(env), probes.installed():
            started = time.time()
            dag_run = run_dag(logical_date=when, conf=THRESHOLDS_OFF)
            wall = time.time() - started
    finally:
        runtime.run_stage = original
    tasks = task_times(dag_run.run_id)
    per_task = {}
    for t in tasks:
        sums = [probes.within(s, e) for s, e in t.windows]
        per_task[t.task] = {
            "sql": sum(x["sql"] for x in sums),
            "http": sum(x["http"] for x in sums),
            "calls": sum(x["calls"] for x in sums),
            "peak": max(x["peak"] for x in sums),
            "delta": max(x["delta"] for x in sums),
        }
    calls = list(sim.calls)
    pages, writes = api_minimum(sim, calls, tasks, page_size, reviews_before)
    return RunResult(
        run_id=dag_run.run_id,
        state=str(dag_run.state),
        wall=wall,
        tasks=tasks,
        counts=run_counts(engine, dag_run.run_id),
        probes=per_task,
        calls=calls,
        api_minimum=pages + writes + 1,  # + one session token
        api_pages_needed=pages,
        writes=writes,
        profiles=profiles,
    )


def api_minimum(sim, calls, tasks, page_size: int, reviews_before: int) -> tuple[int, int]:
    """The fewest calls the same data needs: for every search the extracts made, its rows ÷
    the page size (+1: the last page is a short one), as the data stood when extracted; and
    every write OneFile accepted."""
    extract_windows = [w for t in tasks if t.task.startswith("extract_") for w in t.windows]
    mono_to_wall = time.time() - time.monotonic()
    searches = set()
    for call in calls:
        at = call.at + mono_to_wall
        if "/Search/" in call.path and any(s - 1 <= at <= e + 1 for s, e in extract_windows):
            entity = call.path.split("/")[1]
            searches.add((entity, json.dumps(call.body, sort_keys=True)))
    created = sim.data.reviews[reviews_before:]
    sim.data.reviews = sim.data.reviews[:reviews_before]  # as the extracts saw them
    try:
        pages = sum(len(sim._filter(e, json.loads(b))) // page_size + 1 for e, b in searches)
    finally:
        sim.data.reviews = sim.data.reviews + created
    writes = sum(
        1
        for call in calls
        if call.method == "POST"
        and call.status is not None
        and call.status < 300
        and (call.path in ("/Visit", "/Review") or call.path.startswith("/LearningAim/"))
        and "/Search/" not in call.path
    )
    return pages, writes


# ----- the floor: the same database work, the database's own bulk way ---------------------
@dataclass
class FloorWork:
    reads: list[str] = field(default_factory=list)  # SELECTs of what the task reads
    copies: list[tuple[str, str]] = field(default_factory=list)  # (table, SELECT of its rows)
    updates: str | None = None  # SELECT of the change set rows it applies


def floor_work(task: str, run_id: str) -> FloorWork | None:
    """What each database task reads and writes in this run, as SQL over what it left."""
    r = run_id.replace("'", "''")
    run = f"run_id = '{r}'"
    stage = {
        "extract_learners": "learner",
        "extract_assessors": "assessor",
        "extract_learning_aims": "learning_aim",
        "extract_reviews": "review",
    }
    if task in stage:
        return FloorWork(
            copies=[
                (
                    f"sync_stage_{stage[task]}",
                    f"SELECT * FROM sync_stage_{stage[task]} WHERE {run}",
                ),
                ("sync_reject", f"SELECT * FROM sync_reject WHERE {run} AND stage = '{task}'"),
            ]
        )
    change = "SELECT * FROM sync_cs_picsweb_update WHERE {run} AND merge_name = '{name}'"
    if task == "merge_qualifications":
        return FloorWork(
            reads=[
                f"SELECT * FROM sync_stage_learner WHERE {run}",
                f"SELECT * FROM sync_stage_learning_aim WHERE {run}",
                "SELECT * FROM trainee",
                "SELECT * FROM trainee_qualification",
                "SELECT * FROM trainee_qualification_unit",
            ],
            copies=[
                ("sync_cs_picsweb_update", change.format(run=run, name="qualifications")),
                ("sync_cs_onefile_update", f"SELECT * FROM sync_cs_onefile_update WHERE {run}"),
            ],
        )
    if task == "merge_reviews":
        return FloorWork(
            reads=[
                f"SELECT * FROM sync_stage_review WHERE {run}",
                f"SELECT * FROM sync_stage_assessor WHERE {run}",
                "SELECT * FROM trainee",
                "SELECT * FROM officer",
                "SELECT * FROM review WHERE onefile_system_id IS NOT NULL",
            ],
            copies=[
                ("sync_cs_picsweb_update", change.format(run=run, name="reviews")),
                ("sync_cs_review_insert", f"SELECT * FROM sync_cs_review_insert WHERE {run}"),
            ],
        )
    if task == "plan_review_uploads":
        return FloorWork(
            reads=[
                "SELECT * FROM review WHERE onefile_system_id IS NULL",
                "SELECT * FROM trainee",
                "SELECT * FROM officer",
                f"SELECT * FROM sync_stage_learner WHERE {run}",
            ],
            copies=[("sync_cs_review_upload", f"SELECT * FROM sync_cs_review_upload WHERE {run}")],
        )
    if task in ("load_qualifications", "load_reviews"):
        name = "qualifications" if task == "load_qualifications" else "reviews"
        entity = "trainee_qualification" if name == "qualifications" else "review"
        copies = [
            (
                "sync_audit",
                f"SELECT * FROM sync_audit WHERE {run} AND system = 'picsweb' "
                f"AND entity = '{entity}'",
            )
        ]
        if name == "reviews":  # the new reviews, into a review table of the same shape
            columns = ", ".join(c.name for c in pw.review.c if c.name != "review_id")
            copies.append(("review", f"SELECT {columns} FROM sync_cs_review_insert WHERE {run}"))
        return FloorWork(
            reads=[change.format(run=run, name=name)],
            updates=change.format(run=run, name=name),
            copies=copies,
        )
    return None


@dataclass
class Floor:
    seconds: float  # the bulk way
    rows_seconds: float  # one statement per row
    rows: int  # rows read, written or changed


def _copy_out(cursor, select: str) -> tuple[io.StringIO, int]:
    buffer = io.StringIO()
    cursor.copy_expert(f"COPY ({select}) TO STDOUT", buffer)
    buffer.seek(0)
    return buffer, buffer.getvalue().count("\n")


def measure_floor(engine: sa.Engine, work: FloorWork, clone_no: Iterator[int]) -> Floor:
    """Time ``work`` both ways in one transaction, rolled back (PICSWeb stays as the run left
    it). Writes go to empty clones of the tables (``LIKE … INCLUDING ALL``: the same columns,
    defaults, identity and indexes); field changes go to the real PICSWeb rows."""
    raw = engine.raw_connection()
    seconds = rows_seconds = 0.0
    rows = 0
    try:
        cursor = raw.cursor()
        for select in work.reads:
            started = time.perf_counter()
            _, n = _copy_out(cursor, select)
            seconds += time.perf_counter() - started
            started = time.perf_counter()
            cursor.execute(select)
            cursor.fetchall()
            rows_seconds += time.perf_counter() - started
            rows += n
        for table, select in work.copies:
            buffer, n = _copy_out(cursor, select)
            cursor.execute(select)
            values = cursor.fetchall()
            columns = [d.name for d in cursor.description]
            bulk, single = f"floor_{next(clone_no)}", f"floor_{next(clone_no)}"
            for clone in (bulk, single):
                cursor.execute(f"CREATE TEMP TABLE {clone} (LIKE {table} INCLUDING ALL)")
            started = time.perf_counter()
            cursor.copy_expert(f"COPY {bulk} ({', '.join(columns)}) FROM STDIN", buffer)
            seconds += time.perf_counter() - started
            insert = (
                f"INSERT INTO {single} ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})"
            )
            started = time.perf_counter()
            for row in values:
                cursor.execute(insert, row)
            rows_seconds += time.perf_counter() - started
            rows += n
        if work.updates:
            bulk, single, n = _floor_updates(cursor, work.updates, clone_no)
            seconds += bulk
            rows_seconds += single
            rows += n
    finally:
        raw.rollback()
        raw.close()
    return Floor(seconds, rows_seconds, rows)


def _floor_updates(cursor, select: str, clone_no: Iterator[int]) -> tuple[float, float, int]:
    """The change set's field changes: COPY into a temporary table and one ``UPDATE … FROM``
    per (table, field); against one ``UPDATE … WHERE key`` per change. Both in savepoints
    rolled back, so each starts from the same rows."""
    kinds = {
        (t.name, c.name): (value_kind(c.type), pw.primary_key(t).name)
        for t in pw.metadata.tables.values()
        for c in t.c
    }
    cursor.execute(
        select.replace("SELECT *", "SELECT table_name, field, count(*)") + " GROUP BY 1, 2"
    )
    groups = cursor.fetchall()
    work = f"floor_{next(clone_no)}"
    cursor.execute(
        f"CREATE TEMP TABLE {work} AS SELECT table_name, field, entity_key, new_int, new_text, "
        f"new_date, new_time, new_datetime FROM ({select}) s WITH NO DATA"
    )
    buffer, n = _copy_out(
        cursor,
        select.replace(
            "SELECT *",
            "SELECT table_name, field, entity_key, new_int, new_text, new_date, new_time, "
            "new_datetime",
        ),
    )
    cursor.execute(select)
    changes = cursor.fetchall()
    names = [d.name for d in cursor.description]
    cursor.execute("SAVEPOINT floor_updates")
    started = time.perf_counter()
    cursor.copy_expert(f"COPY {work} FROM STDIN", buffer)
    for table, column, _ in groups:
        kind, key = kinds[table, column]
        cursor.execute(
            f"UPDATE {table} t SET {column} = w.new_{kind} FROM {work} w "
            f"WHERE t.{key} = w.entity_key AND w.table_name = %s AND w.field = %s",
            (table, column),
        )
    bulk = time.perf_counter() - started
    cursor.execute("ROLLBACK TO SAVEPOINT floor_updates")
    at = {name: i for i, name in enumerate(names)}
    started = time.perf_counter()
    for change in changes:
        table, column = change[at["table_name"]], change[at["field"]]
        kind, key = kinds[table, column]
        cursor.execute(
            f"UPDATE {table} SET {column} = %s WHERE {key} = %s",
            (change[at[f"new_{kind}"]], change[at["entity_key"]]),
        )
    single = time.perf_counter() - started
    cursor.execute("ROLLBACK TO SAVEPOINT floor_updates")
    return bulk, single, n


# ----- the second run: 1 % of the OneFile rows changed -----------------------------------
def change_one_percent(sim: OneFileSimulator, share: float, seed: int) -> dict[str, int]:
    """Change ``share`` of the learning aims (elements done) and of the reviews (one that
    had not started now took place, at its scheduled time): what the next run must bring."""
    rng = random.Random(seed)
    aims = [
        a
        for a in sim.data.learning_aims
        if isinstance(a.get("ElementsDone"), int) and isinstance(a.get("TotalElements"), int)
    ]
    changed_aims = rng.sample(aims, min(len(aims), math.ceil(share * len(sim.data.learning_aims))))
    for aim in changed_aims:
        done, total = aim["ElementsDone"], aim["TotalElements"]
        aim["ElementsDone"] = done + 1 if done < total else max(0, done - 1)
    waiting = [r for r in sim.data.reviews if r.get("StartedOn") is None and r.get("ScheduledFor")]
    changed_reviews = rng.sample(
        waiting, min(len(waiting), math.ceil(share * len(sim.data.reviews)))
    )
    for review in changed_reviews:
        review["StartedOn"] = review["ScheduledFor"]
    sim._search_cache.clear()
    return {"learning_aims": len(changed_aims), "reviews": len(changed_reviews)}


# ----- one size -----------------------------------------------------------------------------
@dataclass
class SizeResult:
    learners: int
    organisations: int
    aims: int
    reviews: int
    generate_s: float
    first: RunResult
    second: RunResult | None
    floors: dict[str, Floor]
    changed: dict[str, int]
    page: run_page.RunPage | None = None


def bench_size(args, server, learners: int) -> SizeResult:
    organisations = args.organisations or max(2, min(25, learners // 400))
    per_org = math.ceil(learners / organisations)
    print(f"-- {organisations} x {per_org} learners: generating", file=sys.stderr, flush=True)
    started = time.perf_counter()
    data = generate_dataset(
        seed=args.seed,
        organisations=organisations,
        learners=per_org,
        aims_per_learner=AIMS_PER_LEARNER,
        reviews_per_learner=REVIEWS_PER_LEARNER,
    )
    database = f"whole_dag_{learners}"
    url = server.create_database(database)
    engine = sa.create_engine(url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, data.picsweb)
    generate_s = time.perf_counter() - started
    calls, period = args.limit
    extra = {"calls_per_minute": calls, "rate_period_seconds": period, "page_size": args.page_size}
    when = dt.datetime.combine(data.today, dt.time(2, 0), tzinfo=dt.UTC)
    with OneFileSimulator(data.onefile, rate_limit=(calls, period)) as sim:
        env = connection_env(sim.base_url, sim.customer_token, url, extra)
        print(f"-- {learners}: first run", file=sys.stderr, flush=True)
        first = one_run(sim, engine, env, when, database, args.page_size, args.profile)
        print(f"   {first.state} in {first.wall:.1f} s; floors", file=sys.stderr, flush=True)
        floors: dict[str, Floor] = {}
        clone_no = iter(range(10**6))
        for t in first.tasks:
            work = floor_work(t.task, first.run_id)
            if work is not None:
                floors[t.task] = measure_floor(engine, work, clone_no)
        print(f"-- {learners}: the run page", file=sys.stderr, flush=True)
        page = run_page.measure(engine, first.run_id)
        second, changed = None, {}
        if args.second_run:
            changed = change_one_percent(sim, args.changed, args.seed)
            print(f"-- {learners}: second run, changed {changed}", file=sys.stderr, flush=True)
            second = one_run(
                sim, engine, env, when + dt.timedelta(hours=1), database, args.page_size, set()
            )
            print(f"   {second.state} in {second.wall:.1f} s", file=sys.stderr, flush=True)
    engine.dispose()
    return SizeResult(
        learners=organisations * per_org,
        organisations=organisations,
        aims=len(data.onefile.learning_aims),
        reviews=len(data.onefile.reviews),
        generate_s=generate_s,
        first=first,
        second=second,
        floors=floors,
        changed=changed,
        page=page,
    )


# ----- the report ---------------------------------------------------------------------------
def _mb(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def _s(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:,.{2 if value < 10 else 0}f}×"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def drift_line(name: str, run: RunResult) -> str:
    """The run's drift report (``report_drift``'s counts): differences left by reason."""
    counts = run.counts.get("report_drift")
    if not counts:
        return f"- {name} run's drift report: none (report_drift did not run)."
    by_reason = {key.removeprefix("drift_"): n for key, n in counts.items()}
    shown = ", ".join(f"{reason} {n:,}" for reason, n in by_reason.items() if n)
    return (
        f"- {name} run's drift report: {sum(by_reason.values()):,} differences left, "
        f"**{by_reason.get('unexplained', 0)} unexplained**"
        + (f" ({shown})" if shown else "")
        + "."
    )


def size_report(result: SizeResult, limit: tuple[int, float]) -> str:
    first, second = result.first, result.second
    later = {t.task: t for t in second.tasks} if second else {}
    rows = []
    totals = defaultdict(float)
    for t in first.tasks:
        probe = first.probes[t.task]
        n = rows_handled(t.task, first.counts)
        floor = result.floors.get(t.task)
        again = later.get(t.task)
        rows.append(
            [
                f"`{t.task}`"
                + (f" ×{t.instances}" if t.instances > 1 else "")
                + ("" if t.state == "success" else f" ({t.state})"),
                _s(t.seconds),
                "" if n is None else f"{n:,}",
                "" if not n else f"{n / t.seconds:,.0f}",
                _s(probe["sql"]),
                _s(probe["http"]) if probe["calls"] else "",
                _mb(probe["peak"]),
                _mb(probe["delta"]),
                _s(floor.seconds, 3) if floor else "",
                _x(t.seconds / floor.seconds) if floor and floor.seconds else "",
                _x(probe["sql"] / floor.seconds) if floor and floor.seconds else "",
                _s(floor.rows_seconds) if floor else "",
                _s(again.seconds) if again else "",
                _x(again.seconds / t.seconds) if again and t.seconds else "",
            ]
        )
        if t.task not in PUSH_TASKS:
            totals["tasks"] += t.seconds
            totals["floor"] += floor.seconds if floor else 0.0
            totals["rows_floor"] += floor.rows_seconds if floor else 0.0
            if again:
                totals["again"] += again.seconds
        if floor:
            totals["db_sql"] += probe["sql"]
            totals["db_tasks"] += t.seconds
            if again:
                totals["db_again"] += again.seconds
    headers = [
        "task",
        "Airflow s",
        "rows",
        "rows/s",
        "SQL s",
        "HTTP s",
        "peak RSS MB",
        "Δ RSS MB",
        "floor s",
        "task ÷ floor",
        "SQL ÷ floor",
        "row-at-a-time s",
        "run 2 s",
        "run 2 ÷ run 1",
    ]
    calls = len(first.calls)
    refused = sum(1 for c in first.calls if c.status == 429)
    pushes = [t for t in first.tasks if t.task in PUSH_TASKS]
    push_s = sum(t.seconds for t in pushes)
    push_http = sum(first.probes[t.task]["http"] for t in pushes)
    push_writes = first.writes
    api_tasks = [t for t in first.tasks if t.task in API_TASKS or t.task in PUSH_TASKS]
    api_s = sum(t.seconds for t in api_tasks)
    calls_limit, period = limit
    lines = [
        f"### {result.learners:,} learners ({result.organisations} organisations), "
        f"{result.aims:,} learning aims, {result.reviews:,} reviews",
        "",
        f"First run {first.state}, {first.wall:.1f} s by the clock around `dag.test()`; "
        f"generating the data and loading PICSWeb took {result.generate_s:.1f} s."
        + (
            f" Second run ({result.changed.get('learning_aims', 0):,} learning aims and "
            f"{result.changed.get('reviews', 0):,} reviews changed in OneFile): {second.state}, "
            f"{second.wall:.1f} s."
            if second
            else ""
        ),
        "",
        table(headers, rows),
        "",
        f"- Every task but the pushes: **{totals['tasks']:.1f} s** as Airflow timed them, "
        f"against a floor of {totals['floor']:.2f} s: **{_x(totals['tasks'] / totals['floor'])}** "
        f"(row-at-a-time: {totals['rows_floor']:.1f} s, "
        f"{_x(totals['rows_floor'] / totals['floor'])})."
        if totals["floor"]
        else "",
        f"- The database tasks (extracts, merges, upload plan, loads): {totals['db_tasks']:.1f} s, of "
        f"which {totals['db_sql']:.1f} s in SQL statements: **{_x(totals['db_sql'] / totals['floor'])}** "
        "the floor."
        if totals["floor"]
        else "",
        (
            f"- Second run: the database tasks took {totals['db_again']:.1f} s, "
            f"**{_x(totals['db_again'] / totals['db_tasks'])}** the first run's; every task "
            f"but the pushes {totals['again']:.1f} s."
        )
        if second
        else "",
        f"- Pushes: {push_s:.1f} s for {push_writes:,} OneFile writes, {push_http:.1f} s of it in "
        f"HTTP calls: **{1000 * (push_s - push_http) / push_writes:.1f} ms** of the sync's own "
        "work per write"
        + (" (here with the waits for the call budget)." if calls_limit < LIFTED else ".")
        if push_writes
        else "",
        f"- OneFile calls: **{calls:,}** made against a minimum of {first.api_minimum:,} "
        f"({first.api_pages_needed:,} extract pages at the page size, "
        f"{first.writes:,} writes, 1 session): **{_x(calls / first.api_minimum)}**; "
        f"{refused} answered 429.",
        (
            f"- With the limit {calls_limit} calls / {period:g} s: the tasks that call OneFile "
            f"took {api_s:.1f} s against calls ÷ limit = {calls * period / calls_limit:.1f} s: "
            f"**{_x(api_s / (calls * period / calls_limit))}**."
        )
        if calls_limit < LIFTED
        else "",
        f"- Peak RSS of the process (simulator and data included): "
        f"{_mb(max(p['peak'] for p in first.probes.values()))} MB.",
        *(drift_line(name, run) for name, run in (("First", first), ("Second", second)) if run),
        *(run_page.report(result.page) if result.page else []),
    ]
    for task, text in first.profiles.items():
        lines += [
            "",
            f"cProfile of `{task}` (top lines, cumulative):",
            "",
            "```",
            text.strip(),
            "```",
        ]
    return "\n".join(line for line in lines if line is not None)


def machine_facts(server) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    engine = sa.create_engine(server.url())
    with engine.connect() as conn:
        pg = conn.execute(sa.text("SHOW server_version")).scalar_one()
    engine.dispose()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    import airflow
    import pandas

    return (
        f"{dt.datetime.now(dt.UTC):%a %d %b %Y %H:%M} UTC, commit {commit}"
        f"{' with uncommitted changes' if dirty else ''}; {os.cpu_count()} cores ({cpu}), "
        f"load average {os.getloadavg()[0]:.1f} at the start; Python {platform.python_version()}, "
        f"Airflow {airflow.__version__}, pandas {pandas.__version__}, PostgreSQL {pg} on "
        "loopback (fsync, synchronous_commit and full_page_writes off)"
    )


def parse_limit(text: str) -> tuple[int, float]:
    """``300/60`` -> (300, 60.0); ``lifted`` -> no real limit."""
    if text == "lifted":
        return LIFTED, 60.0
    calls, _, seconds = text.partition("/")
    return int(calls), float(seconds or 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="2000,10000", help="learners in all, e.g. 2000,10000,50000"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 learners only")
    parser.add_argument("--organisations", type=int, help="default: learners ÷ 400, 2 to 25")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument(
        "--limit",
        type=parse_limit,
        default="lifted",
        help="OneFile's limit on both sides, CALLS/SECONDS (e.g. 300/60), or lifted",
    )
    parser.add_argument("--changed", type=float, default=0.01, help="share changed for run 2")
    parser.add_argument("--no-second-run", dest="second_run", action="store_false")
    parser.add_argument(
        "--profile", default="", help="tasks of the first run to profile, e.g. load_reviews"
    )
    args = parser.parse_args(argv)
    sizes = [2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    args.profile = {p for p in args.profile.split(",") if p}
    migrated = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        capture_output=True,
        text=True,
    )
    if migrated.returncode:
        raise SystemExit(f"airflow db migrate failed:\n{migrated.stderr[-2000:]}")

    from tests.support.postgres import postgres_server

    results = []
    started = time.perf_counter()
    with postgres_server() as server:
        facts = machine_facts(server)
        for learners in sizes:
            results.append(bench_size(args, server, learners))
    calls, period = args.limit
    limit_text = "lifted on both sides" if calls >= LIFTED else f"{calls} calls / {period:g} s"
    report = "\n\n".join(
        [
            "## Whole DAG (`benchmarks/whole_dag.py`)",
            f"{facts}. OneFile's limit {limit_text}; page size {args.page_size}; task logs at "
            "WARNING. Command: `.venv/bin/python -m benchmarks.whole_dag "
            + " ".join(sys.argv[1:] if argv is None else argv)
            + "`",
            "Columns: *Airflow s* from the task instances' start and end (mapped instances "
            "summed); *rows* the task's own counts; *SQL s* time inside psycopg2 cursors' "
            "executes and COPYs on the PICSWeb/staging database; *HTTP s* time inside OneFile calls; *peak RSS* the "
            f"process's RSS sampled every {SAMPLE_SECONDS * 1000:.0f} ms while the task ran, "
            "*Δ RSS* that peak over the RSS at the task's start; *floor* the same reads and "
            "writes by COPY and UPDATE … FROM (see the script), *row-at-a-time* the same "
            "writes one statement per row.",
            *(size_report(r, args.limit) for r in results),
        ]
    )
    if len(results) > 1:
        db = [sum(t.seconds for t in r.first.tasks if t.task not in PUSH_TASKS) for r in results]
        growth = ", ".join(
            f"{b.learners:,}: {db[i + 1] / db[i]:.2f}× for {b.learners / a.learners:.0f}× the "
            "learners"
            for i, (a, b) in enumerate(zip(results, results[1:], strict=False))
        )
        report += f"\n\nGrowth of every task but the pushes: {growth}."
    print(report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"whole_dag-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.md"
    out.write_text(report + "\n")
    print(f"\n{time.perf_counter() - started:.0f} s; written to {out}", file=sys.stderr)
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
    return 0 if all(r.first.state.endswith("success") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
