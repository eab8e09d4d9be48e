"""run_note.publish against a local HTTP server that answers as Airflow's api-server does
(``POST /auth/token``, ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}``) or not at all.
The real api-server's answer is tested in tests/airflow/test_alerts_and_notes.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from picsweb_sync.run import note as run_note

PASSWORD = "pw-Zq81-never-logged"
TOKEN = "tok-Jx55-never-logged"
DAG_ID = "onefile_picsweb_sync"
RUN_ID = "manual__2026-03-20T02:00:00+00:00"


class ApiStub:
    """An api-server stand-in: ``token_status`` / ``patch_status`` say what it answers,
    ``delay`` how long it takes; ``calls`` records (method, path, query, body, headers)."""

    def __init__(self, token_status=201, patch_status=200, delay=0.0):
        self.token_status, self.patch_status, self.delay = token_status, patch_status, delay
        self.calls: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                stub.calls.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "body": json.loads(self.rfile.read(length) or b"null"),
                        "auth": self.headers.get("Authorization"),
                    }
                )
                time.sleep(stub.delay)

            def do_POST(self):  # noqa: N802
                self._record()
                body = stub.calls[-1]["body"]
                ok = body == {"username": "sync", "password": PASSWORD}
                status = stub.token_status if ok else 401
                self._answer(status, {"access_token": TOKEN} if status == 201 else {})

            def do_PATCH(self):  # noqa: N802
                self._record()
                if stub.calls[-1]["auth"] != f"Bearer {TOKEN}":
                    return self._answer(401, {"detail": "Not authenticated"})
                self._answer(stub.patch_status, {"note": stub.calls[-1]["body"]["note"]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _use_connection(monkeypatch, port, password=PASSWORD, **fields):
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": port, "login": "sync"}
    conn.update(password=password, **fields)
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="picsweb_sync.run.note")
    return caplog


def test_the_note_is_set_through_the_rest_api(monkeypatch, logs):
    with ApiStub() as api:
        _use_connection(monkeypatch, api.port)
        assert run_note.publish(DAG_ID, RUN_ID, "3 learners, 0 rejects") is True
    token, patch = api.calls
    assert token["path"] == "/auth/token"
    assert patch["method"] == "PATCH"
    # The run id's "+" and ":" are quoted, so the server reads the id as it is.
    assert (
        patch["path"] == f"/api/v2/dags/{DAG_ID}/dagRuns/manual__2026-03-20T02%3A00%3A00%2B00%3A00"
    )
    assert patch["query"] == {"update_mask": ["note"]}
    assert patch["body"] == {"note": "3 learners, 0 rejects"}
    assert PASSWORD not in logs.text and TOKEN not in logs.text


def test_a_long_note_is_cut_to_what_airflow_keeps(monkeypatch):
    with ApiStub() as api:
        _use_connection(monkeypatch, api.port)
        assert run_note.publish(DAG_ID, RUN_ID, "x" * 5000) is True
    note = api.calls[-1]["body"]["note"]
    assert len(note) == run_note.MAX_NOTE_CHARS and note.endswith("…")


@pytest.mark.parametrize(
    ("stub", "password", "expected"),
    [
        pytest.param({"token_status": 201}, "wrong-password-x1", "HTTP 401", id="wrong password"),
        pytest.param({"token_status": 500}, PASSWORD, "HTTP 500", id="sign-in fails"),
        pytest.param({"patch_status": 403}, PASSWORD, "HTTP 403", id="may not edit runs"),
        pytest.param({"patch_status": 404}, PASSWORD, "HTTP 404", id="no such run"),
        pytest.param({"patch_status": 422}, PASSWORD, "HTTP 422", id="note refused"),
        pytest.param({"delay": 2.0}, PASSWORD, "Timeout", id="timeout"),
    ],
)
def test_a_failure_is_a_warning_naming_the_status_never_a_secret(
    monkeypatch, logs, stub, password, expected
):
    monkeypatch.setattr(run_note, "TIMEOUT_SECONDS", 0.5)
    with ApiStub(**stub) as api:
        _use_connection(monkeypatch, api.port, password=password)
        assert run_note.publish(DAG_ID, RUN_ID, "note") is False
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert expected in warnings[0].getMessage()
    for secret in (PASSWORD, "wrong-password-x1", TOKEN):
        assert secret not in logs.text


def test_a_server_that_is_down_is_a_warning(monkeypatch, logs):
    with ApiStub() as api:
        port = api.port
    _use_connection(monkeypatch, port)  # nothing listens there any more
    assert run_note.publish(DAG_ID, RUN_ID, "note") is False
    (warning,) = [r for r in logs.records if r.levelno == logging.WARNING]
    assert "ConnectionError" in warning.getMessage()
    assert PASSWORD not in logs.text


def test_without_the_connection_it_says_once_where_the_summary_is(monkeypatch, logs):
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API", raising=False)
    monkeypatch.setattr(run_note, "_said_not_configured", False)
    assert run_note.publish(DAG_ID, RUN_ID, "note") is False
    assert run_note.publish(DAG_ID, "manual__other", "note") is False
    said = [r.getMessage() for r in logs.records if "run note not set" in r.getMessage()]
    assert len(said) == 1
    assert "airflow_api" in said[0]
    assert "/onefile-sync/runs/manual__2026-03-20T02%3A00%3A00%2B00%3A00" in said[0]
    assert not [r for r in logs.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "airflow", "port": 8080}, "http://airflow:8080"),
        ({"host": "airflow", "port": 443, "schema": "https"}, "https://airflow:443"),
        ({"host": "airflow.example.org", "schema": "https"}, "https://airflow.example.org"),
        ({"host": "https://example.org/airflow/"}, "https://example.org/airflow"),
        ({"host": "http://127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
        ({"host": "http://127.0.0.1:9090", "port": 8080}, "http://127.0.0.1:9090"),
        ({"host": " airflow ", "schema": ""}, "http://airflow"),
    ],
)
def test_the_base_url_from_the_connection(fields, expected):
    conn = SimpleNamespace(**{"host": None, "port": None, "schema": None, **fields})
    assert run_note.base_url(conn) == expected


def test_a_connection_without_a_host_is_a_warning(monkeypatch, logs):
    _use_connection(monkeypatch, 8080, host="")
    assert run_note.publish(DAG_ID, RUN_ID, "note") is False
    (warning,) = [r for r in logs.records if r.levelno == logging.WARNING]
    assert "no host" in warning.getMessage()
