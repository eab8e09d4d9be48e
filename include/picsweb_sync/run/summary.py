"""What one run did, in a few numbers: the run summary, and its ``sync_run_summary`` row.

:func:`run_summary` computes the summary of a run from the sync's own tables
(``sync_run_count``: what each task recorded; ``sync_reject``: rows set aside;
``sync_outbox``: what was sent to OneFile). It is stored as JSON in
``sync_run_summary.summary`` (one row per run: :func:`open_run_summary`,
:func:`store_run_summary`, :func:`read_run_summary`), shown as the run's note in the Airflow
grid (``picsweb_sync.run.note_text``) and on the sync page, and checked against the run's
threshold Params (``picsweb_sync.run.thresholds``).

The summary holds every key of :data:`SUMMARY_KEYS` (an integer, 0 when none), plus
``dry_run`` (bool) and ``rejects_by_kind`` (kind -> count, where the kind is a reject's
reason up to its first ``" ("`` or ``":"``: ``RegistrationNumber``, ``not a JSON object``,
``OneFile refused``, ...). ``rejects`` counts every row set aside except the load
conflicts, which are ``conflicts``. In a dry run the change counts are what the run *would*
change (the dry-run loads and pushes record what they would do under the same names).

What each number is read from:

* ``*_extracted``: the ``staged`` count of every ``extract_<entity>[organisation]`` task.
* ``picsweb_fields_changed`` / ``conflicts``: ``fields_changed`` / ``conflicts`` of
  ``load_qualifications`` and ``load_reviews``, plus the ``fields_reflected`` of
  ``push_reviews`` (what OneFile made of an uploaded review, copied back to PICSWeb; the
  link itself, ``onefile_system_id``, is not counted); ``picsweb_reviews_created``:
  ``reviews_inserted`` of ``load_reviews``. A cleared load counts what its rerun did.
* ``onefile_fields_changed``: the fields of the run's learning-aim updates OneFile
  accepted (``sent`` outbox rows; each row's payload is what was sent);
  ``onefile_reviews_created``: the run's ``sent`` review creates. Both survive a rerun.
  In a dry run nothing is sent: the fields ``push_learning_aims`` would send (its
  ``dry_run:learning_aims`` change set) and the ``sent`` count of ``push_reviews``.
* ``outbox_pending``: the run's outbox rows still to send (``pending`` or ``failed``).
* ``drift``: what still differs between OneFile and PICSWeb after the run, per reason
  (reason -> count, every reason of ``picsweb_sync.rules.drift.REASONS``): the
  ``drift_<reason>`` counts of ``report_drift``'s latest try (a rerun reports again from
  the state of then). Absent when the run made no drift report (a dry run, a run that
  failed before it, a run recorded before it existed): not the same as no difference.

**Reruns.** A task cleared and rerun (or retried after recording its counts) records its
counts again as its next try (``sync_run_try_count``); ``sync_run_count`` keeps only the
latest. The summary's keys say what the run did **in all**: the PICSWeb changes
(``picsweb_fields_changed``, ``picsweb_reviews_created``) add up every try of the loads and
of ``push_reviews``, since each try's writes were real (a rerun finds the first try's
changes already made and counts none of them again); OneFile's come from the outbox and
include every try anyway. What replaces rather than adds stays the latest try's: the rows
extracted (a rerun extract replaces the staging), ``conflicts`` and ``rejects`` (a rerun
load re-finds its conflicts and replaces its rejects), and every count of a dry run (its
tries only previewed, so summing them would count a change twice). When a task of the run
has more than one try, ``reruns`` names each (task -> tries) and ``latest_try`` holds the
counts read from each task's latest try only, i.e. what the rerun did: the same keys,
OneFile's counted from the pushes' ``sent`` (reviews) only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from picsweb_sync.rules.drift import REASONS, UNEXPLAINED
from picsweb_sync.run.task_tries import Counts, added, by_task, count, reruns
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.project_tables.run_record import count_tries

SUMMARY_KEYS: tuple[str, ...] = (
    "learners_extracted",
    "learning_aims_extracted",
    "assessors_extracted",
    "reviews_extracted",
    "picsweb_fields_changed",
    "picsweb_reviews_created",
    "onefile_fields_changed",
    "onefile_reviews_created",
    "rejects",
    "conflicts",
    "outbox_pending",
)
EXTRACTED = {
    "learners_extracted": "extract_learners",
    "learning_aims_extracted": "extract_learning_aims",
    "assessors_extracted": "extract_assessors",
    "reviews_extracted": "extract_reviews",
}
LOADS = ("load_qualifications", "load_reviews")
DRIFT_TASK = "report_drift"  # stages/drift.py: counts drift_<reason>
DRIFT_PREFIX = "drift_"
CONFLICT_KIND = "conflict"  # load.py: "conflict: <field> changed in PICSWeb since ..."


# ----- the summary ------------------------------------------------------------------------
def reject_kind(reason: str | None) -> str:
    """A reject reason's kind: the reason up to its first ``" ("`` or ``":"``."""
    text = (reason or "").strip()
    cut = [i for i in (text.find(" ("), text.find(":")) if i >= 0]
    return (text[: min(cut)] if cut else text).strip() or "unknown"


