"""Scripted benchmarks: each vectorised / set-based step timed beside a plain loop baseline.

Run from the repository root: ``.venv/bin/python -m benchmarks.run [--quick]`` (or ``make
bench``). Every benchmark first checks that the fast code and its baseline decide the same
thing, and stops with an error if they do not: the speed of wrong code is worthless.

1. ``merge``: rules 1-4 (``merge_qualifications`` on typed frames, and parse + merge from the
   OneFile rows) against ``tests/e2e/qualification_oracle.py`` run on the same rows, as is
   (its aim matching scans every qualification for each aim, so it grows quadratically) and
   with that matching indexed by dicts (``indexed_links``), which leaves only the difference
   between pandas and a Python loop.
2. ``load``: ``apply_updates`` (work table, one ``UPDATE ... FROM`` per field) against one
   guarded ``UPDATE`` and one audit ``INSERT`` per change, on fresh copies of one SQLite file.
   ``drift``: ``rules.drift.drift_report`` beside the two merges it re-runs, same frames
   (``benchmarks/drift.py``).
3. ``extract``: the OneFile hook's paged learner search against the simulator, per page size.
4. ``sync_page``: the sync page's run history page and audit search on a year of daily runs
   and a million audit rows (PostgreSQL), keyset + index against OFFSET / no index
   (``benchmarks/sync_page.py``).

Results print as a table and go to ``benchmarks/results/<UTC time>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

import pandas as pd
import sqlalchemy as sa

from benchmarks.timing import Result, compared, timed
from onefile_simulator import Dataset, OneFileSimulator, generate_dataset
from picsweb_sync.onefile.fields import parse_learners, parse_learning_aims
from picsweb_sync.rules.qualifications import QualificationMerge, merge_qualifications
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.engines import engine_for_url
from picsweb_sync.storage.picsweb_writes import apply_updates
from picsweb_sync.storage.project_tables import audit_text, ensure_project_tables, sync_audit
from picsweb_sync.storage.sqlframes import frame_column, read_frame
from sync_demo.dag_runs import connection_env
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.e2e import qualification_oracle as oracle

if TYPE_CHECKING:
    from tests.support.postgres import PgServer

LEARNER_ROLE = 1
RESULTS = Path(__file__).parent / "results"
RUN_ID = "bench"


# ----- inputs -------------------------------------------------------------------------------
def table_frame(table: sa.Table, rows: list[dict]) -> pd.DataFrame:
    """Generator rows typed as ``read_frame`` types them when the merge stage reads PICSWeb."""
    return pd.DataFrame(
        {c.name: frame_column([row[c.name] for row in rows], c.type) for c in table.c}
    )


def rows_by_organisation(data: Dataset) -> dict[int, tuple[list[dict], list[dict]]]:
    """Organisation -> (its learners, their learning aims): what the extract fetches."""
    org_of = {u["ID"]: u["OrganisationID"] for u in data.onefile.users if u["Role"] == LEARNER_ROLE}
    grouped: dict[int, tuple[list[dict], list[dict]]] = {}
    for user in data.onefile.users:
        if user["Role"] == LEARNER_ROLE:
            grouped.setdefault(user["OrganisationID"], ([], []))[0].append(user)
    for aim in data.onefile.learning_aims:
        grouped[org_of[aim["UserID"]]][1].append(aim)
    return grouped


@dataclass(frozen=True)
class MergeInputs:
    """The merge's typed inputs (PICSWeb frames in argument order) and its answer."""

    picsweb: dict[str, pd.DataFrame]
    learners: pd.DataFrame
    aims: pd.DataFrame
    merged: QualificationMerge


