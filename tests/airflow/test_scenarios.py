"""A data team's day on the production shape (CeleryExecutor, two workers), through the
REST API, with PICSWeb and the OneFile simulator checked after each step:

- a run triggered with a Param overridden uses it, and both workers run its tasks;
- a task process killed with SIGKILL mid-way (and, separately, its supervisor with it, as
  when a worker's process dies) is retried, and the run ends as an undisturbed run does;
- single tasks of a finished run (an extract, a load, a push) cleared one at a time each
  rerun green and change nothing in either system;
- a wrong customer token fails the run at once, naming the connection and the HTTP status,
  and no token is in any file under the Airflow home.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import threading
import time as clock
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from tests.airflow.conftest import _SUMMARY as SUMMARY
from tests.airflow.conftest import FAST_HOOK
from tests.airflow.world import DAILY_RUN_CONF, AirflowWorld, at_0200_london

pytestmark = pytest.mark.airflow_server

# Days no other test of this folder runs (the documented backfill makes runs for all of
# March, which Airflow keeps: one run per logical date).
KILLED_RUN_DAY = date(2026, 4, 1)
BAD_TOKEN_DAY = date(2026, 4, 2)
# A review a data team member adds in PICSWeb before the killed run: that run uploads it.
NEW_REVIEW_DAY, NEW_REVIEW_TIME = date(2026, 4, 8), time(11, 15)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _tries(world: AirflowWorld, run_id: str) -> dict[tuple[str, int], int]:
    return {(t["task_id"], t["map_index"]): t["try_number"] for t in world.tis(run_id)}


def _organisations(world: AirflowWorld, run_id: str) -> list[int]:
    return world.airflow.xcom(world.dag_id, run_id, "start_run")["organisation_ids"]


def _diff(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> list[tuple]:
    """(table, key, column, old, new) for each value changed; added rows as (table, key,
    None, None, row)."""
    changes = []
    for table, rows in after.items():
        key = next(iter(rows[0])) if rows else None
        old = {r[key]: r for r in before[table]}
        for row in rows:
            if row[key] not in old:
                changes.append((table, row[key], None, None, row))
                continue
            for column, value in row.items():
                if old[row[key]][column] != value:
                    changes.append((table, row[key], column, old[row[key]][column], value))
        gone = set(old) - {r[key] for r in rows}
        changes += [(table, k, None, old[k], None) for k in sorted(gone)]
    return changes


# --------------------------------------------------------------------------------------
# a. a run triggered with a Param overridden, on both workers
# --------------------------------------------------------------------------------------
def test_a_run_triggered_with_a_param_override_uses_it_on_both_workers(
    airflow_world, finished_daily_run
):
    world, airflow = airflow_world, airflow_world.airflow
    run = airflow.dag_run(world.dag_id, finished_daily_run)
    assert run["conf"] == DAILY_RUN_CONF
    plan = world.finished_start[finished_daily_run]["plan"]
    days_before = DAILY_RUN_CONF["review_days_before"]
    assert _instant(plan["review_from"]) == _instant(run["data_interval_start"]) - timedelta(
        days=days_before
    )
    assert _instant(plan["review_to"]) == _instant(run["data_interval_end"]) + timedelta(days=30)

    tis = world.finished_tis[finished_daily_run]  # as they were when the run finished
    by_worker: dict[str, list[str]] = {}
    for ti in tis:
        if ti["state"] == "success":
            by_worker.setdefault(ti["hostname"], []).append(ti["task_id"])
    assert set(by_worker) == set(airflow.worker_names), by_worker
    assert {ti["executor"] or "CeleryExecutor" for ti in tis} == {"CeleryExecutor"}
    # The run synced: every review in both systems once, every link to a real review.
    world.assert_consistent()


# --------------------------------------------------------------------------------------
# d. kill -9 of a running task
# --------------------------------------------------------------------------------------
@dataclass
class _Hold:
    """OneFile calls matching ``matches`` wait (in the simulator) until released."""

    name: str
    matches: Callable[[str, str, Any], bool]
    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def _holding(sim, holds: list[_Hold], longest: float = 90) -> Iterator[None]:
    """Every call a hold matches waits until that hold is released (at most ``longest``
    seconds): the task making it stays running, mid-way, for as long as a test needs.
    The client times out and calls again meanwhile; those calls wait too."""
    original = sim._route

    def route(method, path, headers, body):
        for hold in holds:
            if not hold.released.is_set() and hold.matches(method, path, body):
                hold.entered.set()
                hold.released.wait(longest)
        return original(method, path, headers, body)

    sim._route = route
    try:
        yield
    finally:
        for hold in holds:
            hold.released.set()
        del sim._route  # the class's method again


def _search_of(entity: str, organisation_id: int, **filters) -> Callable[[str, str, Any], bool]:
    def matches(method: str, path: str, body: Any) -> bool:
        return (
            method == "POST"
            and path.startswith(f"/{entity}/Search/")
            and isinstance(body, dict)
            and body.get("OrganisationID") == organisation_id
            and all(body.get(k) == v for k, v in filters.items())
        )

    return matches


def _worker_of(airflow, pid: int) -> str:
    """The name of the test's Celery worker whose process tree holds ``pid``; fails for a
    process the test did not start (it must never signal anything else)."""
    ancestors = {p.pid for p in psutil.Process(pid).parents()}
    for name in airflow.worker_names:
        if airflow.procs[name].pid in ancestors:
            return name
    raise AssertionError(f"pid {pid} is no task process of this test's workers")


def _running_ti(world: AirflowWorld, run_id: str, task_id: str, map_index: int) -> dict:
    found: dict = {}

    def running() -> bool:
        found.update(world.airflow.task_instance(world.dag_id, run_id, task_id, map_index))
        return found["state"] == "running" and bool(found["pid"])

    world.airflow.wait_until(running, 60, f"{task_id}[{map_index}] of {run_id} running")
    return found


@dataclass
class KilledRun:
    run_id: str
    kills: dict[tuple[str, int], dict]  # what was killed, per task instance
    before: dict[str, list[dict]]  # PICSWeb before the run
    after: dict[str, list[dict]]  # PICSWeb after it
    writes: list  # OneFile writes the run made
    edits: dict[str, Any]  # what was changed in both systems before the run


def _edit_both_systems(world: AirflowWorld) -> dict[str, Any]:
    """Work for the next run, in both directions: in OneFile a linked review takes place
    and a linked aim's element count grows; in PICSWeb a review is added that must be
    created in OneFile (for a trainee whose reviews were uploaded before)."""
    sim = world.sim
    with world.picsweb.connect() as conn:
        linked = dict(
            conn.execute(
                sa.select(pw.review.c.onefile_system_id, pw.review.c.review_id).where(
                    pw.review.c.onefile_system_id.is_not(None)
                )
            ).all()
        )
        # Rule 1 (OneFile's element counts) holds for qualifications without units.
        tq = pw.trainee_qualification.c
        aims = {
            aim_id: (tq_id, total)
            for aim_id, tq_id, total in conn.execute(
                sa.select(tq.onefile_learning_aim_id, tq.tq_id, tq.total_elements).where(
                    tq.onefile_learning_aim_id.is_not(None),
                    tq.tq_id.not_in(sa.select(pw.trainee_qualification_unit.c.tq_id)),
                )
            )
        }
        uploaded = conn.execute(
            sa.select(pt.sync_outbox.c.target_id)
            .where(pt.sync_outbox.c.kind == pt.REVIEW_CREATE, pt.sync_outbox.c.state == "sent")
            .order_by(pt.sync_outbox.c.target_id)
            .limit(1)
        ).scalar_one()
        template = conn.execute(sa.select(pw.review).where(pw.review.c.review_id == uploaded))
        template = dict(template.mappings().one())
    window = (at_0200_london(KILLED_RUN_DAY) - timedelta(days=25), at_0200_london(KILLED_RUN_DAY))
    review = next(
        r
        for r in sim.data.reviews
        if r["ID"] in linked
        and r.get("StartedOn") is None
        and window[0] <= _instant(r["ScheduledFor"]) <= window[1]
    )
    review["StartedOn"] = review["ScheduledFor"]
    aim = next(
        a
        for a in sim.data.learning_aims
        if a["ID"] in aims and a.get("TotalElements") and a["TotalElements"] == aims[a["ID"]][1]
    )
    aim["TotalElements"] += 5
    new_review_id = world.add_review_to_upload(template, NEW_REVIEW_DAY, NEW_REVIEW_TIME)
    with world.picsweb.connect() as conn:
        new_learner = conn.execute(
            sa.select(pw.trainee.c.onefile_learner_id).where(
                pw.trainee.c.trainee_id == template["trainee_id"]
            )
        ).scalar_one()
    organisation_of = {u["ID"]: u.get("OrganisationID") for u in sim.data.users}
    return {
        "started_review": (review["ID"], linked[review["ID"]]),
        "grown_aim": (aim["ID"], aims[aim["ID"]][0], aim["TotalElements"]),
        "new_review_id": new_review_id,
        # The organisations whose extracts these changes go through.
        "started_review_organisation": organisation_of[review["LearnerID"]],
        "new_review_organisation": organisation_of[new_learner],
    }


@pytest.fixture(scope="module")
def killed_run(airflow_world, finished_daily_run) -> KilledRun:
    """A full run with work waiting in both systems, in which two extracts are killed
    while they wait for OneFile: one ``extract_learners`` by SIGKILL to its task process
    (its supervisor stays, and reports it), one ``extract_reviews`` by SIGKILL to its
    supervisor (the Celery worker's pool process) and task process together, as when the
    worker's process dies."""
    world, airflow = airflow_world, airflow_world.airflow
    airflow.wait_for_backfill_done(world.dag_id)
    airflow.set_paused(world.dag_id, False)
    edits = _edit_both_systems(world)
    before = world.picsweb_rows()
    mark = world.call_mark()
    # Each killed extract is one the edits' changes go through: the learners of the
    # organisation whose new review is uploaded (an upload needs its learner's
    # organisation), the reviews of the organisation whose review took place.
    learners_of = edits["new_review_organisation"]
    reviews_of = edits["started_review_organisation"]
    holds = {
        ("extract_learners", learners_of): _Hold("task", _search_of("User", learners_of, Role=1)),
        ("extract_reviews", reviews_of): _Hold("supervisor", _search_of("Review", reviews_of)),
    }
    kills: dict[tuple[str, int], dict] = {}  # by task instance: (task_id, map_index)
    with _holding(world.sim, list(holds.values())):
        run_id = world.trigger(at_0200_london(KILLED_RUN_DAY))
        deadline = clock.monotonic() + 180
        while not all(hold.released.is_set() for hold in holds.values()):
            waiting = [
                k for k, h in holds.items() if h.entered.is_set() and not h.released.is_set()
            ]
            if not waiting:
                airflow.check_alive()
                assert clock.monotonic() < deadline, (
                    f"no held extract started: {airflow.ti_summary(world.dag_id, run_id)}"
                )
                clock.sleep(0.2)
                continue
            key = waiting[0]
            task_id, organisation = key
            map_index = _organisations(world, run_id).index(organisation)
            ti = _running_ti(world, run_id, task_id, map_index)
            task = psutil.Process(ti["pid"])
            worker = _worker_of(airflow, task.pid)
            victims = [task]
            if holds[key].name == "supervisor":
                victims.insert(0, task.parent())
            killed = [(p.pid, " ".join(p.cmdline())[:60]) for p in victims]
            for victim in victims:
                os.kill(victim.pid, signal.SIGKILL)
            psutil.wait_procs(victims, timeout=10)
            kills[(task_id, map_index)] = {
                "try": ti["try_number"],
                "worker": worker,
                "hostname": ti["hostname"],
                "killed": killed,
            }
            holds[key].released.set()
        final = airflow.wait_for_run(world.dag_id, run_id, timeout=240)
    assert final["state"] == "success", airflow.ti_summary(world.dag_id, run_id)
    return KilledRun(
        run_id=run_id,
        kills=kills,
        before=before,
        after=world.picsweb_rows(),
        writes=world.onefile_writes(since=mark),
        edits=edits,
    )


def test_a_killed_task_is_retried_and_the_run_succeeds(airflow_world, killed_run):
    world, airflow = airflow_world, airflow_world.airflow
    for (task_id, map_index), kill in killed_run.kills.items():
        tries = airflow.tries(world.dag_id, killed_run.run_id, task_id, map_index)
        assert [(t["try_number"], t["state"]) for t in tries] == [
            (1, "failed"),
            (2, "success"),
        ], (task_id, map_index, kill)
        assert kill["hostname"] == kill["worker"]  # the TI names the worker that ran it
        retry_after = _instant(tries[1]["start_date"]) - _instant(tries[0]["end_date"])
        SUMMARY.append(
            f"{task_id}[{map_index}]: SIGKILL to {kill['killed']} on {kill['worker']};"
            f" try 2 on {tries[1]['hostname']} started {retry_after.total_seconds():.0f} s"
            " after try 1 was failed"
        )
    # Nothing else of the run needed a second try.
    retried = {k for k, n in _tries(world, killed_run.run_id).items() if n > 1}
    assert retried == set(killed_run.kills)


def test_the_killed_run_makes_exactly_the_changes_waiting_for_it(airflow_world, killed_run):
    """Two extracts were killed, and PICSWeb and OneFile changed exactly as the edits made
    before the run call for: no more, nothing twice."""
    world = airflow_world
    edits = killed_run.edits
    onefile_review, started_review_id = edits["started_review"]
    aim_id, tq_id, total_elements = edits["grown_aim"]
    new_review_id = edits["new_review_id"]
    changes = _diff(killed_run.before, killed_run.after)
    by_key = {(table, key, column): new for table, key, column, _old, new in changes}
    assert by_key.get(("review", started_review_id, "attended")) == "Y", changes
    assert by_key.get(("trainee_qualification", tq_id, "total_elements")) == total_elements
    created = by_key.get(("review", new_review_id, "onefile_system_id"))
    assert created is not None, changes
    onefile_created = [r for r in world.sim.data.reviews if r["ID"] == created]
    assert len(onefile_created) == 1
    assert {c.path for c in killed_run.writes} == {"/Visit", "/Review"}, killed_run.writes
    assert len(killed_run.writes) == 2, [(c.path, c.body) for c in killed_run.writes]
    touched = {(table, key) for table, key, *_ in changes}
    assert touched <= {
        ("review", started_review_id),
        ("review", new_review_id),
        ("trainee_qualification", tq_id),
    }, changes
    assert world.sim.data.reviews and onefile_review  # (the OneFile review that took place)
    assert any(a["ID"] == aim_id for a in world.sim.data.learning_aims)
    world.assert_consistent()


# --------------------------------------------------------------------------------------
# c. clearing single tasks of a finished run
# --------------------------------------------------------------------------------------
def _wait_for_rerun(world: AirflowWorld, run_id: str, key: tuple[str, int], before: int) -> dict:
    task_id, map_index = key

    def rerun_done() -> bool:
        ti = world.airflow.task_instance(world.dag_id, run_id, task_id, map_index)
        return ti["try_number"] > before and ti["state"] in {"success", "failed", "skipped"}

    world.airflow.wait_until(rerun_done, 120, f"{task_id}[{map_index}] of {run_id} to rerun")
    return world.airflow.wait_for_run(world.dag_id, run_id, timeout=120)


@pytest.mark.parametrize(
    "key",
    [("extract_reviews", 0), ("load_reviews", -1), ("push_reviews", -1)],
    ids=lambda key: key[0] if key[1] < 0 else f"{key[0]}[{key[1]}]",
)
def test_clearing_one_task_of_a_finished_run_reruns_it_and_changes_nothing(
    airflow_world, killed_run, key
):
    world, airflow = airflow_world, airflow_world.airflow
    run_id = killed_run.run_id
    before = world.picsweb_rows()
    audited, mark = world.audit_rows(), world.call_mark()
    tries = _tries(world, run_id)
    task_id, map_index = key

    airflow.clear_task_instances(
        world.dag_id,
        dag_run_id=run_id,
        task_ids=[[task_id, map_index] if map_index >= 0 else task_id],
        only_failed=False,
        include_downstream=False,
        include_upstream=False,
        reset_dag_runs=True,
    )
    final = _wait_for_rerun(world, run_id, key, tries[key])

    assert final["state"] == "success", airflow.ti_summary(world.dag_id, run_id)
    after = _tries(world, run_id)
    assert after[key] == tries[key] + 1
    assert world.states(run_id)[key] == "success"
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in tries.items() if k != key
    }, "only the cleared task ran again"
    assert _diff(before, world.picsweb_rows()) == []
    assert world.onefile_writes(since=mark) == []
    assert world.audit_rows() == audited
    world.assert_consistent()
    # What the rerun says it did: nothing, and no conflict with what the first try wrote.
    said = airflow.xcom(world.dag_id, run_id, task_id, map_index=map_index)
    nothing = {"fields_changed", "conflicts", "reviews_inserted", "sent", "recovered", "failed"}
    assert {k: v for k, v in said.items() if k in nothing and v} == {}, said


