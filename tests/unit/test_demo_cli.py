"""`python -m sync_demo --picsweb-url URL --serve`: the demo PICSWeb in a database of
one's choosing and the matching OneFile simulator, for one's own Airflow.

The command line is driven as a newcomer drives it, in a subprocess: what it prints is read
back, the simulator is called over HTTP, the database is opened, and the process is stopped
by a signal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa

from onefile_simulator import __main__ as simulator_cli
from onefile_simulator import generate_dataset
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from picsweb_sync.storage.engines import url_for_connection
from sync_demo import cli, dag_runs

UK = ZoneInfo("Europe/London")
REPO = Path(__file__).resolve().parents[2]
READY = "Serving until Ctrl-C (SIGINT) or SIGTERM."
SUMMER_DAY = dt.date(2026, 7, 15)  # no clock change within 30 days, every day in summer time


class DemoProcess:
    """``python -m sync_demo`` in a subprocess; its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sync_demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.err = ""

    def wait_until_serving(self, timeout: float = 60) -> str:
        """The output up to the ready line (fails with everything said if it never comes)."""
        done = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.strip() == READY:
                    break
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(timeout) or READY not in self.lines:
            self.stop(signal.SIGKILL)
            pytest.fail("the demo never served:\n" + "\n".join(self.lines) + self.err)
        return "\n".join(self.lines)

    def value(self, label: str) -> str:
        (line,) = [line for line in self.lines if line.startswith(label)]
        return line[len(label) :].split()[0]

    def stop(self, signum: int) -> tuple[int, str]:
        """Send ``signum``; returns the exit code and the rest of stdout."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            rest, self.err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, self.err = self.process.communicate()
        return self.process.returncode, rest


@pytest.fixture
def start_demo(tmp_path):
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        # The connections' files go to the test's own directory, not the repository's.
        started.append(DemoProcess(*args, "--secrets-dir", str(tmp_path / "secrets")))
        return started[-1]

    yield start
    for process in started:  # a failed test leaves nothing running
        if process.process.poll() is None:
            process.stop(signal.SIGKILL)


def _login(base_url: str, token: str) -> requests.Session:
    answer = requests.post(
        f"{base_url}/Authentication", headers={"X-CustomerToken": token}, timeout=5
    )
    answer.raise_for_status()
    session = requests.Session()
    session.headers["X-TokenID"] = answer.text.strip().strip('"')
    return session


def _search(session: requests.Session, base_url: str, entity: str, body: dict) -> list[dict]:
    rows, page = [], 1
    while True:
        answer = session.post(f"{base_url}/{entity}/Search/{page}/100", json=body, timeout=5)
        assert answer.status_code in (200, 204), answer.text
        batch = answer.json() if answer.status_code == 200 and answer.text.strip() else []
        rows += batch
        if len(batch) < 100:
            return rows
        page += 1


def _table_counts(url: str) -> Counter:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(
                {
                    table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                    for table in pw.metadata.sorted_tables
                }
            )
    finally:
        engine.dispose()


# ----- the served demo, end to end ----------------------------------------------------------
def test_serve_builds_picsweb_serves_onefile_prints_the_connections_and_stops_on_sigint(
    tmp_path, start_demo
):
    db_file = tmp_path / "own" / "picsweb.sqlite"  # a directory that does not exist yet
    url = f"sqlite:///{db_file}"
    run = start_demo("--picsweb-url", url, "--serve", "--port", "0", "--today", "2026-07-15")
    out = run.wait_until_serving()

    # What a newcomer is told: base URL, the connections' files (tests/e2e/test_demo_serve
    # sources the printed lines), the run to trigger.
    base_url = run.value("OneFile base URL:")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v2\.1", base_url)
    secrets_dir = tmp_path / "secrets"
    onefile = json.loads((secrets_dir / "onefile_api").read_text())
    token = onefile["password"]
    assert onefile == {"conn_type": "http", "host": base_url, "password": token}
    assert token not in out
    assert json.loads((secrets_dir / "picsweb_db").read_text()) == {
        "conn_type": "sqlite",
        "host": str(db_file),
    }
    assert "airflow pools set onefile_api 1" in out
    assert "logical date 2026-07-15T02:00:00+01:00" in out
    assert "airflow dags test onefile_picsweb_sync 2026-07-15T02:00:00+01:00" in out

    # The simulator answers over HTTP, with the token printed, the demo's 2 x 25 learners.
    session = _login(base_url, token)
    learners = {
        org: _search(session, base_url, "User", {"OrganisationID": org, "Role": 1})
        for org in (5740, 5741)
    }
    assert {org: len(rows) for org, rows in learners.items()} == {5740: 25, 5741: 25}

    # The database holds exactly the demo's PICSWeb rows: the same generator, same day.
    expected = generate_dataset(seed=7, organisations=2, learners=25, today=SUMMER_DAY)
    assert _table_counts(url) == Counter({t: len(rows) for t, rows in expected.picsweb.items()})
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        trainee_learners = set(
            conn.execute(
                sa.select(pw.trainee.c.onefile_learner_id).where(
                    pw.trainee.c.onefile_learner_id.is_not(None)
                )
            ).scalars()
        )
        picsweb_days = conn.execute(sa.select(pw.review.c.scheduled_date)).scalars().all()
    engine.dispose()
    served_ids = {u["ID"] for rows in learners.values() for u in rows}
    assert trainee_learners and trainee_learners <= served_ids  # one customer, both sides

    # --today: the reviews on both sides sit around that day, inside the printed window.
    reviews = [
        r
        for org in (5740, 5741)
        for r in _search(session, base_url, "Review", {"OrganisationID": org})
        if r.get("ID") is not None  # one is deliberately served malformed
    ]
    onefile_days = [
        dt.datetime.fromisoformat(r["ScheduledFor"]).astimezone(UK).date() for r in reviews
    ]
    for days in (onefile_days, picsweb_days):
        assert days
        # (31: some PICSWeb reviews keep a schedule a day older than OneFile's)
        assert all(abs((day - SUMMER_DAY).days) <= 31 for day in days)
        assert min(days) < SUMMER_DAY < max(days)
    assert "review window, 2026-06-14 02:00 to 2026-08-14 02:00 UK time" in out

    code, rest = run.stop(signal.SIGINT)
    assert code == 0, rest + run.err
    assert rest.startswith("stopped")
    assert "Traceback" not in run.err


def test_a_database_with_data_is_refused_unless_replace_and_sigterm_stops_cleanly(
    tmp_path, start_demo
):
    db_file = tmp_path / "picsweb.sqlite"  # a plain path works as well as a URL
    first = start_demo("--picsweb-url", str(db_file), "--serve", "--port", "0", "--seed", "3")
    first.wait_until_serving()
    assert first.stop(signal.SIGTERM)[0] == 0
    loaded = _table_counts(f"sqlite:///{db_file}")

    # Again: refused, said plainly, nothing touched.
    refused = subprocess.run(
        [sys.executable, "-m", "sync_demo", "--picsweb-url", str(db_file), "--serve"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "include")},
        timeout=60,
    )
    assert refused.returncode == 2
    assert "already holds data: officer (" in refused.stderr
    assert "Pass --replace" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _table_counts(f"sqlite:///{db_file}") == loaded
    # The default day is today's UK date.
    assert f"reviews scheduled around {dt.datetime.now(UK).date().isoformat()}" in refused.stdout

    # With --replace: the other seed's rows replace the old ones, and an earlier demo's
    # sync_* tables are dropped (the sync recreates them).
    engine = sa.create_engine(f"sqlite:///{db_file}")
    pt.ensure_project_tables(engine)
    engine.dispose()
    again = start_demo("--picsweb-url", str(db_file), "--serve", "--port", "0", "--replace")
    again.wait_until_serving()
    assert again.stop(signal.SIGTERM)[0] == 0
    today = dt.datetime.now(UK).date()
    expected = generate_dataset(seed=7, learners=25, today=today).picsweb
    assert _table_counts(f"sqlite:///{db_file}") == Counter(
        {t: len(r) for t, r in expected.items()}
    )
    engine = sa.create_engine(f"sqlite:///{db_file}")
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("sync_")]
    engine.dispose()


def test_a_port_in_use_is_said_plainly_before_the_database_is_touched(tmp_path, start_demo):
    first = start_demo("--picsweb-url", str(tmp_path / "a.sqlite"), "--serve", "--port", "0")
    first.wait_until_serving()
    port = first.value("OneFile base URL:").split(":")[2].split("/")[0]
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "sync_demo",
            "--picsweb-url",
            str(tmp_path / "b.sqlite"),
            "--serve",
            "--port",
            port,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "include")},
        timeout=60,
    )
    assert second.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert not (tmp_path / "b.sqlite").exists()
    assert first.stop(signal.SIGINT)[0] == 0


# ----- the pieces, in process ---------------------------------------------------------------
def test_the_demo_and_the_simulator_command_lines_say_the_same_thing():
    ours = cli.build_parser().parse_args([])
    theirs = simulator_cli.build_parser().parse_args([])
    for name in ("seed", "organisations", "learners", "port", "today", "customer_token"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (ours.seed, ours.organisations, ours.learners, ours.port) == (7, 2, 25, 8099)
    assert ours.today is None and ours.host == "127.0.0.1"  # None: today's UK date


def test_the_simulator_command_line_serves_around_the_given_day():
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    process = subprocess.Popen(
        [sys.executable, "-m", "onefile_simulator", "--port", "0", "--today", "2026-07-15"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("OneFile simulator at http://127.0.0.1:")
        assert lines[3].startswith("reviews scheduled around 2026-07-15")
        base_url = lines[0].split()[-1]
        session = _login(base_url, "sim-customer-token")
        users = _search(session, base_url, "User", {"OrganisationID": 5740, "Role": 1})
        assert len(users) == 25  # the demo's default
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert rest.strip() == "stopped"


@pytest.mark.parametrize(
    "day", [dt.date(2026, 3, 17), SUMMER_DAY, dt.date(2026, 10, 20), dt.date(2026, 11, 29)]
)
def test_the_run_for_the_day_has_the_demo_reviews_in_its_window(day):
    """Every generated review falls inside the window of the printed logical date, but for
    those on the window's last day after 02:00 (a run covers the UK day before it)."""
    plan = dag_runs.manual_run_window(day)
    assert dag_runs.logical_date_for(day).astimezone(dt.UTC) == plan.review_to - dt.timedelta(
        days=30
    )
    data = generate_dataset(seed=7, learners=25, today=day)
    last_day = plan.review_to.astimezone(UK).date()
    outside = [
        r["ScheduledFor"]
        for r in data.onefile.reviews
        if not plan.review_from <= dt.datetime.fromisoformat(r["ScheduledFor"]) < plan.review_to
    ]
    assert all(dt.datetime.fromisoformat(at).astimezone(UK).date() == last_day for at in outside), (
        outside
    )
    assert len(outside) <= len(data.onefile.reviews) * 0.05


