"""The run's note, as text: its summary in a few markdown lines and the link to its page.

:func:`summary_text` turns a run's summary (``picsweb_sync.run.summary``) into the note
shown in the Airflow grid (under Airflow's 1,000 characters), ending with the link to the
run's page on the sync page (:func:`run_page_url`). A run with a drift report gets a line
of its differences left by reason, the unexplained ones (a defect) named first. Setting the note in Airflow is
``picsweb_sync.run.note``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from picsweb_sync.rules.drift import UNEXPLAINED
from picsweb_sync.run.summary import SUMMARY_KEYS, drift_by_reason
from picsweb_sync.run.summary_labels import drift_label

log = logging.getLogger(__name__)

# Where the sync page plugin is mounted, relative to Airflow's ``[api] base_url``.
PAGE_PREFIX = "/onefile-sync"
# Airflow keeps a DAG run's note in 1,000 characters.
NOTE_MAX_CHARS = 1000
_FAILURE_CHARS = 300
_KINDS_SHOWN = 4


def run_page_url(run_id: str, base_url: str | None = None) -> str:
    """The run's page on the sync page: ``[api] base_url`` + ``/onefile-sync/runs/<run id>``
    (relative when no base URL is configured)."""
    if base_url is None:
        base_url = _configured_base_url()
    return f"{(base_url or '').rstrip('/')}{PAGE_PREFIX}/runs/{quote(run_id, safe='')}"


def _configured_base_url() -> str | None:
    try:
        from airflow.sdk import conf
    except ImportError:  # plain scripts without Airflow
        return None
    try:
        return conf.get("api", "base_url", fallback=None) or None
    except Exception:  # a broken config must not fail the run's record
        log.warning("could not read [api] base_url", exc_info=True)
        return None


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def summary_text(
    summary: Mapping[str, Any],
    outcome: str,
    page_url: str,
    failure: str | None = None,
    thresholds: list[str] | None = None,
) -> str:
    """The run's note: a few markdown lines (under Airflow's 1,000 characters), ending
    with the link to the run's sync page."""
    s = {key: int(summary.get(key, 0)) for key in SUMMARY_KEYS}
    dry = bool(summary.get("dry_run"))
    if thresholds:
        head = "⚠️ thresholds crossed: " + "; ".join(thresholds) + " (the data was synced)"
    elif outcome == "failed":
        head = "❌ failed"
    elif outcome == "integration_off":
        head = "⏸️ integration off in PICSWeb's OneFile Settings: nothing synced"
    elif outcome == "running":
        head = "⏳ running"
    else:
        head = "✅ synced"
    if dry:
        head = "🧪 dry run (nothing written) · " + head
    extracted = (
        f"extracted {s['learners_extracted']} learners, {s['learning_aims_extracted']} aims, "
        f"{s['assessors_extracted']} assessors, {s['reviews_extracted']} reviews"
    )
    changes = (
        f"PICSWeb: {_plural(s['picsweb_fields_changed'], 'field')} changed, "
        f"{_plural(s['picsweb_reviews_created'], 'review')} created · "
        f"OneFile: {_plural(s['onefile_fields_changed'], 'field')} changed, "
        f"{_plural(s['onefile_reviews_created'], 'review')} created"
    )
    if dry:
        changes = "would change " + changes
    kinds = dict(summary.get("rejects_by_kind") or {})
    shown = [f"{kind}: {n}" for kind, n in list(kinds.items())[:_KINDS_SHOWN]]
    if len(kinds) > _KINDS_SHOWN:
        shown.append(f"{len(kinds) - _KINDS_SHOWN} more kinds")
    problems = _plural(s["rejects"], "reject") + (f" ({', '.join(shown)})" if shown else "")
    problems += (
        f" · {_plural(s['conflicts'], 'conflict')} · {s['outbox_pending']} outbox rows pending"
    )
    lines = [head, extracted, changes, problems]
    drift = drift_line(summary)
    if drift:
        lines.append(drift)
    if summary.get("reruns") and summary.get("latest_try"):
        lines.insert(3, _rerun_line(summary["reruns"], summary["latest_try"]))
    if failure and not thresholds:
        first = " ".join(failure.split())
        if len(first) > _FAILURE_CHARS:
            first = first[: _FAILURE_CHARS - 1] + "…"
        lines.insert(1, first)
    link = f"[details]({page_url})"
    text = "  \n".join(lines)  # a markdown line break: one item a line in the grid
    room = NOTE_MAX_CHARS - len(link) - len("  \n")
    if len(text) > room:
        text = text[: room - 1] + "…"
    return f"{text}  \n{link}"


def drift_line(summary: Mapping[str, Any]) -> str | None:
    """The note's line for the run's drift report (``None``: the run made none), e.g.
    ``drift: 3 differences left, 0 unexplained (not linked 2, pending in the outbox 1)``."""
    drift = drift_by_reason(summary)
    if drift is None:
        return None
    total, left = sum(drift.values()), drift.get(UNEXPLAINED, 0)
    if not total:
        return "drift: no difference left between OneFile and PICSWeb"
    explained = [
        f"{_lower(drift_label(reason))} {n}"
        for reason, n in drift.items()
        if n and reason != UNEXPLAINED
    ]
    why = f" ({', '.join(explained)})" if explained else ""
    if left:
        return (
            f"⚠️ drift: {left} unexplained (a defect of the sync), "
            f"{_plural(total, 'difference')} left in all{why}"
        )
    return f"drift: {_plural(total, 'difference')} left, 0 unexplained{why}"


def _lower(label: str) -> str:
    return label[:1].lower() + label[1:]


def _rerun_line(reruns: Mapping[str, int], latest: Mapping[str, Any]) -> str:
    """The note's line for a run with a task rerun: the counts above are in all."""
    tasks = ", ".join(f"{task} ({n} tries)" for task, n in reruns.items())
    fields, created = latest.get("picsweb_fields_changed"), latest.get("picsweb_reviews_created")
    return (
        f"in all; rerun of {tasks}: PICSWeb {_plural(int(fields or 0), 'field')} changed, "
        f"{_plural(int(created or 0), 'review')} created by the latest try"
    )
