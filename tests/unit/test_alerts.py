"""The alert notifier: the mail it builds from a run's record (table-driven), and the mail
it sends to a real local SMTP server (aiosmtpd) from a real staging database (SQLite),
as the dag-processor calls it. The real scheduler's path is tests/airflow."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from airflow.sdk import DAG

from picsweb_sync.run import alerts
from picsweb_sync.storage import project_tables as pt
from tests.support.failed_runs import record_failed_run
from tests.support.smtp import SmtpServer

DAG_ID = "onefile_picsweb_sync"
RUN_ID = "manual__2026-03-20T02:00:00+00:00"
QUOTED = "manual__2026-03-20T02%3A00%3A00%2B00%3A00"
BASE = "http://airflow.example.org"
SUMMARY = {"learners_extracted": 8, "rejects": 2, "rejects_by_kind": {"RegistrationNumber": 2}}
TOKEN = "cust-7d1f0c2a9e-secret"


@pytest.mark.parametrize(
    ("facts", "subject_end", "has", "has_not"),
    [
        pytest.param(
            alerts.RunFacts(outcome="failed", failure="extract_learners: HTTPError 401"),
            "failed",
            ["Failure:", "extract_learners: HTTPError 401"],
            ["Thresholds crossed:"],
            id="failed",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: rejects 2 > max_rejects 0 (the run's data was synced)",
                summary=SUMMARY,
                thresholds_crossed=["rejects 2 > max_rejects 0"],
            ),
            "thresholds crossed",
            ["Thresholds crossed:\nrejects 2 > max_rejects 0", "Learners extracted: 8"],
            [],
            id="thresholds only",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="load_reviews: ConcurrentChangeError",
                thresholds_crossed=["conflicts 60 > max_conflicts 50"],
            ),
            "failed, thresholds crossed",
            ["conflicts 60 > max_conflicts 50", "load_reviews: ConcurrentChangeError"],
            [],
            id="failed and thresholds",
        ),
        pytest.param(
            alerts.RunFacts(),
            "failed",
            ["Airflow ended the run as failed (task_failure)"],
            ["Summary:"],
            id="no record (start_run never ran)",
        ),
        pytest.param(
            alerts.RunFacts(read_error="OperationalError reading picsweb_db"),
            "failed",
            ["could not be read: OperationalError reading picsweb_db"],
            [],
            id="staging not readable",
        ),
        pytest.param(
            alerts.RunFacts(failure=f"push_reviews: refused token {TOKEN}"),
            "failed",
            ["push_reviews: refused token ***"],
            [TOKEN],
            id="a secret in the failure is masked",
        ),
        pytest.param(
            alerts.RunFacts(failure="<script>alert(1)</script>"),
            "failed",
            ["<script>alert(1)</script>"],  # the text keeps it; the HTML escapes it
            [],
            id="markup in the failure",
        ),
    ],
)
def test_the_alert_names_the_run_links_it_and_says_why(facts, subject_end, has, has_not):
    alert = alerts.build_alert(
        dag_id=DAG_ID,
        run_id=RUN_ID,
        facts=facts,
        base_url=BASE + "/",
        reason="task_failure",
        secrets=[TOKEN],
    )
    assert alert.subject == f"[{DAG_ID}] run {RUN_ID} {subject_end}"
    assert f"{BASE}/dags/{DAG_ID}/runs/{QUOTED}" in alert.text
    assert f"{BASE}/onefile-sync/runs/{QUOTED}" in alert.text
    for text in has:
        assert text in alert.text
    for text in has_not:
        assert text not in alert.text and text not in alert.html
    assert "<script>" not in alert.html


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"dag_run": SimpleNamespace(conf={"staging_conn_id": "a"}), "params": {}}, "a"),
        ({"params": {"staging_conn_id": "b"}}, "b"),
        ({"params": {"picsweb_conn_id": "c"}}, "c"),
        ({"dag": SimpleNamespace(params={"staging_conn_id": "d"})}, "d"),
        ({}, "picsweb_db"),
    ],
)
def test_the_staging_connection_is_the_runs_param(context, expected):
    assert alerts._staging_conn_id(context) == expected


# ----- sent for real -----------------------------------------------------------------------
@pytest.fixture
def smtp():
    with SmtpServer(password="smtp-pw-4c2b91") as server:
        yield server


@pytest.fixture
def staging(tmp_path, monkeypatch):
    path = tmp_path / "staging.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    pt.ensure_project_tables(engine)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERT_STAGING", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_ONEFILE_API",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "password": TOKEN}),
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    yield engine
    engine.dispose()


def _context(**params):
    """What the dag-processor passes a DAG's failure callback when the run has no task
    to build a full context from: the DAG, the run id and the reason."""
    return {
        "dag": DAG(DAG_ID, schedule=None),
        "run_id": RUN_ID,
        "reason": "task_failure",
        "params": {"staging_conn_id": "alert_staging", **params},
    }


def _record(engine, failure, summary=None, crossed=None):
    record_failed_run(
        engine, RUN_ID, dag_id=DAG_ID, failure=failure, summary=summary, crossed=crossed
    )


def test_a_failed_run_sends_one_mail_through_the_connection(smtp, staging, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SYNC_ALERTS_SMTP",
        smtp.connection_json("team@example.org, lead@example.org", "airflow@example.org"),
    )
    _record(staging, f"push_reviews: HTTPError 401 for token {TOKEN}", SUMMARY)
    alerts.SyncAlertNotifier()(_context())
    (mail,) = smtp.received()
    assert mail.rcpt_tos == ["team@example.org", "lead@example.org"]
    assert mail.mail_from == "airflow@example.org"
    assert mail.subject == f"[{DAG_ID}] run {RUN_ID} failed"
    assert f"{BASE}/dags/{DAG_ID}/runs/{QUOTED}" in mail.text
    assert f"{BASE}/onefile-sync/runs/{QUOTED}" in mail.text
    assert "push_reviews: HTTPError 401 for token ***" in mail.text
    assert "Learners extracted: 8" in mail.text
    for secret in (TOKEN, smtp.password):
        assert secret.encode() not in mail.raw


def test_a_run_that_crossed_a_threshold_says_so(smtp, staging, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SYNC_ALERTS_SMTP", smtp.connection_json("team@example.org", "a@example.org")
    )
    _record(
        staging,
        "thresholds crossed: rejects 2 > max_rejects 0 (the run's data was synced)",
        SUMMARY,
        "rejects 2 > max_rejects 0",
    )
    alerts.SyncAlertNotifier()(_context())
    (mail,) = smtp.received()
    assert mail.subject.endswith("thresholds crossed")
    assert "rejects 2 > max_rejects 0" in mail.text


def test_without_the_connection_alerts_are_off(smtp, staging, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="picsweb_sync.run.alerts")
    monkeypatch.delenv("AIRFLOW_CONN_SYNC_ALERTS_SMTP", raising=False)
    _record(staging, "x: y")
    alerts.SyncAlertNotifier()(_context())
    assert smtp.received() == []
    assert "alerts are off: there is no sync_alerts_smtp connection" in caplog.text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"extra": {"from_email": "a@example.org"}}, 'no "to"', id="no recipient"),
        pytest.param({"password": "wrong-pw-93ab"}, "SMTPAuthenticationError", id="refused"),
        pytest.param({"port": 1}, "ConnectionRefusedError", id="server down"),
    ],
)
def test_a_mail_that_cannot_go_is_logged_never_raised(
    smtp, staging, monkeypatch, caplog, change, expected
):
    caplog.set_level(logging.INFO, logger="picsweb_sync.run.alerts")
    conn = smtp.connection("team@example.org", "a@example.org")
    conn.update({k: v for k, v in change.items() if k != "extra"})
    if "extra" in change:
        conn["extra"] = {**{k: v for k, v in conn["extra"].items() if k != "to"}, **change["extra"]}
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_ALERTS_SMTP", json.dumps(conn))
    _record(staging, "x: y")
    alerts.SyncAlertNotifier()(_context())  # does not raise
    assert smtp.received() == []
    assert expected in caplog.text
    for secret in (smtp.password, "wrong-pw-93ab"):
        assert secret not in caplog.text
