"""``python -m picsweb_sync.preflight`` (``make preflight``): does this sync fit these
systems? Run it before the first run; it changes nothing anywhere.

It reads the DAG's own Airflow connections (``onefile_api``, ``picsweb_db``, the staging
database), checks PICSWeb's tables, settings, collation and permissions, the sync's own
tables, OneFile's authentication, organisations, fields and paging, and counts what a first
run would touch. It prints a table of ok / warning / blocking checks with what to do about
each (``--json`` for machines) and exits 0 (nothing blocking), 1 (something blocking) or 2
(it could not run: bad arguments, a connection that cannot be read).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
from collections.abc import Callable, Sequence

from picsweb_sync.preflight import connections
from picsweb_sync.preflight.findings import EXIT_CANNOT_RUN, Check, Level, Redactor, Report
from picsweb_sync.preflight.first_run import first_run_checks
from picsweb_sync.preflight.onefile import PreflightHook, onefile_checks
from picsweb_sync.preflight.onefile_pages import Sample
from picsweb_sync.preflight.own_tables import own_tables_checks
from picsweb_sync.preflight.picsweb import PicswebFacts, picsweb_checks
from picsweb_sync.storage import project_tables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m picsweb_sync.preflight",
        description="Read-only check that the OneFile <-> PICSWeb sync fits these systems: "
        "run it before the first run. Exit code 0: nothing blocking; 1: something blocking; "
        "2: the check could not run.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    connections.add_connection_arguments(parser)
    parser.add_argument(
        "--no-onefile", action="store_true", help="check the databases only (no OneFile call)"
    )
    return parser


def run(args: argparse.Namespace, lookup: connections.Lookup) -> tuple[Report, Redactor]:
    """Every check, in the order a run meets them; raises ``ConnectionProblem`` when a
    connection cannot be read at all."""
    picsweb, staging = connections.databases(lookup, args)
    onefile = None if args.no_onefile else connections.get(lookup, args.onefile_conn_id, "OneFile")
    redact = Redactor([picsweb.password, staging.password, getattr(onefile, "password", None)])
    report = Report()
    engines = {picsweb.conn_id: picsweb.engine()}
    engines.setdefault(staging.conn_id, staging.engine())
    try:
        checks, facts = _guarded(
            "picsweb",
            lambda: picsweb_checks(engines[picsweb.conn_id], picsweb.description, read_frames=True),
            (PicswebFacts(),),
        )
        report.add(checks)
        report.add(
            _guarded(
                "staging", lambda: own_tables_checks(engines[staging.conn_id], staging.description)
            )
        )
        if staging is not picsweb:  # the PICSWeb side keeps the work tables and its audit
            report.add(
                _guarded(
                    "picsweb.own",
                    lambda: own_tables_checks(
                        engines[picsweb.conn_id],
                        picsweb.description,
                        project_tables.PICSWEB_SIDE_TABLES,
                        prefix="picsweb.own",
                        title="PICSWeb database (the sync's work tables and audit there)",
                    ),
                )
            )
        sample: Sample | None = None
        if onefile is not None:
            hook = PreflightHook(args.onefile_conn_id, lookup)
            description = f"connection {args.onefile_conn_id!r} at {onefile.host}"
            checks, sample = _guarded(
                "onefile",
                lambda: onefile_checks(
                    hook, description, facts.organisation_ids, facts.environment
                ),
                (None,),
            )
            report.add(checks)
        report.add(_guarded("first_run", lambda: first_run_checks(facts, sample)))
    finally:
        for engine in engines.values():
            engine.dispose()
    return report.redacted(redact), redact


def _guarded(area: str, work: Callable, extra: tuple = ()):
    """``work()``, or a blocking check saying the checks of ``area`` themselves failed (with
    ``extra`` filling the rest of ``work``'s answer)."""
    try:
        return work()
    except Exception as exc:  # one area's failure must not hide the others' findings
        failed = Check(
            f"{area}.error",
            Level.BLOCKING,
            f"{area} checks",
            f"could not be completed: {type(exc).__name__}: {exc}",
            "fix what the error names and run the preflight again",
        )
        return ([failed], *extra) if extra else [failed]


def main(argv: Sequence[str] | None = None, lookup: connections.Lookup | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    # Logs (Airflow's, the hook's) go to stderr: stdout holds only the table or the JSON.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            report, _ = run(args, lookup or connections.airflow_lookup())
    except connections.ConnectionProblem as exc:
        if args.json:
            error = {"result": "error", "exit_code": EXIT_CANNOT_RUN, "error": str(exc)}
            print(json.dumps(error), file=out)
        else:
            print(f"preflight could not run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if args.json:
        print(report.as_json(), file=out)
    else:
        width = min(max(shutil.get_terminal_size((100, 20)).columns, 80), 140)
        heading = ["OneFile <-> PICSWeb sync: preflight (read-only; nothing was changed)"]
        print(report.as_table(width=width, heading=heading), end="", file=out)
    return report.exit_code
