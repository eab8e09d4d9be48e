"""The parts of the alert mail a person acts on (``picsweb_sync.run.alerts`` builds and sends it):
the UK day the run covers, the summary under human labels, and what to do first; and the
sending itself, as a plain-text part beside the HTML one.

**The UK day.** A run covers the UK day ending at its logical date (its data interval,
02:00 to 02:00 UK time for a scheduled run); the mail names it as the sync page does, by
the UK date it starts on, and says so when the clocks changed in it (23 or 25 hours).

**What to do first.** One concrete first step per reason the run is in the mail, so the
reader does not have to know the sync to start: rejects over a threshold → the run's page,
where they are grouped by reason; conflicts → nothing at once, they are merged again by
the next run; unexplained differences → the run's drift on the sync page, each one a defect
of the sync to report with its learner, field and values; a failed task → its log in
Airflow and its error kept in ``sync_task_error``; OneFile refusing the token → the
``onefile_api`` connection; writes left unsent; a record that could not be read or was
never written.

**Two parts.** The SMTP provider's hook sends HTML only; :class:`TextAndHtmlHook` adds
the plain-text part first in a ``multipart/alternative`` message (mail readers show the
last part they can: the HTML; a text-only reader or a log search gets the text), and
leaves the provider everything else (TLS, SSL, login, retries, timeout).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from picsweb_sync.onefile.ukdates import covered_day
from picsweb_sync.rules.drift import UNEXPLAINED
from picsweb_sync.run.summary import drift_by_reason
from picsweb_sync.run.summary_labels import drift_label, label

if TYPE_CHECKING:
    from picsweb_sync.run.alerts import RunFacts

_AUTH = re.compile(r"OneFileAuthenticationError|\bHTTP 40[13]\b|\b40[13]\b.*Authentication")
_ERROR_CHARS = 300
THRESHOLDS_TASK = "check_thresholds"  # fails on purpose when a threshold is crossed
THRESHOLDS_FAILURE = "thresholds crossed"  # how its failure text starts (summary.py)


# ----- the UK day --------------------------------------------------------------------------
def uk_day(start: dt.datetime | None, end: dt.datetime | None) -> str | None:
    """``Sat 28 Mar 2026 (28 Mar 02:00 – 29 Mar 02:00 UK time, 23 hours: the clocks went
    forward)`` for a data interval (naive or aware UTC); ``None`` without an end
    (:func:`picsweb_sync.onefile.ukdates.covered_day` reads the interval)."""
    day = covered_day(start, end)
    if day is None:
        return None
    begins, ends, hours = day
    text = f"{begins:%a %d %b %Y} ({begins:%d %b %H:%M} – {ends:%d %b %H:%M} UK time"
    if hours != 24:
        changed = {23: ": the clocks went forward", 25: ": the clocks went back"}
        text += f", {hours:g} hours{changed.get(int(hours), '') if hours.is_integer() else ''}"
    return text + ")"


# ----- the summary under labels ------------------------------------------------------------
def _value(value: Any) -> str:
    if value is None:
        return "not counted"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{label(str(k))}: {_value(v)}" for k, v in value.items())
        return inner or "none"
    return str(value)


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """One ``Label: value`` line per key, the nested counts on their key's line. The kinds
    of rejects and the task names are shown as they are (they are not summary keys); the
    drift report's reasons under their labels, in the report's order, those with none
    left out but the unexplained ones."""
    lines = []
    for key, value in summary.items():
        drift = drift_by_reason(summary) if key == "drift" else None
        if drift is not None:
            shown = [f"{drift_label(r)}: {n}" for r, n in drift.items() if n or r == UNEXPLAINED]
            lines.append(f"{label(key)}: {', '.join(shown)}")
        elif key in ("rejects_by_kind", "reruns") and isinstance(value, Mapping):
            shown = ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
            lines.append(f"{label(key)}: {shown}")
        else:
            lines.append(f"{label(key)}: {_value(value)}")
    return lines


# ----- what to do first --------------------------------------------------------------------
def _commonest_reject(summary: Mapping[str, Any] | None) -> str:
    kinds = dict((summary or {}).get("rejects_by_kind") or {})
    if not kinds:
        return ""
    kind, count = max(kinds.items(), key=lambda kv: kv[1])
    return f" (the commonest: {kind}, {count})"


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def first_steps(facts: RunFacts, links: Mapping[str, str], run_id: str) -> list[str]:
    """What to do first, one line per reason the run is in the mail (see the module doc)."""
    page, airflow = links["sync page"], links["Airflow"]
    steps: list[str] = []
    crossed = " ".join(facts.thresholds_crossed)
    if re.search(r"\brejects\b", crossed):
        steps.append(
            f"Rejects: open the run's page on the sync page ({page}); the rows set aside "
            f"are grouped by reason{_commonest_reject(facts.summary)}. Correct the rows "
            "where they came from: the next run picks them up."
        )
    if re.search(r"\bconflicts\b", crossed):
        steps.append(
            "Conflicts: nothing to do at once. Each field PICSWeb changed after the run "
            "read it was left as PICSWeb has it, and is merged again by the next run from "
            f"both systems as they are then. The run's page lists them ({page})."
        )
    if re.search(r"\bmax_unexplained\b", crossed):
        left = (drift_by_reason(facts.summary or {}) or {}).get(UNEXPLAINED)
        how_many = f" ({left})" if left else ""
        steps.append(
            f"Unexplained differences{how_many}: open the run's drift on the sync page "
            f"({page}), reason unexplained first. An unexplained difference is a defect of "
            "the sync: a field the rules would change that the run neither changed nor left "
            "for a known reason (a reject, a conflict, the outbox, the settings, ...). "
            "Report each to the sync's maintainers with its learner, field and both values; "
            "the rest of the run's data is synced."
        )
    errors = [e for e in facts.task_errors if not (crossed and e["task"] == THRESHOLDS_TASK)]
    for error in errors:
        task, text = error["task"], _short(error["error"])
        tried = f" (try {error['try_number']})" if error.get("try_number") else ""
        if _AUTH.search(text):
            steps.append(
                f"{task}{tried}: OneFile refused the sync's customer token. Check the "
                "password of the onefile_api connection (the customer token of this "
                "OneFile environment), then clear the task in Airflow."
            )
        else:
            steps.append(
                f"{task} failed{tried}: open its log in Airflow ({airflow}); its error is "
                f"also kept in the staging database's sync_task_error table (run_id "
                f"{run_id}) and on the run's page under Failed tries: {text}"
            )
    failed = bool(facts.failure) and not facts.failure.startswith(THRESHOLDS_FAILURE)
    if failed and not errors:  # e.g. a task killed before it could record its error
        steps.append(
            f"Open the run in Airflow ({airflow}) and read the log of its first failed "
            f"task: {_short(facts.failure or '')}"
        )
    pending = int((facts.summary or {}).get("outbox_pending") or 0)
    if pending:
        steps.append(
            f"{pending} OneFile writes were not sent: the next run plans them again from "
            "both systems as they are then; to send them now, clear this run's push task."
        )
    if facts.read_error:
        steps.append(
            "The run's record could not be read: check that the dag-processor reaches the "
            "staging database (the run's staging_conn_id connection), then open the run's "
            f"page ({page})."
        )
    elif facts.outcome is None and not facts.failure:
        steps.append(
            "The sync recorded nothing of this run (it failed before start_run, e.g. a "
            f"preflight or the pool): open the run in Airflow ({airflow}) and read the log "
            "of its first failed task."
        )
    return steps


# ----- sending both parts ------------------------------------------------------------------
def text_and_html_notifier(text: str, **kwargs: Any) -> Any:
    """The SMTP provider's ``SmtpNotifier`` (``kwargs``: to, from_email, subject,
    html_content, smtp_conn_id) sending ``text`` as a plain-text part beside the HTML."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    class TextAndHtmlNotifier(SmtpNotifier):
        @property
        def hook(self) -> Any:  # SmtpNotifier's own is a cached_property of the plain hook
            return text_and_html_hook(
                text, smtp_conn_id=self.smtp_conn_id, auth_type=self.auth_type
            )

    return TextAndHtmlNotifier(mime_subtype="alternative", **kwargs)


def text_and_html_hook(text: str, **kwargs: Any) -> Any:
    """An ``SmtpHook`` whose messages hold ``text`` (plain) first, then the HTML."""
    from email.mime.text import MIMEText

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    class TextAndHtmlHook(SmtpHook):
        def _build_mime_message(self, *args: Any, **options: Any) -> Any:
            options["mime_subtype"] = "alternative"
            message, recipients = super()._build_mime_message(*args, **options)
            plain = MIMEText(text, "plain", options.get("mime_charset") or "utf-8")
            message.set_payload([plain, *message.get_payload()])
            return message, recipients

    return TextAndHtmlHook(**kwargs)
