"""The embedded demo: one real run of ``onefile_picsweb_sync`` on generated data.

``make demo`` runs ``python -m sync_demo``: it generates a OneFile customer and a
matching PICSWeb, serves the OneFile side from the simulator on 127.0.0.1, creates the
PICSWeb side in a SQLite file, gives Airflow the two connections as environment
variables, runs the DAG with ``dag.test()`` and prints what changed. The same helpers
(:mod:`sync_demo.dag_runs`, :mod:`sync_demo.picsweb_db`) drive the end-to-end tests, so the
demo is what the tests prove; what it builds is :mod:`sync_demo.builder`'s, as the compose
profile's demo (``deploy/picsweb_demo.py``) builds it.

``python -m sync_demo --picsweb-url URL --serve`` builds the same PICSWeb in a
database of one's choosing (a SQLite path, PostgreSQL or ``mssql+pymssql``; a database that
already holds data is refused unless ``--replace``), serves the matching OneFile simulator
until SIGINT or SIGTERM, writes the connections for one's own Airflow to private files
(``--secrets-dir``) and prints, for every Airflow process, the lines that read them (never a
secret), and the logical date to trigger. The demo reviews are scheduled around ``--today`` (default: today's UK date), so
the run triggered for that day finds them inside its review window.

The demo lives outside ``picsweb_sync`` so that a deployment of the sync never carries the
simulator or its data generator.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from onefile_simulator.generator import default_today
from onefile_simulator.server import OneFileSimulator
from sync_demo.builder import (
    DEFAULT_LEARNERS,
    DEFAULT_ORGANISATIONS,
    DEFAULT_PORT,
    DEFAULT_SEED,
    DemoError,
    demo_dataset,
    error_reason,
    hosted_simulator,
    load_demo_picsweb,
    loaded_text,
    said_plainly,
    serve_until,
    spoil_some_rows,
    stop_on_signals,
)
from sync_demo.dag_runs import (
    CONN_TYPES,
    DAG_ID,
    REPO,
    UK,
    connection_env,
    environment,
    logical_date_for,
    manual_run_window,
    run_dag,
    summary,
    trigger_logical_date,
    uk_today,
)
from sync_demo.serving import process_lines, write_connection_files

# The same as the simulator's own command line (python -m onefile_simulator).
DEFAULT_HOST = "127.0.0.1"
SIMULATOR_TOKEN = "sim-customer-token"
_ALL_INTERFACES = ("0.0.0.0", "")


def clock_change_note(day: date, fixed_day: date) -> str | None:
    """What the reviews around ``day`` lack when no UK clock change is within 30 days
    (None when one is: then every review case is there)."""
    window = [day + timedelta(days=offset) for offset in range(-30, 31)]
    summer = {bool(datetime.combine(d, time(12), tzinfo=UK).dst()) for d in window}
    if len(summer) > 1:
        return None
    lacking = "no review straddles one" + (
        "" if True in summer else ", and none sits just after midnight in summer time"
    )
    return (
        f"Note: no UK clock change falls within 30 days of {day.isoformat()}, so {lacking}. "
        "The learning aims' dates across the clock change are there whatever the day; "
        f"--today {fixed_day.isoformat()} gives every review case too."
    )


def demo_picsweb_url(value: str) -> str:
    """The SQLAlchemy URL of ``--picsweb-url``: a URL, or a SQLite file path. SQLite paths are
    made absolute, since Airflow's workers resolve them from wherever they run."""
    try:
        url = (
            sa.engine.make_url(value)
            if "://" in value
            else sa.engine.URL.create("sqlite", database=value)
        )
    except sa.exc.ArgumentError:
        raise DemoError(f"--picsweb-url {value!r} is neither a database URL nor a path") from None
    backend = url.get_backend_name()
    if backend not in CONN_TYPES:
        raise DemoError(
            f"--picsweb-url: {backend!r} is not a PICSWeb the sync runs on; give a SQLite "
            "path, a postgresql:// or an mssql+pymssql:// URL"
        )
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise DemoError("--picsweb-url: Airflow cannot share an in-memory SQLite database")
        url = url.set(database=str(Path(url.database).expanduser().resolve()))
    return url.render_as_string(hide_password=False)


