"""Alerts: a mail when a run fails or crosses a threshold, through Airflow's notifier
mechanism and the SMTP provider.

:class:`SyncAlertNotifier` is the DAG's ``on_failure_callback`` (a run that crossed a
threshold fails too: its ``check_thresholds`` task). It mails through the connection
``sync_alerts_smtp`` (type smtp: host, port, login/password when the server wants them;
the extra holds the recipients and the sender, e.g. ``{"to": "team@example.org",
"from_email": "airflow@example.org"}``, plus the SMTP provider's own options such as
``disable_tls`` / ``disable_ssl``). Without that connection alerts are off: nothing is sent
and the log says so.

Where it runs: in Airflow 3.3 a DAG's ``on_failure_callback`` runs in the **dag-processor**
(the scheduler sends a ``DagCallbackRequest``; a dag-processor child parses the DAG file
and calls the callback, see ``airflow.dag_processing.processor._execute_dag_callbacks``).
So the dag-processor needs what a task needs: ``include/`` importable (the project's
``.pth`` file), the connections (``sync_alerts_smtp``, the staging database's) resolvable
there (environment variables, the metadata DB or a secrets backend), and
``[api] base_url`` set for the links.

The mail names the DAG and run and says "failed" or "thresholds crossed", and the UK day
the run covers; it links the run in the Airflow UI (``{base_url}/dags/{dag_id}/runs/{run_id}``)
and on the sync page (``{base_url}/onefile-sync/runs/{run_id}``), says what to do first,
and holds the run's failure text, failed tasks and summary (under human labels) read from
the staging database (``sync_run.failure``, ``sync_task_error``, ``sync_run_summary``; the
staging connection is the run's ``staging_conn_id`` Param). It is sent as plain text and
HTML (``multipart/alternative``, :mod:`picsweb_sync.run.alert_mail`). No secret reaches it:
every password of the run's connections is masked in both parts, on top of Airflow's own
secrets masker.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from airflow.sdk.bases.notifier import BaseNotifier

from picsweb_sync.run import alert_mail

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "sync_alerts_smtp"
SYNC_PAGE_PREFIX = "/onefile-sync"
THRESHOLDS_FAILURE_PREFIX = alert_mail.THRESHOLDS_FAILURE
_MASK = "***"
_TASKS_SHOWN = 5


@dataclass
class RunFacts:
    """What the staging database says of a run (``None``/empty where it says nothing)."""

    outcome: str | None = None
    failure: str | None = None
    summary: dict[str, Any] | None = None
    thresholds_crossed: list[str] = field(default_factory=list)
    read_error: str | None = None
    interval_start: datetime | None = None  # the data interval, naive UTC
    interval_end: datetime | None = None
    task_errors: list[dict[str, Any]] = field(default_factory=list)  # last try of each task


@dataclass(frozen=True)
class Alert:
    subject: str
    html: str
    text: str


class SyncAlertNotifier(BaseNotifier):
    """Mails the team about a failed run (see the module doc); a no-op without the
    ``smtp_conn_id`` connection. Never raises: a failed alert is logged by the
    dag-processor's log, not a second failure."""

    template_fields = ()  # nothing rendered: the mail is built from the run's facts

    def __init__(self, smtp_conn_id: str = ALERTS_CONN_ID):
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render; and ``dag.test()`` (``airflow dags test``) passes a
        SerializedDAG, which has no template environment to build one from."""

    def notify(self, context: Mapping[str, Any]) -> None:
        try:
            smtp = _connection(self.smtp_conn_id)
        except Exception as exc:
            if type(exc).__name__ == "AirflowNotFoundException":
                log.info("alerts are off: there is no %s connection", self.smtp_conn_id)
            else:
                log.warning(
                    "alert not sent: cannot read the %s connection (%s)",
                    self.smtp_conn_id,
                    type(exc).__name__,
                )
            return
        extra = _extra(smtp)
        to = extra.get("to")
        if not to:
            log.warning(
                'alert not sent: the %s connection has no "to" in its extra (e.g. '
                '{"to": "team@example.org", "from_email": "airflow@example.org"})',
                self.smtp_conn_id,
            )
            return
        run_id = str(context.get("run_id") or getattr(context.get("dag_run"), "run_id", ""))
        dag_id = _dag_id(context)
        secrets = _connection_secrets(context, smtp)
        facts = read_run_facts(_staging_conn_id(context), run_id)
        if facts.interval_end is None:  # no record: the interval Airflow gave the run
            facts.interval_start, facts.interval_end = _interval(context)
        alert = build_alert(
            dag_id=dag_id,
            run_id=run_id,
            facts=facts,
            base_url=_base_url(),
            reason=str(context.get("reason") or ""),
            secrets=secrets,
        )
        try:
            alert_mail.text_and_html_notifier(
                alert.text,
                to=to,
                from_email=extra.get("from_email"),
                subject=alert.subject,
                html_content=alert.html,
                smtp_conn_id=self.smtp_conn_id,
            ).notify(context)
        except Exception as exc:  # never the callback's own failure; no secret in the log
            log.error(
                "alert for run %s not sent through %s: %s",
                run_id,
                self.smtp_conn_id,
                mask(f"{type(exc).__name__}: {exc}", secrets),
            )
            return
        log.info("alert for run %s sent to %s: %s", run_id, to, alert.subject)


# ----- the run's facts ---------------------------------------------------------------------
def read_run_facts(staging_conn_id: str, run_id: str) -> RunFacts:
    """The run's record and summary from the staging database; what cannot be read is
    said in ``read_error`` (the alert goes out anyway)."""
    try:
        from picsweb_sync.storage.engines import engine_for_connection

        with engine_for_connection(staging_conn_id).connect() as conn:
            return run_facts(conn, run_id)
    except Exception as exc:
        log.warning("could not read run %s from %s", run_id, staging_conn_id, exc_info=True)
        return RunFacts(read_error=f"{type(exc).__name__} reading {staging_conn_id}")


def run_facts(conn: Any, run_id: str) -> RunFacts:
    import sqlalchemy as sa

    from picsweb_sync.storage import project_tables as pt

    facts = RunFacts()
    record = conn.execute(
        sa.select(pt.sync_run.c.outcome, pt.sync_run.c.failure).where(
            pt.sync_run.c.run_id == run_id
        )
    ).one_or_none()
    if record is not None:
        facts.outcome, facts.failure = record.outcome, record.failure
    summary = pt.sync_run_summary
    row = conn.execute(
        sa.select(
            summary.c.summary,
            summary.c.thresholds_crossed,
            summary.c.interval_start,
            summary.c.interval_end,
        ).where(summary.c.run_id == run_id)
    ).one_or_none()
    errors = pt.task_errors(conn, run_id).drop_duplicates("task")  # the last try of each
    facts.task_errors = [
        {"task": e.task, "try_number": _number(e.try_number), "error": e.error}
        for e in errors.itertuples(index=False)
    ][:_TASKS_SHOWN]
    if row is not None:
        facts.interval_start, facts.interval_end = row.interval_start, row.interval_end
        if row.summary:
            try:
                decoded = json.loads(row.summary)
                facts.summary = decoded if isinstance(decoded, dict) else None
            except ValueError:
                facts.read_error = "the stored summary is not JSON"
        facts.thresholds_crossed = [t for t in (row.thresholds_crossed or "").split("\n") if t]
    return facts


def _number(value: Any) -> int | None:
    try:
        return None if value is None or value != value else int(value)  # NaN from a frame
    except (TypeError, ValueError):
        return None


# ----- the mail ----------------------------------------------------------------------------
def run_links(base_url: str, dag_id: str, run_id: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    quoted = quote(run_id, safe="")
    return {
        "Airflow": f"{base}/dags/{quote(dag_id, safe='')}/runs/{quoted}",
        "sync page": f"{base}{SYNC_PAGE_PREFIX}/runs/{quoted}",
    }


def build_alert(
    *,
    dag_id: str,
    run_id: str,
    facts: RunFacts,
    base_url: str,
    reason: str = "",
    secrets: Iterable[str] = (),
) -> Alert:
    """The mail: subject, HTML body and the same as plain text (its two parts)."""
    crossed = facts.thresholds_crossed
    other_failure = bool(facts.failure) and not facts.failure.startswith(THRESHOLDS_FAILURE_PREFIX)
    if crossed and not other_failure:
        what = "thresholds crossed"
    elif crossed:
        what = "failed, thresholds crossed"
    else:
        what = "failed"
    subject = f"[{dag_id}] run {run_id} {what}"
    links = run_links(base_url, dag_id, run_id)
    sections: list[tuple[str, list[str]]] = []
    steps = alert_mail.first_steps(facts, links, run_id)
    if steps:
        sections.append(("What to do first", steps))
    if crossed:
        sections.append(("Thresholds crossed", crossed))
    if facts.failure:
        sections.append(("Failure", [facts.failure]))
    elif not crossed:
        sections.append(
            ("Failure", [f"Airflow ended the run as failed ({reason or 'no reason given'})."])
        )
    if facts.summary is not None:
        sections.append(("Summary", alert_mail.summary_lines(facts.summary)))
    if facts.read_error:
        sections.append(("Not known", [f"the run's record could not be read: {facts.read_error}"]))
    day = alert_mail.uk_day(facts.interval_start, facts.interval_end) or "not known"
    lines = [f"Run {run_id} of {dag_id} {what}.", f"UK day covered: {day}", ""]
    lines += [f"{name}: {url}" for name, url in links.items()]
    for title, body in sections:
        lines += ["", f"{title}:", *body]
    text = mask("\n".join(lines), secrets)
    parts = [
        f"<p>Run <b>{_h(run_id)}</b> of <b>{_h(dag_id)}</b> {_h(what)}.</p>",
        f"<p>UK day covered: <b>{_h(day)}</b></p>",
        "<ul>",
    ]
    parts += [
        f'<li><a href="{_h(url)}">{_h(name)}</a>: {_h(url)}</li>' for name, url in links.items()
    ]
    parts.append("</ul>")
    for title, body in sections:
        tag = "ol" if title == "What to do first" else "ul"
        items = "".join(f"<li>{_h(line)}</li>" for line in body)
        parts.append(f"<h3>{_h(title)}</h3><{tag}>{items}</{tag}>")
    return Alert(subject=mask(subject, secrets), html=mask("\n".join(parts), secrets), text=text)


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (and its HTML-escaped form) replaced by ``***``, then
    through Airflow's secrets masker."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, _MASK).replace(_h(secret), _MASK)
        text = text.replace(quote(secret, safe=""), _MASK)
    try:
        from airflow.sdk.log import redact

        text = str(redact(text))
    except Exception:  # noqa: S110 (the explicit masking above is the guarantee)
        pass
    return text


# ----- Airflow's side ----------------------------------------------------------------------
def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def _extra(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:
        return {}
    return extra if isinstance(extra, dict) else {}


def _dag_id(context: Mapping[str, Any]) -> str:
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    return str(getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or "")


def param(context: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A run's Param: the run's conf over the context's params over the DAG's defaults."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if isinstance(conf, Mapping) and conf.get(name) is not None:
        return conf[name]
    params = context.get("params") or {}
    try:
        value = params.get(name)
    except Exception:
        value = None
    if value is not None:
        return value
    dag_params = getattr(context.get("dag"), "params", None) or {}
    try:
        value = dag_params.get(name)
    except Exception:
        value = None
    return default if value is None else value


def _interval(context: Mapping[str, Any]) -> tuple[Any, Any]:
    """The run's data interval as Airflow passed it (a task's context, or its dag_run)."""
    dag_run = context.get("dag_run")
    start = context.get("data_interval_start") or getattr(dag_run, "data_interval_start", None)
    end = context.get("data_interval_end") or getattr(dag_run, "data_interval_end", None)
    return start, end


def _staging_conn_id(context: Mapping[str, Any]) -> str:
    return str(
        param(context, "staging_conn_id") or param(context, "picsweb_conn_id") or "picsweb_db"
    )


def _connection_secrets(context: Mapping[str, Any], smtp: Any) -> list[str]:
    """The passwords of every connection the run names, to mask in the mail."""
    found = [smtp.password or ""]
    names = {
        str(param(context, key, default))
        for key, default in (
            ("onefile_conn_id", "onefile_api"),
            ("picsweb_conn_id", "picsweb_db"),
            ("staging_conn_id", "picsweb_db"),
        )
    }
    names.add("airflow_api")
    for name in names:
        try:
            conn = _connection(name)
        except Exception:  # noqa: S112 (a connection that is not there holds no secret)
            continue
        found.append(conn.password or "")
        found += [str(v) for k, v in _extra(conn).items() if _secret_key(k) and v]
    return [s for s in found if s]


def _secret_key(key: str) -> bool:
    key = key.lower()
    return any(word in key for word in ("password", "secret", "token", "key"))


def _base_url() -> str:
    try:
        from airflow.sdk import conf

        return conf.get("api", "base_url", fallback="") or ""
    except Exception:
        return ""