def parse_and_merge(data: Dataset, picsweb: dict[str, pd.DataFrame]) -> MergeInputs:
    """Rules 1-4 from OneFile's rows: parse each organisation's extract, then merge."""
    parsed = [
        (parse_learners(users, org).frame, parse_learning_aims(aims, org).frame)
        for org, (users, aims) in rows_by_organisation(data).items()
    ]
    learners = pd.concat([p[0] for p in parsed], ignore_index=True)
    aims = pd.concat([p[1] for p in parsed], ignore_index=True)
    merged = merge_qualifications(learners, aims, *picsweb.values())
    return MergeInputs(picsweb, learners, aims, merged)


# ----- merge baseline -----------------------------------------------------------------------
def indexed_links(picsweb: dict, learning_aims: list[dict]) -> dict[int, int]:
    """``oracle.links`` with dict indexes instead of nested scans (same answers, checked)."""
    aim_ids = {a["ID"] for a in learning_aims}
    claims = Counter(
        q["onefile_learning_aim_id"]
        for q in picsweb["trainee_qualification"]
        if q["onefile_learning_aim_id"] is not None
    )
    result = {
        q["onefile_learning_aim_id"]: q["tq_id"]
        for q in picsweb["trainee_qualification"]
        if q["onefile_learning_aim_id"] in aim_ids and claims[q["onefile_learning_aim_id"]] == 1
    }
    trainee_of = {
        t["onefile_learner_id"]: t["trainee_id"]
        for t in picsweb["trainee"]
        if t["onefile_learner_id"] is not None
    }
    unlinked: dict[tuple, list[int]] = {}
    for q in picsweb["trainee_qualification"]:
        code = oracle._code(q["qualification_code"])
        if q["onefile_learning_aim_id"] is None and code is not None:
            unlinked.setdefault((q["trainee_id"], code), []).append(q["tq_id"])
    candidates = [
        (aim["ID"], tq_id)
        for aim in learning_aims
        if aim["ID"] not in claims
        for tq_id in unlinked.get((trainee_of.get(aim["UserID"]), oracle._code(aim["Code"])), [])
    ]
    per_aim = Counter(a for a, _ in candidates)
    per_tq = Counter(t for _, t in candidates)
    result.update({a: t for a, t in candidates if per_aim[a] == 1 and per_tq[t] == 1})
    return result


def indexed_oracle(picsweb: dict, learning_aims: list[dict]) -> tuple[dict, dict]:
    """``oracle.expected_after_sync`` with :func:`indexed_links` as its matching."""
    with mock.patch.object(oracle, "links", indexed_links):
        return oracle.expected_after_sync(picsweb, learning_aims)


def changed_pairs(before: list[dict], after: dict, key: str, fields: list[str]) -> set[tuple]:
    return {(row[key], f) for row in before for f in fields if after[row[key]][f] != row[f]}


def check_merge_agrees(data: Dataset, merged, expected: tuple[dict, dict], name: str) -> None:
    """Fail loudly unless the merge and a baseline change the same (row, field) pairs."""
    quals, aims = expected
    pw_updates, of_updates = merged.picsweb_updates, merged.onefile_updates
    q_fields = [c.name for c in pw.trainee_qualification.c if c.name != "tq_id"]
    want_pw = changed_pairs(data.picsweb["trainee_qualification"], quals, "tq_id", q_fields)
    got_pw = set(zip(pw_updates["key"].astype(int), pw_updates["field"], strict=True))
    a_fields = [field for _, field, _ in oracle.FILL_FIELDS]
    want_of = changed_pairs(data.onefile.learning_aims, aims, "ID", a_fields)
    got_of = set(zip(of_updates["entity_id"].astype(int), of_updates["field"], strict=True))
    for side, want, got in (("PICSWeb", want_pw, got_pw), ("OneFile", want_of, got_of)):
        if want != got:
            raise SystemExit(
                f"merge and {name} disagree on {side} changes: "
                f"{len(got - want)} only in the merge, {len(want - got)} only in {name}, "
                f"e.g. {sorted(got ^ want)[:5]}"
            )


