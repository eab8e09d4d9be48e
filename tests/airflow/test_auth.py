"""The real Airflow's users: named users of the simple auth manager (no all-admins mode),
each signing in with its own password through ``POST /auth/token``; a viewer may read
runs but not edit them, and nobody gets in without a password."""

from __future__ import annotations

import requests


def _token(airflow, username: str, password: str) -> requests.Response:
    return requests.post(
        f"{airflow.base_url}/auth/token",
        json={"username": username, "password": password},
        timeout=90,
    )


def test_each_user_signs_in_with_its_own_password(airflow_world):
    airflow = airflow_world.airflow
    assert airflow.password("admin") != airflow.password("viewer")
    for user in ("admin", "viewer"):
        assert _token(airflow, user, airflow.password(user)).status_code == 201, user
    assert _token(airflow, "admin", airflow.password("viewer")).status_code == 401
    assert _token(airflow, "admin", "").status_code in (400, 401, 422)
    # All-admins mode is off: no token without credentials.
    assert requests.get(f"{airflow.base_url}/auth/token", timeout=90).status_code == 403


def test_a_viewer_reads_dag_runs_but_cannot_set_a_note(airflow_world):
    airflow = airflow_world.airflow
    headers = {"Authorization": f"Bearer {airflow.token('viewer')}"}
    runs = f"{airflow.base_url}/api/v2/dags/{airflow_world.dag_id}/dagRuns"
    assert requests.get(runs, headers=headers, timeout=90).status_code == 200
    answer = requests.patch(f"{runs}/no-such-run", json={"note": "x"}, headers=headers, timeout=90)
    assert answer.status_code == 403
    assert requests.get(runs, timeout=90).status_code == 401


def test_no_password_is_printed_by_the_api_server(airflow_world):
    airflow = airflow_world.airflow
    log = airflow.component_log("api-server").read_text(errors="replace")
    assert "api-server" in airflow.procs and log  # the server ran and wrote a log
    for user in airflow.users:
        assert airflow.password(user) not in log, f"{user}'s password is in the log"