def test_the_killed_run_ends_where_an_undisturbed_run_over_the_same_data_does(
    airflow_world, killed_run
):
    """The whole killed run cleared runs again undisturbed, over the same data interval and
    what both systems hold now: it finds nothing left to do."""
    world, airflow = airflow_world, airflow_world.airflow
    run_id = killed_run.run_id
    before = world.picsweb_rows()
    mark = world.call_mark()
    tries, states = _tries(world, run_id), world.states(run_id)
    airflow.clear_task_instances(
        world.dag_id, dag_run_id=run_id, only_failed=False, reset_dag_runs=True
    )
    final = _wait_for_rerun(world, run_id, ("finish_run", -1), tries[("finish_run", -1)])
    assert final["state"] == "success", airflow.ti_summary(world.dag_id, run_id)
    assert world.states(run_id) == states
    ran = {k for k, n in _tries(world, run_id).items() if n == tries[k] + 1}
    assert ran == {k for k, state in states.items() if state == "success"}
    assert _diff(before, world.picsweb_rows()) == []
    assert world.onefile_writes(since=mark) == []
    world.assert_consistent()


# --------------------------------------------------------------------------------------
# e. a wrong customer token
# --------------------------------------------------------------------------------------
BAD_CONN_ID = "onefile_bad"