def picsweb_frames(data: Dataset) -> dict[str, pd.DataFrame]:
    """The merge's PICSWeb inputs, in ``merge_qualifications``' argument order."""
    return {
        name: table_frame(pw.metadata.tables[name], data.picsweb[name])
        for name in ("trainee", "trainee_qualification", "trainee_qualification_unit")
    }


def bench_merge(data: Dataset, size: str, inputs: MergeInputs, args) -> list[Result]:
    """Rules 1-4 four ways; each loop's answer is checked against the merge's before any
    number is reported."""
    loops = {"loop, oracle as is": oracle.expected_after_sync, "loop, indexed": indexed_oracle}
    variants: dict[str, Callable[[], object]] = {
        "merge_qualifications (frames)": lambda: merge_qualifications(
            inputs.learners, inputs.aims, *inputs.picsweb.values()
        ),
        "parse + merge (rows)": lambda: parse_and_merge(data, inputs.picsweb),
        **{
            name: lambda loop=loop: loop(data.picsweb, data.onefile.learning_aims)
            for name, loop in loops.items()
        },
    }
    merged = inputs.merged
    note = f"{len(merged.picsweb_updates)} PICSWeb + {len(merged.onefile_updates)} OneFile changes"
    n = len(data.onefile.learning_aims)
    results = []
    for name, run in variants.items():
        timing, answer = timed(run, args.repeats, args.budget)
        if name in loops:
            check_merge_agrees(data, merged, answer, name)
        results.append(Result("merge", size, name, n, **timing, note=note))
    return compared(results, "loop, indexed")


# ----- load ---------------------------------------------------------------------------------
def one_by_one_updates(conn: sa.Connection, updates: pd.DataFrame) -> int:
    """The baseline: per change, one guarded ``UPDATE`` (only if the row still holds ``old``)
    and, if it wrote, one audit ``INSERT``; the caller's transaction, like apply_updates."""
    statements: dict[tuple[str, str], sa.Update] = {}
    applied = 0
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for change in updates.itertuples(index=False):
        if (change.table, change.field) not in statements:
            table = pw.metadata.tables[change.table]
            key, column = pw.primary_key(table), table.c[change.field]
            old = sa.bindparam("old", type_=column.type)
            statements[change.table, change.field] = (
                sa.update(table)
                .where(
                    key == sa.bindparam("key"),
                    sa.or_(column == old, column.is_(None) & old.is_(None)),
                )
                .values({column: sa.bindparam("new", type_=column.type)})
            )
        params = {"key": int(change.key), "old": change.old, "new": change.new}
        if conn.execute(statements[change.table, change.field], params).rowcount:
            applied += 1
            conn.execute(
                sa.insert(sync_audit),
                {
                    "run_id": RUN_ID,
                    "system": "picsweb",
                    "entity": change.table,
                    "entity_key": str(change.key),
                    "field": change.field,
                    "old_value": audit_text(change.old),
                    "new_value": audit_text(change.new),
                    "changed_at": now,
                },
            )
    return applied


def _state(url: str | sa.URL) -> tuple[pd.DataFrame, int]:
    """What a load leaves: the qualification rows and the number of audit rows."""
    engine = engine_for_url(url)
    with engine.connect() as conn:
        quals = read_frame(conn, sa.select(pw.trainee_qualification).order_by("tq_id"))
        audited = conn.execute(sa.select(sa.func.count()).select_from(sync_audit)).scalar_one()
    engine.dispose()
    return quals, audited


class SqliteCopies:
    """A template SQLite file and a fresh copy of it per timed run."""

    name = "SQLite file"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def template(self, size: str) -> str:
        self._template = self.workdir / f"picsweb-{size}.sqlite"
        return f"sqlite:///{self._template}"

    def fresh(self) -> str:
        copy = self.workdir / "copy.sqlite"
        shutil.copyfile(self._template, copy)
        return f"sqlite:///{copy}"


