"""A small world for the property test of tests/e2e/test_properties.py: one OneFile
organisation served by the simulator, its PICSWeb on the tests' PostgreSQL server, and the
DAG's stage functions called in the DAG's order, task by task, with each run's own
``RunContext`` (as a scheduler gives a task of that run, and as a cleared task gets it again).

Beside the world, a ledger kept by the test alone (it never reads the sync's own basis
tables): a counter of OneFile *versions*, bumped on every change to OneFile (by a user or by
a push), when each OneFile row last changed, which version each run's extracts read and
which version each merge's change set came from. Every PICSWeb write the sync audits is
attributed to the stage call that made it, and so to the OneFile data it came from.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowSkipException

from onefile_simulator import Dataset, OneFileSimulator
from onefile_simulator.data import format_instant
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import drift as drift_stage
from picsweb_sync.stages import extract, load, push
from picsweb_sync.stages import merge as merge_stage
from picsweb_sync.stages import start_finish as report
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.engines import engine_for_connection
from picsweb_sync.storage.sqlframes import read_frame
from sync_demo.dag_runs import environment, logical_date_for

HOOK_EXTRA = {
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "timeout_seconds": 5,
    "calls_per_minute": 100_000,  # a world makes a few hundred calls in seconds
}

# The DAG's tasks in the order a scheduler may run them (dags/onefile_picsweb_sync.py):
# every task after the extracts has trigger rule none_failed, so it runs when an upstream
# task was skipped. ``check_thresholds`` and ``preflight`` change nothing and are left out;
# ``report_drift`` writes only the run's drift rows (read by the invariant of no
# unexplained difference after a run).
EXTRACTS = ("extract_learners", "extract_assessors", "extract_learning_aims", "extract_reviews")
TASKS = (
    *EXTRACTS,
    "merge_qualifications",
    "load_qualifications",
    "push_learning_aims",
    "merge_reviews",
    "load_reviews",
    "plan_review_uploads",
    "push_reviews",
    "report_drift",
    "finish_run",
)
_DOWNSTREAM_EDGES = {
    "extract_learners": ("merge_qualifications", "plan_review_uploads"),
    "extract_learning_aims": ("merge_qualifications",),
    "extract_assessors": ("merge_reviews",),
    "extract_reviews": ("merge_reviews",),
    "merge_qualifications": ("load_qualifications",),
    "load_qualifications": ("push_learning_aims",),
    "push_learning_aims": ("report_drift",),
    "merge_reviews": ("load_reviews",),
    "load_reviews": ("plan_review_uploads",),
    "plan_review_uploads": ("push_reviews",),
    "push_reviews": ("report_drift",),
    "report_drift": ("finish_run",),
    "finish_run": (),
}


def downstream(task: str) -> set[str]:
    """``task`` and every task after it in the DAG (``airflow tasks clear -d``)."""
    found, todo = {task}, [task]
    while todo:
        for after in _DOWNSTREAM_EDGES[todo.pop()]:
            if after not in found:
                found.add(after)
                todo.append(after)
    return found


STAGES: dict[str, Callable[..., Any]] = {
    "extract_learners": extract.extract_learners,
    "extract_assessors": extract.extract_assessors,
    "extract_learning_aims": extract.extract_learning_aims,
    "extract_reviews": extract.extract_reviews,
    "merge_qualifications": merge_stage.merge_qualifications,
    "load_qualifications": load.load_qualifications,
    "push_learning_aims": push.push_learning_aims,
    "merge_reviews": merge_stage.merge_reviews,
    "load_reviews": load.load_reviews,
    "plan_review_uploads": merge_stage.plan_review_uploads,
    "push_reviews": push.push_reviews,
    "report_drift": drift_stage.report_drift,
    "finish_run": report.finish_run,
}
ENTITY_OF = {
    "extract_learners": "learners",
    "extract_assessors": "assessors",
    "extract_learning_aims": "learning_aims",
    "extract_reviews": "reviews",
}
# PICSWeb fields the sync writes, per table: what the final comparison looks at.
QUAL_FIELDS = (
    "onefile_learning_aim_id",
    "total_elements",
    "elements_done",
    "registration_number",
    "registration_date",
    "certificate_applied_date",
    "certificate_received_date",
)
REVIEW_FIELDS = (
    "trainee_id",
    "review_type",
    "scheduled_date",
    "start_time",
    "end_time",
    "officer_id",
    "attended",
    "actual_date",
    "trainee_signed_date",
)


class StaleWrite(AssertionError):
    """An audited PICSWeb write of OneFile data older than what an earlier write of the
    same row came from."""


@dataclass
class Run:
    """One DAG run: its context, and (ledger) the OneFile version each of its staged
    entities was extracted at and each of its change sets was merged from."""

    ctx: RunContext
    kind: str  # daily, backfill, dry, final
    staged: dict[str, int | None] = field(default_factory=dict)
    change_set: dict[str, int | None] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.ctx.run_id


@dataclass
class Write:
    """An audited PICSWeb write, attributed: the stage call that made it and the OneFile
    version of the data it wrote (``content``: when its OneFile row last changed, as of the
    snapshot the write came from)."""

    step: int
    run_id: str
    task: str
    table: str
    key: int
    field: str
    old: Any
    new: Any
    source: tuple[str, int]
    snapshot: int
    content: int

    def describe(self) -> str:
        return (
            f"step {self.step}: {self.task} of {self.run_id} wrote {self.table} {self.key} "
            f"{self.field} {self.old!r} -> {self.new!r} from OneFile {self.source[0]} "
            f"{self.source[1]} as of version {self.snapshot} (its data of version {self.content})"
        )


class World:
    """One side (the disturbed world, or its undisturbed twin): a fresh PICSWeb database
    copied from ``template``, a simulator serving a copy of the dataset, and the ledger."""

    def __init__(self, name: str, pg_server: Any, template: str, dataset: Dataset, tag: str):
        self.name = name
        self.pg_server = pg_server
        self.database = f"{tag}_{name}"
        self.url = pg_server.create_database(self.database, template=template)
        self.dataset = dataset
        self.sim = OneFileSimulator(copy.deepcopy(dataset.onefile), rate_limit=(100_000, 60.0))
        self.sim.start()
        self.onefile_conn = f"onefile_{name}"
        self.picsweb_conn = f"picsweb_{name}"
        onefile = {
            "conn_type": "http",
            "host": self.sim.base_url,
            "password": self.sim.customer_token,
            "extra": HOOK_EXTRA,
        }
        parsed = sa.engine.make_url(self.url)
        picsweb = {
            "conn_type": "postgres",
            "host": parsed.host,
            "port": parsed.port,
            "login": parsed.username,
            "schema": parsed.database,
        }
        self.env = {
            f"AIRFLOW_CONN_{self.onefile_conn.upper()}": json.dumps(onefile),
            f"AIRFLOW_CONN_{self.picsweb_conn.upper()}": json.dumps(picsweb),
        }
        self.engine = sa.create_engine(self.url)
        self.runs: list[Run] = []
        self.day = -1  # days after the dataset's today of the newest daily run's UK day
        self.counter = 0  # to keep run ids apart
        # ----- ledger
        self.version = 0
        self.changed: dict[tuple[str, int], list[int]] = {}  # OneFile row -> versions
        self.original_reviews = {r["ID"] for r in dataset.onefile.reviews}
        self.seen_reviews = set(self.original_reviews)
        self.onefile_state = self._onefile_state()
        self.audit_seen = 0
        self.row_content: dict[tuple[str, int], Write] = {}  # PICSWeb row -> last write
        self.writes: list[Write] = []
        self.step = 0
        self.check = True

    # ----- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self.sim.stop()
        self.engine.dispose()
        with environment(self.env):
            engine_for_connection(self.picsweb_conn).dispose()
        self.pg_server.drop_database(self.database)

    # ----- runs -----------------------------------------------------------------------------
    def context(
        self, run_id: str, run_type: str, day: int, params: dict[str, Any] | None = None
    ) -> RunContext:
        """The context of a run covering the UK day ``day`` days after the dataset's today
        (logical date 02:00 UK the day after, as the DAG's timetable gives it)."""
        end = logical_date_for(self.dataset.today + dt.timedelta(days=day + 1))
        start = logical_date_for(self.dataset.today + dt.timedelta(days=day))
        return RunContext(
            run_id=run_id,
            run_type=run_type,
            interval_start=start.astimezone(dt.UTC),
            interval_end=end.astimezone(dt.UTC),
            onefile_conn_id=self.onefile_conn,
            picsweb_conn_id=self.picsweb_conn,
            staging_conn_id=self.picsweb_conn,
            params={"dry_run": False, **(params or {})},
            task_label="property test",
            try_number=1,
        )

    def new_run(self, kind: str, day: int, params: dict[str, Any] | None = None) -> Run:
        self.counter += 1
        run_type = {"daily": "scheduled", "final": "scheduled", "backfill": "backfill"}
        ctx = self.context(
            f"{kind}__{self.dataset.today + dt.timedelta(days=day)}_{self.counter}",
            run_type.get(kind, "manual"),
            day,
            params,
        )
        run = Run(ctx, kind)
        with environment(self.env):
            started = report.start_run(ctx)
        assert started, "integration is on in the generated settings"
        run.ctx = dataclasses.replace(ctx, settings_snapshot=started["settings"])
        self.runs.append(run)
        self.tasks(run, TASKS)
        self.assert_no_unexplained(run)
        return run

    def assert_no_unexplained(self, run: Run) -> None:
        """After a run that went through (every task ran or was skipped), its drift report
        explains every difference it left: edits and clears around it may leave conflicts or
        changes since, never an unexplained difference (a defect of the sync)."""
        drift = pt.sync_drift.c
        with self.engine.connect() as conn:
            left = conn.execute(
                sa.select(drift.entity, drift.picsweb_key, drift.field, drift.detail).where(
                    drift.run_id == run.run_id, drift.reason == "unexplained"
                )
            ).all()
        assert not left, f"{run.run_id} left unexplained differences: {left}"

    def daily(self) -> Run:
        self.day += 1
        return self.new_run("daily", self.day)

    def tasks(self, run: Run, tasks: set[str] | tuple[str, ...]) -> None:
        """Run ``tasks`` of ``run`` in the DAG's order, as a scheduler does after a clear."""
        for task in TASKS:
            if task in tasks:
                self.task(run, task)

    def task(self, run: Run, task: str) -> Any:
        result = None
        with environment(self.env):
            try:
                if task in EXTRACTS:
                    result = [
                        STAGES[task](run.ctx, organisation_id)
                        for organisation_id in run.ctx.settings.organisation_ids
                    ]
                else:
                    result = STAGES[task](run.ctx)
            except AirflowSkipException:  # skipped, as Airflow marks it; downstream runs
                result = None
        self._after(run, task, result)
        return result

    # ----- ledger -----------------------------------------------------------------------------
    def _onefile_state(self) -> dict[tuple[str, int], str]:
        rows = {("aim", a["ID"]): a for a in self.sim.data.learning_aims}
        rows.update({("review", r["ID"]): r for r in self.sim.data.reviews})
        return {key: json.dumps(row, sort_keys=True, default=str) for key, row in rows.items()}

    def onefile_changed(self) -> None:
        """A new OneFile version when anything in OneFile changed since the last look (a
        user's edit, a push's update or create): each changed row remembers it."""
        state = self._onefile_state()
        changed = [key for key, text in state.items() if self.onefile_state.get(key) != text]
        self.onefile_state = state
        if changed:
            self.version += 1
            for key in changed:
                self.changed.setdefault(key, []).append(self.version)

    def content(self, source: tuple[str, int], snapshot: int) -> int:
        """The version of ``source``'s data in OneFile's state of version ``snapshot``."""
        return max((v for v in self.changed.get(source, ()) if v <= snapshot), default=0)

    def _after(self, run: Run, task: str, result: Any) -> None:
        if task in EXTRACTS and result is not None:
            staged = sum(r["staged"] for r in result)
            run.staged[ENTITY_OF[task]] = self.version if staged else None
        if task == "merge_qualifications" and not _skipped(result):
            run.change_set["qualifications"] = run.staged.get("learning_aims")
        if task == "merge_reviews" and not _skipped(result):
            run.change_set["reviews"] = run.staged.get("reviews")
        if task == "finish_run":
            self.forget_purged()
        self.onefile_changed()
        self.attribute(run, task)

    def purged(self, run: Run) -> None:
        run.staged, run.change_set = {}, {}

    def attribute(self, run: Run, task: str) -> None:
        """Each PICSWeb write audited since the last look, attributed to this stage call and
        to the OneFile data it came from; raises :class:`StaleWrite` when it came from older
        OneFile data than the last sync write of the same PICSWeb row."""
        audit = pt.sync_audit
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(sa.func.max(audit.c.audit_id))).scalar_one() or 0
            if last == self.audit_seen or not self.check:
                self.audit_seen = last
                return
            rows = read_frame(
                conn,
                sa.select(audit)
                .where(
                    audit.c.audit_id > self.audit_seen,
                    audit.c.audit_id <= last,
                    audit.c.system == "picsweb",
                )
                .order_by(audit.c.audit_id),
            )
            quals = read_frame(conn, sa.select(pw.trainee_qualification))
            reviews = read_frame(conn, sa.select(pw.review))
        self.audit_seen = last
        if rows.empty:
            return
        aim_of = dict(zip(quals["tq_id"], quals["onefile_learning_aim_id"], strict=True))
        onefile_of = dict(zip(reviews["review_id"], reviews["onefile_system_id"], strict=True))
        for row in rows.itertuples(index=False):
            assert row.run_id == run.run_id, f"{task} of {run.run_id} audited {row}"
            key = int(row.entity_key)
            if row.entity == "trainee_qualification":
                assert task == "load_qualifications", f"{task} wrote {row}"
                source = ("aim", int(aim_of[key]))
                snapshot = run.change_set.get("qualifications")
            elif row.entity == "review" and task == "load_reviews":
                source = ("review", int(onefile_of[key]))
                snapshot = run.change_set.get("reviews")
            elif row.entity == "review" and task == "push_reviews":
                # A create's link, or rule 6 reflected from the review as created: the
                # OneFile data of the moment the create was made.
                source = ("review", int(onefile_of[key]))
                snapshot = self.changed[source][0]
            else:
                raise AssertionError(f"{task} of {run.run_id} wrote {row}")
            assert snapshot is not None, f"{task} of {run.run_id} wrote {row} from no merge"
            write = Write(
                self.step,
                run.run_id,
                task,
                row.entity,
                key,
                row.field,
                row.old_value,
                row.new_value,
                source,
                snapshot,
                self.content(source, snapshot),
            )
            self.writes.append(write)
            before = self.row_content.get((row.entity, key))
            if before is not None and write.content < before.content:
                raise StaleWrite(
                    "a PICSWeb write of older OneFile data than the row already held:\n"
                    f"  earlier: {before.describe()}\n  now:     {write.describe()}\n"
                    f"  (changes of {source}: {self.changed.get(source)})\n"
                    + self.basis_note(row.entity, key)
                )
            self.row_content[(row.entity, key)] = write

    def basis_note(self, table: str, key: int) -> str:
        """What the sync's own tables say (for the failure message only)."""
        with self.engine.connect() as conn:
            held = conn.execute(
                sa.select(pt.sync_row_basis).where(
                    pt.sync_row_basis.c.table_name == table,
                    pt.sync_row_basis.c.entity_key == key,
                )
            ).all()
            bases = conn.execute(sa.select(pt.sync_change_basis)).all()
            marks = conn.execute(sa.select(pt.sync_load_mark)).all()
        return f"  sync_row_basis: {held}\n  sync_change_basis: {bases}\n  sync_load_mark: {marks}"

    # ----- edits by users -------------------------------------------------------------------
    def edit_onefile(self, kind: str, pick: int, value: int) -> None:
        data = self.sim.data
        if kind.startswith("aim"):
            aim = sorted(data.learning_aims, key=lambda a: a["ID"])[pick % len(data.learning_aims)]
            if kind == "aim_elements":
                total = aim.get("TotalElements") or 10
                aim["ElementsDone"] = value % (total + 1)
            elif kind == "aim_registration":
                aim["RegistrationNumber"] = (None, "", f"OF-{value}")[value % 3]
            else:  # aim_date
                name = ("RegistrationDate", "CertificateAppliedDate", "CertificateReceivedDate")[
                    value % 3
                ]
                day = dt.date(2025, 1, 1) + dt.timedelta(days=value)
                aim[name] = None if value % 4 == 0 else f"{day.isoformat()}T00:00:00Z"
        else:
            targets = self.onefile_reviews()
            review = targets[pick % len(targets)]
            scheduled = _instant(review["ScheduledFor"])
            if kind == "review_started":
                review["StartedOn"] = format_instant(scheduled + dt.timedelta(minutes=value % 50))
            elif kind == "review_rescheduled":
                shift = dt.timedelta(days=(value % 5) - 2, hours=value % 3)
                review["ScheduledFor"] = format_instant(scheduled + shift, millis=False)
            else:  # review_signed
                review["LearnerSignedOn"] = format_instant(scheduled + dt.timedelta(hours=1))
        self.onefile_changed()

    def onefile_reviews(self) -> list[dict]:
        """OneFile's reviews in an order both worlds share: the generated ones by ID, then
        those the sync created, by the PICSWeb review each was created for."""
        reviews = self.picsweb(pw.review, "review_id").dropna(subset=["onefile_system_id"])
        created_for = {
            int(o): int(r)
            for o, r in zip(reviews["onefile_system_id"], reviews["review_id"], strict=True)
            if int(o) not in self.original_reviews
        }
        data = self.sim.data.reviews
        return sorted(
            (r for r in data if r["ID"] in self.original_reviews), key=lambda r: r["ID"]
        ) + sorted((r for r in data if r["ID"] in created_for), key=lambda r: created_for[r["ID"]])

    def edit_picsweb(self, kind: str, pick: int, value: int) -> None:
        with self.engine.begin() as conn:
            if kind.startswith("qual"):
                tq = pw.trainee_qualification
                ids = sorted(q["tq_id"] for q in self.dataset.picsweb["trainee_qualification"])
                where = tq.c.tq_id == ids[pick % len(ids)]
                if kind == "qual_registration":
                    change = {"registration_number": (None, "", f"PW-{value}")[value % 3]}
                elif kind == "qual_elements":
                    change = {"elements_done": value % 12}
                else:  # qual_date
                    name = (
                        "registration_date",
                        "certificate_applied_date",
                        "certificate_received_date",
                    )[value % 3]
                    day = dt.date(2025, 2, 1) + dt.timedelta(days=value)
                    change = {name: None if value % 4 == 0 else day}
                conn.execute(sa.update(tq).where(where).values(change))
            else:
                review = pw.review
                ids = sorted(r["review_id"] for r in self.dataset.picsweb["review"])
                where = review.c.review_id == ids[pick % len(ids)]
                if kind == "review_attended":
                    attended = (None, "Y", "N", "U")[value % 4]
                    actual = self.dataset.today if attended == "Y" else None
                    change = {"attended": attended, "actual_date": actual}
                else:  # review_moved
                    days = (value % 5) - 2
                    current = conn.execute(sa.select(review.c.scheduled_date).where(where))
                    change = {"scheduled_date": current.scalar_one() + dt.timedelta(days=days)}
                conn.execute(sa.update(review).where(where).values(change))

    # ----- retention --------------------------------------------------------------------------
    def age(self, run: Run, days: int = 40) -> None:
        """Make every per-run row of ``run`` ``days`` older (past the 30-day retention)."""
        with self.engine.begin() as conn:
            for table in pt.PURGED_TABLES:
                conn.execute(
                    sa.update(table)
                    .where(table.c.run_id == run.run_id)
                    .values(created_at=table.c.created_at - dt.timedelta(days=days))
                )

    def purge(self) -> dict[str, int]:
        """The retention purge, 30 days, as ``finish_run`` makes it."""
        with self.engine.begin() as conn:
            deleted = pt.purge(conn, older_than_days=30)
        self.forget_purged()
        return deleted

    def forget_purged(self) -> None:
        """A run none of whose per-run rows is left was purged: its staging and change sets
        are gone (the ledger forgets them; a later write from them is then a failure)."""
        present: set[str] = set()
        with self.engine.connect() as conn:
            for table in pt.PURGED_TABLES:
                present.update(conn.execute(sa.select(table.c.run_id).distinct()).scalars())
        for run in self.runs:
            if run.run_id not in present:
                self.purged(run)

    # ----- state ------------------------------------------------------------------------------
    def picsweb(self, table: sa.Table, order_by: str):
        with self.engine.connect() as conn:
            return read_frame(conn, sa.select(table).order_by(table.c[order_by]))


def _skipped(result: Any) -> bool:
    return result is None


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