def run_summary(conn: Connection, run_id: str, dry_run: bool | None = None) -> dict[str, Any]:
    """The summary of run ``run_id`` (see the module doc). ``dry_run`` defaults to what
    the run's ``sync_run_summary`` row says (``False`` without one)."""
    if dry_run is None:
        row = read_run_summary(conn, run_id)
        dry_run = bool(row is not None and row["dry_run"])
    tries = count_tries(conn, run_id)
    latest = by_task({stage: values[-1] for stage, values in tries.items()})
    every = by_task({stage: added(values) for stage, values in tries.items()})
    summary: dict[str, Any] = _task_counts(latest if dry_run else every, latest)
    rerun_tasks = reruns(tries)
    if dry_run:
        summary["onefile_fields_changed"] = _would_send_fields(conn, run_id)
        summary["onefile_reviews_created"] = count(latest, "push_reviews", "sent")
    else:
        summary["onefile_fields_changed"], summary["onefile_reviews_created"] = _sent(conn, run_id)
    summary["outbox_pending"] = _scalar(
        conn,
        sa.select(sa.func.count()).where(
            pt.sync_outbox.c.run_id == run_id, pt.sync_outbox.c.state.in_(("pending", "failed"))
        ),
    )
    reasons = conn.execute(
        sa.select(pt.sync_reject.c.reason).where(pt.sync_reject.c.run_id == run_id)
    ).scalars()
    kinds = Counter(reject_kind(reason) for reason in reasons)
    kinds.pop(CONFLICT_KIND, None)  # counted as conflicts, from the loads' own counts
    summary["rejects"] = sum(kinds.values())
    summary["dry_run"] = bool(dry_run)
    summary["rejects_by_kind"] = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    if DRIFT_TASK in latest:
        recorded = latest[DRIFT_TASK].items()
        drift = {k.removeprefix(DRIFT_PREFIX): n for k, n in recorded if k.startswith(DRIFT_PREFIX)}
        summary["drift"] = drift_by_reason({"drift": drift})
    if rerun_tasks:
        summary["reruns"] = rerun_tasks
        last = _task_counts(latest, latest)
        last["onefile_reviews_created"] = count(latest, "push_reviews", "sent")
        last["onefile_fields_changed"] = None  # the pushes count rows sent, not fields
        for key in ("rejects", "outbox_pending"):  # what the latest tries left, as above
            last[key] = summary[key]
        summary["latest_try"] = last
    return summary


def _task_counts(changes: Counts, latest: Counts) -> dict[str, Any]:
    """The summary's keys read from the tasks' counts: the PICSWeb changes from
    ``changes`` (every try, or the latest), what a rerun replaces from ``latest``."""
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS, 0)
    for key, task in EXTRACTED.items():
        summary[key] = count(latest, task, "staged")
    summary["picsweb_fields_changed"] = sum(
        count(changes, task, "fields_changed") for task in LOADS
    ) + count(changes, "push_reviews", "fields_reflected")
    summary["conflicts"] = sum(count(latest, task, "conflicts") for task in LOADS)
    summary["picsweb_reviews_created"] = count(changes, "load_reviews", "reviews_inserted")
    return summary


def drift_by_reason(summary: Mapping[str, Any]) -> dict[str, int] | None:
    """The summary's differences left per reason, in the report's order (unexplained
    first, then :data:`~picsweb_sync.rules.drift.REASONS`; a reason not on the list after
    them); ``None`` when the run made no drift report."""
    drift = summary.get("drift")
    if not isinstance(drift, Mapping):
        return None
    rank = {reason: n for n, reason in enumerate(REASONS)}
    ordered = sorted(drift, key=lambda reason: (rank.get(reason, len(rank)), reason))
    return {reason: int(drift[reason] or 0) for reason in ordered}


