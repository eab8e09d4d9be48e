"""Every ``airflow ...`` command of README.md, the DAG's doc_md and docs/own-airflow.md's
pool, run against the real Airflow, does what the text around it says.

Only placeholders (``…``) are filled in, with real dates; everything else is run as
written. A command of a kind no check knows fails the test: add its check here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.airflow.commands import (
    DocCommand,
    doc_md_commands,
    own_airflow_commands,
    readme_commands,
    unique,
)
from tests.airflow.world import AirflowWorld, at_0200_london

pytestmark = pytest.mark.airflow_server

# Dates put in for a documented placeholder (`--from-date … --to-date …`): a reader expects
# one run for each of these days.
PLACEHOLDER_DAYS = (date(2026, 3, 10), date(2026, 3, 12))
# The day put in for `airflow dags test <dag> <logical date>`, and the old day given to
# `airflow dags trigger --logical-date` (neither used by another test: one run a day).
DAGS_TEST_DAY = date(2026, 4, 4)
DAGS_TRIGGER_DAY = date(2026, 4, 5)

# Checks that change nothing first, backfills (which take over and cancel runs) last.
_ORDER = [
    ("pools", "set"),
    ("dags", "unpause"),
    ("tasks", "clear"),
    ("dags", "trigger"),
    ("dags", "test"),
    ("backfill", "create"),
]


def _documented() -> list[DocCommand]:
    commands = unique([*readme_commands(), *doc_md_commands(), *own_airflow_commands()])
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    return sorted(commands, key=lambda c: rank.get(c.subcommand, len(rank)))


def _day(text: str) -> date:
    return datetime.fromisoformat(text).date()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------
# the checks, one per kind of command
# --------------------------------------------------------------------------------------
def check_pools_set(command: DocCommand, world: AirflowWorld, request) -> None:
    """`airflow pools set onefile_api 1 "..."`: the pool exists with that many slots."""
    _airflow, _pools, _set, name, slots, description = command.argv
    world.airflow.shell(command.text)
    pool = world.airflow.api("GET", f"/api/v2/pools/{name}")
    assert (pool["slots"], pool["description"]) == (int(slots), description)
    assert name == "onefile_api", "the DAG's OneFile tasks run in the pool onefile_api"


def check_dags_unpause(command: DocCommand, world: AirflowWorld, request) -> None:
    """`airflow dags unpause <dag>`: the DAG is unpaused (its queued runs may start)."""
    request.getfixturevalue("finished_daily_run")  # pausing must not stall a running run
    dag_id = command.argv[3]
    assert dag_id == world.dag_id
    world.airflow.set_paused(dag_id, True)
    world.airflow.shell(command.text)
    assert world.airflow.api("GET", f"/api/v2/dags/{dag_id}")["is_paused"] is False


def check_tasks_clear(command: DocCommand, world: AirflowWorld, request) -> None:
    """`airflow tasks clear <dag> -t <task> -s <day> -e <day>`: "rerun one task by hand":
    that task of the finished run of that day runs again (and nothing else does)."""
    request.getfixturevalue("finished_daily_run")
    airflow = world.airflow
    pattern = command.option("-t", "--task-regex")
    start, end = command.option("-s", "--start-date"), command.option("-e", "--end-date")
    assert pattern and start and end, f"{command}: expected -t, -s and -e"
    first, last = _day(start), _day(end)
    runs = [
        r
        for r in world.runs()
        if r["logical_date"] and first <= _day(r["logical_date"][:10]) <= last
    ]
    assert runs, f"no run on {first}..{last} to clear: let the tests make one for {command}"
    before = {r["dag_run_id"]: _tries(world, r["dag_run_id"]) for r in runs}
    targets = {
        run_id: [k for k in tries if re.search(pattern, k[0])] for run_id, tries in before.items()
    }
    assert all(targets.values()), f"-t {pattern} matches no task of {list(before)}"

    asks = not ({"-y", "--yes"} & set(command.argv))
    done = airflow.shell(command.text, input="y\n" if asks else None)
    cleared = {
        run_id: [k for k in keys if _was_cleared(world, run_id, k, before[run_id][k])]
        for run_id, keys in targets.items()
    }
    hint = ""
    if "T" not in end:
        fixed = re.sub(r"(\s(?:-e|--end-date)[\s=])(\S+)", r"\g<1>\g<2>T23:59", command.text)
        hint = f"; runs start at 02:00, so the range must end at the day's end: `{fixed}`"
    assert cleared == targets, (
        f"`{command.text}` cleared {cleared}, not the documented {targets}{hint}\n"
        f"its output: {done.stdout[-1000:]} {done.stderr[-1000:]}"
    )
    for run_id, keys in targets.items():
        final = airflow.wait_for_run(world.dag_id, run_id, timeout=120)
        after = _tries(world, run_id)
        assert final["state"] == "success", airflow.ti_summary(world.dag_id, run_id)
        for key, tries in before[run_id].items():
            assert after[key] == tries + (1 if key in keys else 0), key


def check_backfill_create(command: DocCommand, world: AirflowWorld, request) -> None:
    """`airflow backfill create ... --from-date A --to-date B`: one run for each day from A
    to B, at 02:00 UK time, as many at a time as `--max-active-runs` says. The runs are
    made on a paused DAG (README: "Backfill runs stay queued while the DAG is paused"),
    checked, then cancelled: running a month here would take far too long."""
    airflow = world.airflow
    text = command.text
    if command.has_placeholders:
        text = command.with_values(*(d.isoformat() for d in PLACEHOLDER_DAYS))
    argv_command = DocCommand(command.source, text, command.context)
    first = _day(argv_command.option("--from-date"))
    last = _day(argv_command.option("--to-date"))
    expected = [at_0200_london(first + timedelta(days=n)) for n in range((last - first).days + 1)]

    airflow.wait_for_backfill_done(world.dag_id)  # one backfill at a time
    request.getfixturevalue("finished_daily_run")
    previous = airflow.latest_backfill(world.dag_id)
    airflow.set_paused(world.dag_id, True)
    try:
        airflow.shell(text)
        backfill = airflow.latest_backfill(world.dag_id)
        assert backfill and (previous is None or backfill["id"] > previous["id"])
        try:
            runs = airflow.backfill_runs(backfill["id"])
            made = [r["logical_date"] for r in runs]
            missing = sorted(set(expected) - set(made))
            extra = sorted(set(made) - set(expected))
            to_date = argv_command.option("--to-date")
            hint = ""
            if missing and "T" not in to_date:
                fixed = text.replace(f"--to-date {to_date}", f"--to-date {to_date}T23:59")
                hint = (
                    f"; a bare --to-date is {to_date}T00:00 UTC, before that day's 02:00 run:"
                    f" `{fixed}`"
                )
            assert not missing and not extra, (
                f"`{text}` made {len(made)} runs, the text means {len(expected)} "
                f"({first}..{last} at 02:00 UK time); missing {[m.isoformat() for m in missing]},"
                f" extra {[e.isoformat() for e in extra]}{hint}"
            )
            assert {r["state"] for r in runs} == {"queued"}, "runs started on a paused DAG"
            max_active = argv_command.option("--max-active-runs")
            if max_active is not None:
                assert backfill["max_active_runs"] == int(max_active)
        finally:
            airflow.cancel_backfill(backfill["id"])
    finally:
        airflow.set_paused(world.dag_id, False)


def _interval_of(world: AirflowWorld, logical_date: datetime) -> list[dict]:
    return [
        r for r in world.runs() if r["logical_date"] and _instant(r["logical_date"]) == logical_date
    ]


def check_dags_test(command: DocCommand, world: AirflowWorld, request) -> None:
    """`airflow dags test <dag> <logical date>`: "for a day other than today": a run for
    that logical date, synced green, whose data interval is the UK day that ends at it
    (02:00 to 02:00), as a scheduled run starting at that moment would cover, and as a
    run triggered through the REST API with that logical date does (a backfill or
    scheduled run with that logical date covers the day that *starts* there: see
    test_run_dates.py). The DAG is paused meanwhile, so the scheduler leaves the run to
    the command."""
    airflow = world.airflow
    logical_date = at_0200_london(DAGS_TEST_DAY)
    text = command.with_values(logical_date.isoformat())
    request.getfixturevalue("finished_daily_run")
    airflow.wait_for_backfill_done(world.dag_id)
    airflow.set_paused(world.dag_id, True)
    try:
        done = airflow.shell(text, timeout=300)
    finally:
        airflow.set_paused(world.dag_id, False)
    (run,) = _interval_of(world, logical_date) or [None]
    assert run is not None, f"`{text}` made no run for {logical_date}: {done.stdout[-2000:]}"
    assert run["state"] == "success", airflow.ti_summary(world.dag_id, run["dag_run_id"])
    interval = (_instant(run["data_interval_start"]), _instant(run["data_interval_end"]))
    assert interval == (at_0200_london(DAGS_TEST_DAY - timedelta(1)), logical_date), (
        f"`{text}` ran over {interval}, not the UK day ending at {logical_date}"
    )


def check_dags_trigger(command: DocCommand, world: AirflowWorld, request) -> None:
    """README: "in Airflow 3.3 `airflow dags trigger` takes the data interval from the
    moment it is called, whatever its `--logical-date`": a run triggered so for an old day
    has that logical date but the interval of the latest 02:00 before the command. Made on
    a paused DAG, checked, deleted (it never runs)."""
    airflow = world.airflow
    assert command.argv[:3] == ["airflow", "dags", "trigger"], command
    logical_date = at_0200_london(DAGS_TRIGGER_DAY)
    request.getfixturevalue("finished_daily_run")
    airflow.set_paused(world.dag_id, True)
    try:
        typed = datetime.now(UTC)
        airflow.cli("dags", "trigger", world.dag_id, "--logical-date", logical_date.isoformat())
        (run,) = _interval_of(world, logical_date)
        try:
            assert run["state"] == "queued"
            start, end = _instant(run["data_interval_start"]), _instant(run["data_interval_end"])
            assert start != logical_date, (
                "`airflow dags trigger --logical-date` now gives that day's data interval:"
                f" README's sentence is out of date ({command.context})"
            )
            assert typed - timedelta(days=1, hours=2) <= end <= typed
            assert end - start == timedelta(days=1)
        finally:
            airflow.api(
                "DELETE", f"/api/v2/dags/{world.dag_id}/dagRuns/{run['dag_run_id']}", ok=(204,)
            )
    finally:
        airflow.set_paused(world.dag_id, False)


CHECKS: dict[tuple[str, str], Callable[[DocCommand, AirflowWorld, object], None]] = {
    ("pools", "set"): check_pools_set,
    ("dags", "unpause"): check_dags_unpause,
    ("tasks", "clear"): check_tasks_clear,
    ("backfill", "create"): check_backfill_create,
    ("dags", "test"): check_dags_test,
    ("dags", "trigger"): check_dags_trigger,
}


def _tries(world: AirflowWorld, run_id: str) -> dict[tuple[str, int], int]:
    return {(t["task_id"], t["map_index"]): t["try_number"] for t in world.tis(run_id)}


def _was_cleared(world: AirflowWorld, run_id: str, key: tuple[str, int], try_number: int) -> bool:
    task_id, map_index = key
    ti = world.airflow.task_instance(world.dag_id, run_id, task_id, map_index)
    return ti["try_number"] > try_number or ti["state"] not in {"success", "failed", "skipped"}


# --------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------
def test_the_documentation_names_airflow_commands():
    kinds = {c.subcommand for c in readme_commands()}
    assert {("backfill", "create"), ("dags", "unpause"), ("tasks", "clear")} <= kinds
    assert ("pools", "set") in kinds
    assert doc_md_commands(), "the DAG's doc_md names no airflow command"
    assert [c.subcommand for c in own_airflow_commands()] == [("pools", "set")]


@pytest.mark.parametrize("command", _documented(), ids=str)
def test_documented_command_does_what_its_text_says(command, airflow_world, request):
    check = CHECKS.get(command.subcommand)
    assert check is not None, f"no check for `{command.text}` yet: add one to CHECKS"
    check(command, airflow_world, request)
