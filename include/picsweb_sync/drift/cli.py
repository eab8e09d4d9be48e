"""``python -m picsweb_sync.drift`` (``make drift``): are OneFile and PICSWeb in step now,
and if not, why not? Read-only, for the whole population.

It reads the DAG's own Airflow connections the preflight's way
(:mod:`picsweb_sync.preflight.connections`: ``AIRFLOW_CONN_*`` variables, a secrets backend,
the Airflow home's metadata database), PICSWeb's OneFile Settings (the organisations, the
download and upload switches), OneFile now (:mod:`.population`), PICSWeb as it is and the
latest real run's evidence (:mod:`.last_run`), and prints every difference's reason
(:mod:`picsweb_sync.rules.drift`). Both databases are read in a transaction that is rolled
back, ``READ ONLY`` on PostgreSQL (:func:`picsweb_sync.preflight.read_only.read_only`);
OneFile is only searched.

Exit code 0: no unexplained difference (the systems are in step, or every difference has a
reason); 1: some difference no reason explains (a defect of the sync); 2: it could not run
(bad arguments, a connection that cannot be read or reached, a malformed settings row).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from onefile.hook import OneFileApiError, OneFileAuthenticationError
from picsweb_sync.drift import output
from picsweb_sync.drift.last_run import evidence_now, find_last_run
from picsweb_sync.drift.population import read_population
from picsweb_sync.preflight import connections
from picsweb_sync.preflight.findings import Redactor
from picsweb_sync.preflight.onefile import PreflightHook
from picsweb_sync.preflight.read_only import error_text, read_only
from picsweb_sync.rules import drift
from picsweb_sync.run.settings import SettingsError, read_settings
from picsweb_sync.run.window import plan_run
from picsweb_sync.stages.drift import picsweb_frames

NO_RUN_YET = "no run of the sync yet: the first run syncs it"
_RUN_WORDS = "changed after this run's merge read it: the next run syncs it"


class CannotRun(Exception):
    """The report could not be made (exit code 2); the message says why, no secret in it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m picsweb_sync.drift",
        description="Read-only report of what still differs between OneFile and PICSWeb, "
        "and why, for the whole population. Exit code 0: no unexplained difference; 1: "
        "some difference no reason explains; 2: the report could not run.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (counts and every row)")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write every row to FILE")
    parser.add_argument(
        "--limit", type=_not_negative, default=20, help="rows shown per reason (default 20)"
    )
    parser.add_argument(
        "--days-before",
        type=_not_negative,
        default=30,
        help="review window: days before now (the DAG's review_days_before, default 30)",
    )
    parser.add_argument(
        "--days-after",
        type=_not_negative,
        default=30,
        help="review window: days after now (the DAG's review_days_after, default 30)",
    )
    connections.add_connection_arguments(parser)
    return parser


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def run(
    args: argparse.Namespace, lookup: connections.Lookup, now: datetime | None = None
) -> output.Result:
    """The report; raises :class:`CannotRun` or ``ConnectionProblem``."""
    picsweb, staging = connections.databases(lookup, args)
    onefile = connections.get(lookup, args.onefile_conn_id, "OneFile")
    redact = Redactor([picsweb.password, staging.password, getattr(onefile, "password", None)])
    now = now or datetime.now(UTC)
    plan = plan_run(
        run_type="manual",
        interval_start=now,
        interval_end=now,
        days_before=args.days_before,
        days_after=args.days_after,
    )
    window = (_naive_utc(plan.review_from), _naive_utc(plan.review_to))
    engines = {picsweb.conn_id: picsweb.engine()}
    engines.setdefault(staging.conn_id, staging.engine())
    try:
        with read_only(engines[picsweb.conn_id]) as conn:
            settings = read_settings(conn)
        if not settings.organisation_ids:
            raise CannotRun("PICSWeb's OneFile Settings name no organisation: nothing to compare")
        hook = PreflightHook(
            args.onefile_conn_id, lookup, max_retries=None, backoff_max_seconds=None
        )
        population = read_population(
            hook, settings.organisation_ids, plan.review_from, plan.review_to
        )
        with read_only(engines[staging.conn_id]) as conn:
            found = find_last_run(conn)
            evidence = evidence_now(
                conn,
                found,
                download=settings.download_review_data,
                upload=settings.upload_review_data,
                window=window,
                fresh_rejects=population.rejects,
            )
        with read_only(engines[picsweb.conn_id]) as conn:
            picsweb_now = picsweb_frames(conn)
    except SettingsError as exc:
        raise CannotRun(redact(str(exc))) from None
    except OneFileAuthenticationError as exc:
        raise CannotRun(redact(f"OneFile refused the customer token: {exc}")) from None
    except OneFileApiError as exc:
        raise CannotRun(redact(f"OneFile: {exc}")) from None
    except SQLAlchemyError as exc:
        raise CannotRun(redact(f"database: {error_text(exc)}")) from None
    finally:
        for engine in engines.values():
            engine.dispose()
    report = drift.drift_report(**population.frames, **picsweb_now, evidence=evidence)
    if found.run is None:
        report = _no_run_yet(report)
    return output.Result(
        report=report,
        organisations=settings.organisation_ids,
        window=window,
        onefile_rows=population.counts(),
        onefile_rejects=len(population.rejects),
        calls=population.calls,
        found=found,
        download=settings.download_review_data,
        upload=settings.upload_review_data,
    )


def _no_run_yet(report: pd.DataFrame) -> pd.DataFrame:
    """With no run to name, a change no run planned is for the first run."""
    said = report["detail"].eq(_RUN_WORDS).fillna(False)
    return report.assign(detail=report["detail"].mask(said, NO_RUN_YET))


def main(argv: Sequence[str] | None = None, lookup: connections.Lookup | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    # Logs (Airflow's, the hook's) go to stderr: stdout holds only the text or the JSON.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = run(args, lookup or connections.airflow_lookup())
    except (connections.ConnectionProblem, CannotRun) as exc:
        if args.json:
            error = {"result": "error", "exit_code": output.EXIT_CANNOT_RUN, "error": str(exc)}
            print(json.dumps(error), file=out)
        else:
            print(f"drift report could not run: {exc}", file=sys.stderr)
        return output.EXIT_CANNOT_RUN
    if args.csv is not None:
        output.write_csv(result.report, args.csv)
    if args.json:
        print(output.as_json(result), file=out)
    else:
        print(output.as_text(result, args.limit), end="", file=out)
    return result.exit_code


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