def unexplained(summary: Mapping[str, Any]) -> int:
    """The run's differences no reason explains (0 without a drift report)."""
    return (drift_by_reason(summary) or {}).get(UNEXPLAINED, 0)


def compact(summary: Mapping[str, Any], kinds: int = 10) -> dict[str, Any]:
    """The summary with only its ``kinds`` commonest reject kinds (the rest summed up as
    ``other kinds``), for an XCom: a reason quoting an ID makes a kind per row."""
    by_kind = list(dict(summary.get("rejects_by_kind") or {}).items())
    if len(by_kind) <= kinds:
        return dict(summary)
    kept = dict(by_kind[:kinds]) | {"other kinds": sum(n for _, n in by_kind[kinds:])}
    return {**summary, "rejects_by_kind": kept}


def _sent(conn: Connection, run_id: str) -> tuple[int, int]:
    """(learning-aim fields, review creates) OneFile accepted from this run's outbox."""
    outbox = pt.sync_outbox
    rows = conn.execute(
        sa.select(outbox.c.kind, outbox.c.payload).where(
            outbox.c.run_id == run_id, outbox.c.state == "sent"
        )
    )
    fields = reviews = 0
    for kind, payload in rows:
        if kind == pt.AIM_UPDATE:
            fields += len(json.loads(payload))
        elif kind == pt.REVIEW_CREATE:
            reviews += 1
    return fields, reviews


def _would_send_fields(conn: Connection, run_id: str) -> int:
    """The learning-aim fields a dry run's push would send (``picsweb_sync.run.dry_run``)."""
    from picsweb_sync.run import dry_run

    table = pt.CHANGE_SETS["onefile_updates"]
    return _scalar(
        conn,
        sa.select(sa.func.count()).where(
            table.c.run_id == run_id, table.c.merge_name == dry_run.LEARNING_AIMS
        ),
    )


def _scalar(conn: Connection, stmt: sa.Select) -> int:
    return int(conn.execute(stmt).scalar_one() or 0)


# ----- the sync_run_summary row -------------------------------------------------------------
def _naive_utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is None or when.tzinfo is None:
        return when
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def open_run_summary(
    conn: Connection,
    run_id: str,
    *,
    dag_id: str,
    run_type: str,
    dry_run: bool,
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
    now: dt.datetime | None = None,
) -> None:
    """Create or update the run's ``sync_run_summary`` row: what the run is. A rerun keeps
    ``first_ended_at``, the summary and the thresholds crossed."""
    table = pt.sync_run_summary
    values = {
        "dag_id": dag_id,
        "run_type": run_type,
        "dry_run": bool(dry_run),
        "interval_start": _naive_utc(interval_start),
        "interval_end": _naive_utc(interval_end),
        "updated_at": _naive_utc(now) or pt.utcnow(),
    }
    done = conn.execute(sa.update(table).where(table.c.run_id == run_id).values(values))
    if done.rowcount == 0:
        conn.execute(sa.insert(table).values(run_id=run_id, **values))


def store_run_summary(
    conn: Connection,
    run_id: str,
    summary: Mapping[str, Any],
    *,
    ended_at: dt.datetime | None = None,
    thresholds_crossed: list[str] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Store the run's summary and the thresholds it crossed (none: ``NULL``); with
    ``ended_at``, the run's ``first_ended_at`` unless it already ended once."""
    table = pt.sync_run_summary
    values: dict[str, Any] = {
        "summary": json.dumps(dict(summary), sort_keys=True),
        "thresholds_crossed": "\n".join(thresholds_crossed) if thresholds_crossed else None,
        "updated_at": _naive_utc(now) or pt.utcnow(),
    }
    if ended_at is not None:
        values["first_ended_at"] = sa.func.coalesce(table.c.first_ended_at, _naive_utc(ended_at))
    done = conn.execute(sa.update(table).where(table.c.run_id == run_id).values(values))
    if done.rowcount != 1:
        raise LookupError(f"run {run_id!r} has no sync_run_summary row (start_run opens it)")


def read_run_summary(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The run's ``sync_run_summary`` row, with ``summary`` decoded and
    ``thresholds_crossed`` as a list; ``None`` when there is none."""
    table = pt.sync_run_summary
    row = conn.execute(sa.select(table).where(table.c.run_id == run_id)).one_or_none()
    if row is None:
        return None
    values = dict(row._mapping)
    values["summary"] = json.loads(values["summary"]) if values["summary"] else None
    crossed = values["thresholds_crossed"]
    values["thresholds_crossed"] = crossed.split("\n") if crossed else []
    return values