def prepare_picsweb(
    url: str, rows: Mapping[str, list[dict]], *, replace: bool
) -> tuple[sa.Engine, dict[str, int]]:
    """Create the PICSWeb tables at ``url`` and load ``rows``; returns the engine and the rows
    loaded per table. A database already holding PICSWeb or sync rows is refused (nothing
    touched) unless ``replace``, which empties it first."""
    from picsweb_sync.storage.engines import engine_for_url
    from sync_demo.picsweb_db import clear_demo_tables, rows_held

    parsed = sa.engine.make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_for_url(parsed)
    try:
        held = rows_held(engine)
        if held and not replace:
            listing = ", ".join(f"{table} ({n} row{'s' * (n != 1)})" for table, n in held.items())
            raise DemoError(
                f"{shown} already holds data: {listing}. Nothing was changed. Pass --replace "
                "to delete those rows (and the sync_* tables) and load the demo there, or "
                "give another database."
            )
        if held:
            clear_demo_tables(engine)
        loaded = load_demo_picsweb(engine, rows)
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise DemoError(f"cannot build the demo PICSWeb in {shown}: {error_reason(exc)}") from None
    except DemoError:
        engine.dispose()
        raise
    return engine, loaded


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sync_demo",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--organisations", type=int, default=DEFAULT_ORGANISATIONS)
    parser.add_argument("--learners", type=int, default=DEFAULT_LEARNERS, help="per organisation")
    parser.add_argument(
        "--today",
        type=_day,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day the demo reviews are scheduled around and the run is for "
        "(default: today's UK date)",
    )
    parser.add_argument(
        "--data-dir",
        default=str(REPO / "demo-data"),
        help="where the SQLite PICSWeb goes when --picsweb-url is not given",
    )
    parser.add_argument(
        "--picsweb-url",
        metavar="URL",
        help="the PICSWeb database to build: a SQLite file path or sqlite:/// URL, "
        "postgresql://user:pass@host/db or mssql+pymssql://user:pass@host:1433/db "
        "(default: a fresh picsweb.sqlite in --data-dir)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="delete what the --picsweb-url database already holds in the PICSWeb and sync_* "
        "tables before loading (without it the demo refuses to touch a database with data)",
    )
    serving = parser.add_argument_group(
        "serving",
        "--serve: build the PICSWeb, serve the matching OneFile simulator until "
        "interrupted, and print the connections for one's own Airflow (no dag.test() runs)",
    )
    serving.add_argument("--serve", action="store_true")
    serving.add_argument("--host", default=DEFAULT_HOST, help="address the simulator listens on")
    serving.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serving.add_argument("--customer-token", default=SIMULATOR_TOKEN)
    serving.add_argument(
        "--secrets-dir",
        default=str(REPO / "demo-data" / "secrets"),
        help="where the connections go, one private file each (docs/own-airflow.md's "
        "$SECRETS); the printout reads them from there and shows no secret",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    today = args.today or uk_today()
    dataset = demo_dataset(
        seed=args.seed, organisations=args.organisations, learners=args.learners, today=today
    )
    print(
        f"Demo data: seed {args.seed}, {args.organisations} organisations x {args.learners} "
        f"learners, reviews scheduled around {today.isoformat()} (30 days either side)",
        flush=True,
    )
    note = clock_change_note(today, default_today(args.seed))
    if note:
        print(note, flush=True)
    return said_plainly(lambda: serve(args, dataset) if args.serve else run_twice(args, dataset))


def run_twice(args: argparse.Namespace, dataset) -> int:
    """``make demo``: two ``dag.test()`` runs against the simulator and the PICSWeb."""
    # Task logs stay in the Airflow home; the terminal shows what changed.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    if args.picsweb_url:
        picsweb_url = demo_picsweb_url(args.picsweb_url)
        engine, _ = prepare_picsweb(picsweb_url, dataset.picsweb, replace=args.replace)
        where = sa.engine.make_url(picsweb_url).render_as_string(hide_password=True)
    else:  # the demo's own file, made afresh every time
        data_dir = Path(args.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        db_file = data_dir / "picsweb.sqlite"
        db_file.unlink(missing_ok=True)
        picsweb_url = demo_picsweb_url(str(db_file))
        engine, _ = prepare_picsweb(picsweb_url, dataset.picsweb, replace=False)
        where = str(db_file)

    with OneFileSimulator(dataset.onefile) as sim:
        print(f"OneFile simulator on {sim.base_url}; PICSWeb in {where}")
        env = connection_env(sim.base_url, sim.customer_token, picsweb_url)
        # The generated reviews sit around the dataset's "today": the run for that day
        # has them inside its review window.
        when = logical_date_for(dataset.today).astimezone(UTC)
        with environment(env):
            spoil_some_rows(sim)
            first = run_dag(logical_date=when)
            second = run_dag(logical_date=when + timedelta(hours=1))
        print(f"\nrun 1 {first.run_id}: {first.state}")
        _print_summary(summary(engine, first.run_id))
        print(f"\nrun 2 {second.run_id}: {second.state} (changes only what run 1 set aside)")
        _print_summary(summary(engine, second.run_id))
        print(f"\nOneFile calls received by the simulator: {len(sim.calls)}")
    engine.dispose()
    ok = str(first.state) == "success" and str(second.state) == "success"
    return 0 if ok else 1


def serve(args: argparse.Namespace, dataset) -> int:
    """``--serve``: build the PICSWeb, serve OneFile, print how to point Airflow at both,
    and serve until SIGINT or SIGTERM."""
    picsweb_url = demo_picsweb_url(args.picsweb_url or str(Path(args.data_dir) / "picsweb.sqlite"))
    sim = hosted_simulator(
        dataset.onefile, host=args.host, port=args.port, customer_token=args.customer_token
    )
    try:  # the port first: a port in use stops the demo before it touches the database
        sim.start()
    except OSError as exc:
        raise DemoError(
            f"the simulator cannot listen on {args.host}:{args.port} ({exc.strerror or exc}): "
            "pick another --port (0 for any free one) or --host"
        ) from None
    try:
        engine, loaded = prepare_picsweb(picsweb_url, dataset.picsweb, replace=args.replace)
    except DemoError:
        sim.stop()
        raise
    shown = sa.engine.make_url(picsweb_url).render_as_string(hide_password=True)
    print(f"PICSWeb: {shown}, loaded {loaded_text(loaded)}", flush=True)
    try:
        spoil_some_rows(sim)
        env = connection_env(sim.base_url, sim.customer_token, picsweb_url)
        _print_serving(args, dataset, sim, env)
        stop = stop_on_signals()
        print("Serving until Ctrl-C (SIGINT) or SIGTERM.", flush=True)
        serve_until(stop)
    finally:
        sim.stop()
        engine.dispose()
    print(f"stopped; the demo PICSWeb stays in {shown}", flush=True)
    return 0


def _print_serving(args, dataset, sim, env: Mapping[str, str]) -> None:
    """How to point one's own Airflow at the simulator and the database. No secret is
    printed: the connections go to private files (:mod:`sync_demo.serving`) and the lines
    printed read them."""
    files = write_connection_files(Path(args.secrets_dir), env)
    orgs = ", ".join(str(o["ID"]) for o in dataset.onefile.organisations)
    when = logical_date_for(dataset.today).isoformat()
    plan = manual_run_window(dataset.today)
    uk = "%Y-%m-%d %H:%M"
    lines = [
        f"OneFile: simulator serving organisations {orgs} (a few rows of the first LearningAim "
        "and Review searches are deliberately malformed, as in make demo)",
        f"OneFile base URL: {sim.base_url}",
        f"Connections (files of mode 0600, not printed): {files['onefile_api']} (the OneFile "
        f"base URL and customer token), {files['picsweb_db']} (the demo PICSWeb)",
    ]
    if args.host in _ALL_INTERFACES:
        port = urlsplit(sim.base_url).port
        lines.append(
            f"  (listening on all interfaces, port {port}: from another machine or a "
            "container use this machine's address in place of 127.0.0.1)"
        )
    lines += [
        "",
        *process_lines(files),
        "and once, in Airflow:",
        'airflow pools set onefile_api 1 "OneFile API rate limit"',
        "",
        f"Then run the sync for {dataset.today.isoformat()}, logical date {when}: its review "
        f"window, {plan.review_from.astimezone(UK).strftime(uk)} to "
        f"{plan.review_to.astimezone(UK).strftime(uk)} UK time, holds the demo reviews.",
        "Unpausing the DAG starts its latest scheduled run at once (the UK day that ended "
        "at 02:00 today, logical date yesterday 02:00), beside any run you trigger.",
        f"airflow dags unpause {DAG_ID}",
    ]
    if dataset.today == uk_today():  # before 02:00 UK: for now, or the run waits until 02:00
        trigger_at = trigger_logical_date(dataset.today).isoformat()
        lines.append(f"airflow dags trigger {DAG_ID} --logical-date {trigger_at}")
    else:
        lines += [
            f"Trigger it from the UI (logical date {when}) or the REST API (POST "
            f'/api/v2/dags/{DAG_ID}/dagRuns with {{"logical_date": "{when}"}}). Not with '
            "`airflow dags trigger`: it takes the run's data interval from the moment it is "
            "called, whatever its --logical-date. Without a scheduler (with the worker's "
            "export lines):",
            f"airflow dags test {DAG_ID} {when}",
        ]
    lines.append("")
    print("\n".join(lines), flush=True)


def _print_summary(s: dict[str, Any]) -> None:
    if not s["changes"]:
        print("  no field changed")
    for system, entity, field, n in s["changes"]:
        print(f"  {system:8} {entity:24} {field:28} {n:5} changed")
    for stage, reason, n in s["rejects"]:
        print(f"  reject  {stage:24} {reason[:60]:60} {n:5}")


if __name__ == "__main__":
    raise SystemExit(main())