@pytest.fixture(scope="module")
def bad_token_run(airflow_world, killed_run) -> dict[str, Any]:
    """A full run on a connection (made through the REST API) whose customer token OneFile
    refuses."""
    world, airflow = airflow_world, airflow_world.airflow
    token = f"wrong-{secrets.token_hex(12)}"
    airflow.api(
        "POST",
        "/api/v2/connections",
        ok=(200, 201),
        json={
            "connection_id": BAD_CONN_ID,
            "conn_type": "http",
            "host": world.sim.base_url,
            "password": token,
            "extra": json.dumps(FAST_HOOK),
        },
    )
    before = world.picsweb_rows()
    mark = world.call_mark()
    run_id = world.trigger(at_0200_london(BAD_TOKEN_DAY), onefile_conn_id=BAD_CONN_ID)
    final = airflow.wait_for_run(world.dag_id, run_id, timeout=180)
    return {
        "run_id": run_id,
        "state": final["state"],
        "token": token,
        "before": before,
        "mark": mark,
    }


def test_a_wrong_token_fails_the_run_at_once_naming_the_connection(airflow_world, bad_token_run):
    world = airflow_world
    run_id = bad_token_run["run_id"]
    assert bad_token_run["state"] == "failed"
    tis = world.tis(run_id)
    extracts = [t for t in tis if t["task_id"].startswith("extract_")]
    assert extracts
    assert {(t["state"], t["try_number"]) for t in extracts} == {("failed", 1)}, [
        (t["task_id"], t["map_index"], t["state"], t["try_number"]) for t in extracts
    ]
    expected = f"connection '{BAD_CONN_ID}' (HTTP 401"
    record = world.sync_run(run_id)
    assert record is not None and record["outcome"] == "failed"
    assert expected in record["failure"], record["failure"]
    first = extracts[0]
    log = world.airflow.task_log(world.dag_id, run_id, first["task_id"], 1, first["map_index"])
    assert any(expected in str(e.get("event", "")) + str(e) for e in log), log[-10:]
    # Nothing was written anywhere.
    assert _diff(bad_token_run["before"], world.picsweb_rows()) == []
    assert world.onefile_writes(since=bad_token_run["mark"]) == []
    world.assert_consistent()


def test_no_token_is_in_any_file_under_the_airflow_home(airflow_world, bad_token_run):
    world = airflow_world
    home = world.airflow.home
    with world.sim._lock:  # every session token the simulator ever issued
        sessions = list(world.sim._sessions)
    tokens = {
        "the wrong customer token": bad_token_run["token"],
        "the customer token": world.sim.customer_token,
        **{f"session token {t[:4]}…": t for t in sessions},
    }
    assert sessions, "the simulator issued no session token: nothing was tested"
    files = [p for p in home.rglob("*") if p.is_file()]
    task_logs = [p for p in files if "dag_id=" in str(p)]
    assert task_logs, f"no task log under {home}"
    found = [
        (str(path.relative_to(home)), what)
        for path in files
        for what, token in tokens.items()
        if token.encode() in _read(path)
    ]
    assert found == [], found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # a file removed while walking
        return b""
