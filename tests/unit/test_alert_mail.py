"""The alert mail a person reads (``picsweb_sync.run.alert_mail``): the UK day the run covers
(clock changes included), the summary under human labels, one first step per reason the
run is in the mail (table-driven); and the mail as sent to a real local SMTP server
(aiosmtpd) from a real staging database (SQLite), parsed with the ``email`` package: a
plain-text and an HTML part, each with the labels, the UK day and the first steps, and no
secret in either."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from airflow.sdk import DAG

from picsweb_sync.rules.drift import REASONS
from picsweb_sync.run import alert_mail, alerts
from picsweb_sync.run.summary import SUMMARY_KEYS
from picsweb_sync.run.summary_labels import DRIFT_LABELS, SUMMARY_LABELS, drift_label, label
from picsweb_sync.storage import project_tables as pt
from tests.support.failed_runs import record_failed_run
from tests.support.smtp import SmtpServer

DAG_ID = "onefile_picsweb_sync"
RUN_ID = "scheduled__2026-03-29T01:00:00+00:00"
BASE = "http://airflow.example.org"
TOKEN = "cust-91c3e07ab2-secret"
LINKS = alerts.run_links(BASE, DAG_ID, RUN_ID)
PAGE, AIRFLOW = LINKS["sync page"], LINKS["Airflow"]
UTC = dt.UTC


def naive(*fields: int) -> dt.datetime:
    """A naive UTC instant, as the staging database stores the data interval."""
    return dt.datetime(*fields, tzinfo=UTC).replace(tzinfo=None)


# ----- the UK day ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(
            naive(2026, 6, 10, 1),
            naive(2026, 6, 11, 1),
            "Wed 10 Jun 2026 (10 Jun 02:00 – 11 Jun 02:00 UK time)",
            id="summer day (BST)",
        ),
        pytest.param(
            naive(2026, 1, 14, 2),
            naive(2026, 1, 15, 2),
            "Wed 14 Jan 2026 (14 Jan 02:00 – 15 Jan 02:00 UK time)",
            id="winter day (GMT)",
        ),
        pytest.param(
            naive(2026, 3, 28, 2),
            naive(2026, 3, 29, 1),
            "Sat 28 Mar 2026 (28 Mar 02:00 – 29 Mar 02:00 UK time, 23 hours: "
            "the clocks went forward)",
            id="the run of 29 March 2026 (clocks forward)",
        ),
        pytest.param(
            naive(2026, 10, 24, 1),
            naive(2026, 10, 25, 2),
            "Sat 24 Oct 2026 (24 Oct 02:00 – 25 Oct 02:00 UK time, 25 hours: the clocks went back)",
            id="the run of 25 October 2026 (clocks back)",
        ),
        pytest.param(
            dt.datetime(2026, 10, 24, 1, tzinfo=UTC),
            dt.datetime(2026, 10, 25, 2, tzinfo=UTC),
            "Sat 24 Oct 2026 (24 Oct 02:00 – 25 Oct 02:00 UK time, 25 hours: the clocks went back)",
            id="aware (Airflow's own interval)",
        ),
        pytest.param(
            naive(2026, 6, 11, 1),
            naive(2026, 6, 11, 1),
            "Wed 10 Jun 2026 (10 Jun 02:00 – 11 Jun 02:00 UK time)",
            id="no length: the 24 hours ending at it",
        ),
        pytest.param(
            naive(2026, 6, 10, 13),
            naive(2026, 6, 11, 1),
            "Wed 10 Jun 2026 (10 Jun 14:00 – 11 Jun 02:00 UK time, 12 hours)",
            id="a shorter interval says its hours",
        ),
        pytest.param(None, None, None, id="not known"),
    ],
)
def test_the_mail_names_the_uk_day_the_run_covers(start, end, expected):
    assert alert_mail.uk_day(start, end) == expected


# ----- labels ----------------------------------------------------------------------------------
def test_every_summary_key_has_a_label_and_no_snake_case_reaches_the_mail():
    assert set(SUMMARY_KEYS) <= set(SUMMARY_LABELS)
    summary = {key: 1 for key in SUMMARY_KEYS} | {
        "dry_run": False,
        "rejects_by_kind": {"RegistrationNumber": 1},
        "reruns": {"push_reviews": 2},
        "latest_try": {"picsweb_reviews_created": 0, "onefile_fields_changed": None},
        "drift": dict.fromkeys(REASONS, 1),
    }
    lines = alert_mail.summary_lines(summary)
    assert "PICSWeb reviews created: 1" in lines
    assert "What the latest try did: PICSWeb reviews created: 0, OneFile fields changed: " in (
        "\n".join(lines)
    )
    snake_case = [k for k in [*summary, *summary["latest_try"], *summary["drift"]] if "_" in k]
    for key in snake_case:
        assert key not in "\n".join(lines), key


@pytest.mark.parametrize(
    ("key", "expected"),
    [("picsweb_reviews_created", "PICSWeb reviews created"), ("new_count", "New count")],
)
def test_a_key_reads_as_its_label_or_its_words(key, expected):
    assert label(key) == expected


def test_every_drift_reason_has_a_label_in_the_report_s_order():
    assert tuple(DRIFT_LABELS) == REASONS
    assert drift_label("not_linked") == "Not linked"
    assert drift_label("a_new_reason") == "A new reason"


@pytest.mark.parametrize(
    ("drift", "line"),
    [
        pytest.param(
            dict.fromkeys(REASONS, 0) | {"pending_outbox": 1, "not_linked": 2},
            "Differences left between OneFile and PICSWeb (drift report): Unexplained: 0, "
            "Not linked: 2, Pending in the outbox: 1",
            id="explained: the reasons with some, unexplained always",
        ),
        pytest.param(
            {"reject": 1, "unexplained": 2},
            "Differences left between OneFile and PICSWeb (drift report): Unexplained: 2, "
            "Set aside as a reject: 1",
            id="unexplained first whatever the stored order",
        ),
        pytest.param(
            dict.fromkeys(REASONS, 0),
            "Differences left between OneFile and PICSWeb (drift report): Unexplained: 0",
            id="nothing left",
        ),
    ],
)
def test_the_mail_shows_the_drift_counts_under_their_labels(drift, line):
    lines = alert_mail.summary_lines({"rejects": 0, "drift": drift})
    assert lines == ["Rows set aside (rejects): 0", line]


# ----- what to do first ------------------------------------------------------------------------
def _error(task, error, try_number=3):
    return {"task": task, "try_number": try_number, "error": error}


SUMMARY = {"rejects": 7, "rejects_by_kind": {"RegistrationNumber": 5, "not a JSON object": 2}}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: rejects 7 > max_rejects 0",
                summary=SUMMARY,
                thresholds_crossed=["rejects 7 > max_rejects 0"],
                task_errors=[_error("check_thresholds", "AirflowFailException: crossed", 1)],
            ),
            [
                f"Rejects: open the run's page on the sync page ({PAGE}); the rows set aside "
                "are grouped by reason (the commonest: RegistrationNumber, 5)."
            ],
            id="rejects over a threshold: the run's page",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: ...",
                thresholds_crossed=[
                    "rejects 7 of 40 rows (17.5 %) > max_reject_share 10 %",
                    "rejects 7 > max_rejects 0",
                ],
            ),
            ["Rejects: open the run's page"],
            id="two reject thresholds: one step",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: ...",
                thresholds_crossed=["conflicts 60 > max_conflicts 50"],
            ),
            ["Conflicts: nothing to do at once. Each field PICSWeb changed after the run"],
            id="conflicts: merged again next run",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: unexplained differences 2 > max_unexplained 0",
                summary={"drift": {"unexplained": 2, "not_linked": 5}},
                thresholds_crossed=["unexplained differences 2 > max_unexplained 0"],
                task_errors=[_error("check_thresholds", "AirflowFailException: crossed", 1)],
            ),
            [
                f"Unexplained differences (2): open the run's drift on the sync page ({PAGE}), "
                "reason unexplained first. An unexplained difference is a defect of the sync: "
            ],
            id="unexplained differences: the run's drift, a defect to report",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: ...",
                thresholds_crossed=[
                    "rejects 7 > max_rejects 0",
                    "unexplained differences 1 > max_unexplained 0",
                ],
            ),
            ["Rejects: open the run's page", "Unexplained differences: open the run's drift"],
            id="rejects and unexplained: one step each",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="push_reviews (try 3): ConnectionError: reset",
                task_errors=[_error("push_reviews", "ConnectionError: reset")],
            ),
            [
                f"push_reviews failed (try 3): open its log in Airflow ({AIRFLOW}); its error "
                "is also kept in the staging database's sync_task_error table (run_id "
                f"{RUN_ID}) and on the run's page under Failed tries: ConnectionError: reset"
            ],
            id="a failed task: its log and sync_task_error",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="extract_learners: ...",
                task_errors=[
                    _error(
                        "extract_learners (organisation_id=11)",
                        "OneFileAuthenticationError: POST /Authentication with the onefile_api "
                        "connection answered HTTP 401",
                        1,
                    )
                ],
            ),
            [
                "extract_learners (organisation_id=11) (try 1): OneFile refused the sync's "
                "customer token. Check the password of the onefile_api connection"
            ],
            id="token refused: the onefile_api connection",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="push_reviews (try 1): no error recorded (the process was killed)",
                thresholds_crossed=["conflicts 60 > max_conflicts 50"],
            ),
            ["Conflicts:", f"Open the run in Airflow ({AIRFLOW}) and read the log"],
            id="failed and thresholds, no task error",
        ),
        pytest.param(
            alerts.RunFacts(outcome="failed", failure="load_reviews: LockLost"),
            [f"Open the run in Airflow ({AIRFLOW}) and read the log of its first failed task"],
            id="a failure without a task error",
        ),
        pytest.param(
            alerts.RunFacts(
                outcome="failed",
                failure="thresholds crossed: ...",
                thresholds_crossed=["conflicts 60 > max_conflicts 50"],
                summary={"outbox_pending": 4},
            ),
            ["Conflicts:", "4 OneFile writes were not sent"],
            id="writes left unsent",
        ),
        pytest.param(
            alerts.RunFacts(read_error="OperationalError reading picsweb_db"),
            ["The run's record could not be read: check that the dag-processor reaches"],
            id="the record could not be read",
        ),
        pytest.param(
            alerts.RunFacts(),
            ["The sync recorded nothing of this run (it failed before start_run"],
            id="nothing recorded",
        ),
    ],
)
def test_each_reason_in_the_mail_comes_with_one_first_step(facts, expected):
    """``expected``: how each step starts, in order (one step per reason, no more)."""
    steps = alert_mail.first_steps(facts, LINKS, RUN_ID)
    assert len(steps) == len(expected), steps
    for start, step in zip(expected, steps, strict=True):
        assert step.startswith(start), (start, step)
    conflicts = [s for s in steps if s.startswith("Conflicts")]
    assert all("is merged again by the next run" in s for s in conflicts)


# ----- sent for real ---------------------------------------------------------------------------
@pytest.fixture
def smtp():
    with SmtpServer(password="smtp-pw-7e20d4") as server:
        yield server


@pytest.fixture
def staging(tmp_path, monkeypatch, smtp):
    path = tmp_path / "staging.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    pt.ensure_project_tables(engine)
    env = {
        "AIRFLOW_CONN_MAIL_STAGING": {"conn_type": "sqlite", "host": str(path)},
        "AIRFLOW_CONN_ONEFILE_API": {"conn_type": "http", "host": "127.0.0.1", "password": TOKEN},
    }
    for name, conn in env.items():
        monkeypatch.setenv(name, json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SYNC_ALERTS_SMTP", smtp.connection_json("team@example.org", "a@example.org")
    )
    yield engine
    engine.dispose()


def _record(engine, **record):
    record_failed_run(engine, RUN_ID, dag_id=DAG_ID, run_type="scheduled", **record)


def _send(engine, dag=None, **record):
    _record(engine, **record)
    context = {
        "dag": dag or DAG(DAG_ID, schedule=None),
        "run_id": RUN_ID,
        "reason": "task_failure",
        "params": {"staging_conn_id": "mail_staging"},
    }
    alerts.SyncAlertNotifier()(context)


def _parts(mail) -> dict[str, str]:
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    parts = [p for p in message.walk() if p.get_content_maintype() == "text"]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    return {
        p.get_content_subtype(): p.get_payload(decode=True).decode(p.get_content_charset())
        for p in parts
    }


@pytest.mark.parametrize(
    ("interval", "day"),
    [
        pytest.param(
            (naive(2026, 3, 28, 2), naive(2026, 3, 29, 1)),
            "Sat 28 Mar 2026 (28 Mar 02:00 – 29 Mar 02:00 UK time, 23 hours: the clocks went "
            "forward)",
            id="clocks forward",
        ),
        pytest.param(
            (naive(2026, 10, 24, 1), naive(2026, 10, 25, 2)),
            "Sat 24 Oct 2026 (24 Oct 02:00 – 25 Oct 02:00 UK time, 25 hours: the clocks went back)",
            id="clocks back",
        ),
    ],
)
def test_the_mail_has_a_text_and_an_html_part_saying_the_same(smtp, staging, interval, day):
    _send(
        staging,
        interval=interval,
        failure="push_reviews (try 2): ConnectionError: reset",
        summary={key: 0 for key in SUMMARY_KEYS} | {"picsweb_reviews_created": 3, "rejects": 2},
        errors=[("push_reviews", "ConnectionError: reset")],
    )
    (mail,) = smtp.received()
    parts = _parts(mail)
    text, html = parts["plain"], parts["html"]
    assert f"UK day covered: {day}" in text
    assert f"UK day covered: <b>{day}</b>" in html
    for line in ("PICSWeb reviews created: 3", "Rows set aside (rejects): 2"):
        assert f"\n{line}\n" in text
        assert f"<li>{line}</li>" in html
    assert "picsweb_reviews_created" not in text and "picsweb_reviews_created" not in html
    first = "What to do first:\npush_reviews failed (try 2): open its log in Airflow ("
    assert first in text
    assert "<h3>What to do first</h3><ol><li>push_reviews failed (try 2): open its log" in html
    assert "sync_task_error" in text and "sync_task_error" in html


def test_no_secret_reaches_either_part(smtp, staging):
    leaked = f"HTTPError 401 for url https://onefile.example/api?token={TOKEN}"
    _send(
        staging,
        interval=(naive(2026, 6, 10, 1), naive(2026, 6, 11, 1)),
        failure=f"extract_learners: {leaked}",
        summary={"rejects_by_kind": {f"refused {TOKEN}": 1}, "rejects": 1},
        crossed="rejects 1 > max_rejects 0",
        errors=[("extract_learners", leaked), ("push_reviews", f"password {smtp.password}")],
    )
    (mail,) = smtp.received()
    parts = _parts(mail)
    for subtype, body in parts.items():
        for secret in (TOKEN, smtp.password):
            assert secret not in body, (subtype, secret)
        assert "***" in body, subtype  # masked, not dropped: the reader sees where


def test_the_mail_goes_from_dag_test_too(smtp, staging):
    """``dag.test()`` (``airflow dags test``) calls the callback with a SerializedDAG, which
    cannot build a template environment: there is nothing to render, and the mail goes."""
    _send(
        staging,
        dag=SimpleNamespace(dag_id=DAG_ID, params={}),
        interval=(naive(2026, 6, 10, 1), naive(2026, 6, 11, 1)),
        failure="push_reviews (try 1): ConnectionError: reset",
        summary={"rejects": 0},
    )
    (mail,) = smtp.received()
    assert "UK day covered: Wed 10 Jun 2026" in _parts(mail)["plain"]