class PostgresCopies:
    """A template database on a throwaway PostgreSQL server, copied with
    ``CREATE DATABASE ... TEMPLATE`` per timed run (the test suite's server:
    pytest-postgresql's executor, tests/support/postgres.py)."""

    name = "PostgreSQL, loopback"

    def __init__(self, server: PgServer) -> None:
        self.server = server

    def template(self, size: str) -> str:
        self._template = f"picsweb_{size}"
        return self.server.create_database(self._template)

    def fresh(self) -> str:
        return self.server.create_database("picsweb_copy", template=self._template)


def bench_load(
    data: Dataset, size: str, updates: pd.DataFrame, args, databases: SqliteCopies | PostgresCopies
) -> list[Result]:
    """Both loads on identical fresh copies; both must leave the same rows and audit."""
    engine = engine_for_url(databases.template(size))
    create_picsweb_tables(engine)
    # Not the settings row: the generator lists every organisation in its varchar(200)
    # organisation_ids, which PostgreSQL refuses past ~35 organisations, and no load reads it.
    load_picsweb_rows(engine, {k: v for k, v in data.picsweb.items() if k != "onefile_settings"})
    ensure_project_tables(engine)
    engine.dispose()
    loads = {
        "apply_updates (set-based)": lambda conn: apply_updates(conn, RUN_ID, updates),
        "loop, one UPDATE per change": lambda conn: one_by_one_updates(conn, updates),
    }
    results, states = [], []
    for name, load in loads.items():
        engines: list[sa.Engine] = []

        def fresh(engines=engines) -> None:
            for engine in engines:
                engine.dispose()
            engines[:] = [engine_for_url(databases.fresh())]

        def run(load=load, engines=engines) -> None:
            with engines[0].begin() as conn:
                load(conn)

        timing, _ = timed(run, args.repeats, args.budget, setup=fresh)
        url = engines[0].url
        engines[0].dispose()
        states.append(_state(url))
        results.append(Result("load", size, name, len(updates), **timing, note=databases.name))
    (set_quals, set_audit), (loop_quals, loop_audit) = states
    if not set_quals.equals(loop_quals) or set_audit != loop_audit or set_audit != len(updates):
        raise SystemExit(
            f"load: set-based and loop leave different databases "
            f"(audit rows {set_audit} vs {loop_audit}, {len(updates)} changes)"
        )
    return compared(results, "loop, one UPDATE per change")


# ----- extract ------------------------------------------------------------------------------
def bench_extract(data: Dataset, size: str, args: argparse.Namespace) -> list[Result]:
    """Learners of every organisation through the hook, per page size: calls and seconds.

    Both rate limiters are lifted to time the paging itself; the ``note`` gives the floor
    that OneFile's 300 calls a minute puts under the same number of calls.
    """
    page_sizes = [int(p) for p in args.page_sizes.split(",")]
    orgs = sorted(rows_by_organisation(data))
    learners = sum(len(users) for users, _ in rows_by_organisation(data).values())
    results = []
    with OneFileSimulator(data.onefile, rate_limit=(10**9, 60.0)) as sim:
        env = connection_env(sim.base_url, sim.customer_token, "sqlite:///unused.sqlite")
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # no "session token issued" lines
        with mock.patch.dict(os.environ, env):
            from onefile.hook import OneFileHook  # imports Airflow, which reads the level

            for page_size in page_sizes:
                hook = OneFileHook(page_size=page_size, calls_per_minute=10**9)
                hook.search_organisations()  # session set up outside the timing
                calls_before = hook.calls_made

                def run(hook=hook) -> int:
                    return sum(len(list(hook.search_users(o, LEARNER_ROLE))) for o in orgs)

                timing, fetched = timed(run, args.repeats, args.budget)
                if fetched != learners:
                    raise SystemExit(f"extract fetched {fetched} learners, expected {learners}")
                calls = (hook.calls_made - calls_before) // timing["repeats"]
                note = f"{calls} calls; >= {calls / 5:.0f} s at 300 calls/min"
                results.append(
                    Result("extract", size, f"page size {page_size}", learners, **timing, note=note)
                )
    return compared(results, f"page size {page_sizes[0]}")