def test_the_clock_change_note_says_what_a_day_far_from_one_lacks():
    assert cli.clock_change_note(dt.date(2026, 3, 17), dt.date(2026, 3, 17)) is None
    assert cli.clock_change_note(dt.date(2026, 10, 20), dt.date(2026, 3, 17)) is None
    summer = cli.clock_change_note(SUMMER_DAY, dt.date(2026, 3, 17))
    assert "no review straddles one." in summer and "--today 2026-03-17" in summer
    winter = cli.clock_change_note(dt.date(2026, 12, 15), dt.date(2026, 3, 17))
    assert "none sits just after midnight in summer time" in winter


def test_picsweb_urls_paths_and_refusals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.demo_picsweb_url("x.sqlite") == f"sqlite:///{tmp_path / 'x.sqlite'}"
    assert cli.demo_picsweb_url("sqlite:///y.sqlite") == f"sqlite:///{tmp_path / 'y.sqlite'}"
    pg = "postgresql://u:p%40ss@db.example:5433/picsweb"
    assert cli.demo_picsweb_url(pg) == pg
    for bad, says in (
        ("mysql://u@h/db", "not a PICSWeb the sync runs on"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
    ):
        with pytest.raises(cli.DemoError, match=says):
            cli.demo_picsweb_url(bad)


@pytest.mark.parametrize(
    "url",
    [
        "mssql+pymssql://sync:s3cret@mssql.example:1433/picsweb",
        "postgresql://sync:p%40ss@pg.example:5432/picsweb",
    ],
)
def test_printed_database_connection_gives_the_sync_the_same_database(url):
    """What AIRFLOW_CONN_PICSWEB_DB says is what the sync's engine connects to."""
    conn = json.loads(
        dag_runs.connection_env("http://x/api/v2.1", "t", url)["AIRFLOW_CONN_PICSWEB_DB"]
    )
    again = url_for_connection(
        conn["conn_type"],
        conn.get("host"),
        conn.get("port"),
        conn.get("login"),
        conn.get("password"),
        conn.get("schema"),
    )
    given = sa.engine.make_url(url)
    assert again.get_backend_name() == given.get_backend_name()
    assert (again.username, again.password, again.host, again.port, again.database) == (
        given.username,
        given.password,
        given.host,
        given.port,
        given.database,
    )


def test_prepare_refuses_then_replaces_on_postgres(pg_url):
    first = generate_dataset(seed=3, learners=4, today=SUMMER_DAY)
    engine, loaded = cli.prepare_picsweb(pg_url, first.picsweb, replace=False)
    engine.dispose()
    assert loaded == {t: len(rows) for t, rows in first.picsweb.items()}
    with pytest.raises(cli.DemoError, match=r"already holds data: .*Nothing was changed"):
        cli.prepare_picsweb(pg_url, first.picsweb, replace=False)
    second = generate_dataset(seed=7, learners=6, today=SUMMER_DAY)
    engine, loaded = cli.prepare_picsweb(pg_url, second.picsweb, replace=True)
    try:
        assert _table_counts(pg_url) == Counter({t: len(r) for t, r in second.picsweb.items()})
        # The review identity continues after the loaded keys: the sync can insert reviews.
        with engine.begin() as conn:
            new_id = conn.execute(
                sa.insert(pw.review)
                .values(
                    trainee_id=second.picsweb["trainee"][0]["trainee_id"],
                    review_type="Normal",
                    scheduled_date=SUMMER_DAY,
                )
                .returning(pw.review.c.review_id)
            ).scalar_one()
        assert new_id > max(r["review_id"] for r in second.picsweb["review"])
    finally:
        engine.dispose()
