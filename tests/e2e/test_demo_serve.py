"""`python -m sync_demo --picsweb-url URL --serve` prints no secret, and the lines it prints
work: sourced by bash, each ``export`` holds the connection, read from a private file,
that reaches the same simulator and database.

Run as a newcomer runs it (a subprocess, PICSWeb on the tests' PostgreSQL with a password
in its URL, a customer token of the test's own), stopped by SIGTERM.
"""

from __future__ import annotations

import json
import secrets
import signal
import stat
import subprocess

import requests
import sqlalchemy as sa

from picsweb_sync.storage.engines import url_for_connection
from tests.unit.test_demo_cli import DemoProcess

PROCESSES = ("api-server", "scheduler", "dag-processor", "worker", "triggerer")


def _serve(tmp_path, url: str, token: str) -> tuple[DemoProcess, str]:
    demo = DemoProcess(
        "--picsweb-url",
        url,
        "--serve",
        "--port",
        "0",
        "--customer-token",
        token,
        "--secrets-dir",
        str(tmp_path / "secrets"),
        "--today",
        "2026-03-17",
    )
    try:
        out = demo.wait_until_serving()
    except BaseException:
        demo.stop(signal.SIGKILL)
        raise
    return demo, out


def _sourced(lines: list[str]) -> dict[str, str]:
    """The variables the printed ``export`` lines set, as bash sets them."""
    script = "\n".join(
        [*lines, 'python3 -c "import json, os; print(json.dumps(dict(os.environ)))"']
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    return {k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}


def test_serve_prints_no_secret_and_its_lines_give_the_connections(tmp_path, pg_url):
    password = f"pw-{secrets.token_hex(8)}"
    token = f"cust-{secrets.token_hex(8)}"
    # The tests' server trusts local connections: the password is there only to be hidden.
    url = sa.engine.make_url(pg_url).set(password=password).render_as_string(hide_password=False)
    demo, out = _serve(tmp_path, url, token)
    try:
        code, rest = demo.stop(signal.SIGTERM)
        said = out + rest + demo.err
        assert code == 0, said
        assert password not in said
        assert token not in said

        # Every Airflow process is named, with the command that starts it.
        for name in PROCESSES:
            assert f"  {name}:" in out, name
        for command in ("api-server", "scheduler", "dag-processor", "celery worker"):
            assert f"    airflow {command}" in out.splitlines(), command

        exports = [line.strip() for line in out.splitlines() if line.strip().startswith("export ")]
        assert exports and all('="$(cat ' in line for line in exports), exports
        worker = exports[exports.index(next(e for e in exports if "ONEFILE_API" in e)) :]
        env = _sourced(worker)
        assert set(env) == {"AIRFLOW_CONN_ONEFILE_API", "AIRFLOW_CONN_PICSWEB_DB"}

        # The files are private.
        for path in (tmp_path / "secrets").iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700

        # What the variables hold reaches the same database and simulator.
        conn = json.loads(env["AIRFLOW_CONN_PICSWEB_DB"])
        again = url_for_connection(
            conn["conn_type"],
            conn.get("host"),
            conn.get("port"),
            conn.get("login"),
            conn.get("password"),
            conn.get("schema"),
        )
        given = sa.engine.make_url(url)
        assert (again.username, again.password, again.host, again.port, again.database) == (
            given.username,
            password,
            given.host,
            given.port,
            given.database,
        )
        onefile = json.loads(env["AIRFLOW_CONN_ONEFILE_API"])
        assert onefile["password"] == token
        assert onefile["host"] == demo.value("OneFile base URL:")
    finally:
        if demo.process.poll() is None:
            demo.stop(signal.SIGKILL)


def test_the_printed_token_lets_no_one_in_but_the_file_does(tmp_path, pg_url):
    """The simulator is really served with the token the file holds (and so, with the
    lines sourced, the sync's hook logs in with it)."""
    token = f"cust-{secrets.token_hex(8)}"
    demo, _out = _serve(tmp_path, pg_url, token)
    try:
        onefile = json.loads((tmp_path / "secrets" / "onefile_api").read_text())
        base = onefile["host"]
        good = requests.post(
            f"{base}/Authentication", headers={"X-CustomerToken": onefile["password"]}, timeout=5
        )
        assert good.status_code == 200
        bad = requests.post(f"{base}/Authentication", headers={"X-CustomerToken": "x"}, timeout=5)
        assert bad.status_code in (401, 403)
    finally:
        demo.stop(signal.SIGTERM)