# ----- main ---------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"2x50,10x200"`` -> [(2, 50), (10, 200)]: organisations x learners each."""
    return [tuple(int(n) for n in part.split("x")) for part in text.split(",")]


def print_table(results: list[Result]) -> None:
    header = ("benchmark", "size", "variant", "rows", "n", "median s", "rows/s", "ratio", "note")
    lines = [
        (
            r.benchmark,
            r.size,
            r.variant,
            str(r.rows),
            str(r.repeats),
            f"{r.median_s:.4f}",
            f"{r.rows_per_s:,.0f}",
            "baseline" if r.ratio is None else f"{r.ratio:.{2 if r.ratio < 10 else 0}f}x",
            r.note,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 30 s)")
    parser.add_argument("--sizes", help="organisations x learners, e.g. 2x50,10x200,50x400")
    parser.add_argument("--repeats", type=int, help="runs per variant (median reported)")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per variant at most")
    parser.add_argument("--page-sizes", default="25,100,500", help="extract page sizes")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["merge", "drift", "load", "extract", "sync_page"],
    )
    parser.add_argument(
        "--audit-rows",
        type=int,
        help="audit rows of the sync page benchmark (1,000,000; --quick 100,000)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres", action="store_true", help="also load into a throwaway PostgreSQL server"
    )
    args = parser.parse_args(argv)
    args.sizes = parse_sizes(args.sizes or ("2x50,10x100" if args.quick else "2x50,10x200,50x400"))
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.quick:
        args.budget = min(args.budget, 3.0)
    args.audit_rows = args.audit_rows or (100_000 if args.quick else 1_000_000)

    results: list[Result] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="picsweb-bench-"))
        backends: list[SqliteCopies | PostgresCopies] = [SqliteCopies(Path(tmp))]
        if args.postgres and "load" not in args.skip:
            from tests.support.postgres import postgres_server

            backends.append(PostgresCopies(cleanup.enter_context(postgres_server())))
        for organisations, learners in args.sizes:
            size = f"{organisations}x{learners}"
            print(f"-- {size}: generating", file=sys.stderr)
            data = generate_dataset(seed=args.seed, organisations=organisations, learners=learners)
            inputs = parse_and_merge(data, picsweb_frames(data))
            if "merge" not in args.skip:
                print(f"-- {size}: merge", file=sys.stderr)
                results += bench_merge(data, size, inputs, args)
            if "drift" not in args.skip:
                from benchmarks.drift import bench_drift, drift_inputs  # imports this module

                print(f"-- {size}: drift", file=sys.stderr)
                frames = drift_inputs(data, inputs.learners, inputs.aims)
                results += bench_drift(data, size, frames, args)
            if "load" not in args.skip:
                print(f"-- {size}: load", file=sys.stderr)
                updates = inputs.merged.picsweb_updates
                for databases in backends:
                    results += bench_load(data, size, updates, args, databases)
        if "extract" not in args.skip:
            print(f"-- {size}: extract", file=sys.stderr)
            results += bench_extract(data, size, args)
        if "sync_page" not in args.skip:
            from benchmarks.sync_page import bench_sync_page  # PostgreSQL: its own server

            print("-- sync page", file=sys.stderr)
            results += bench_sync_page(args)
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}.json"
    meta = {"argv": sys.argv[1:], "utc": stamp, "cpus": os.cpu_count(), "python": sys.version}
    payload = {**meta, "results": [{**asdict(r), "rows_per_s": r.rows_per_s} for r in results]}
    out.write_text(json.dumps(payload, indent=2))
    print(f"\n{time.perf_counter() - started:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
