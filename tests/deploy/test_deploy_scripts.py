"""The scripts the compose services run: deploy/airflow-init.sh (migrate, admin, pool) and
deploy/picsweb_demo.py (the demo PICSWeb on SQL Server and the matching OneFile simulator).

No SQL Server runs here: the T-SQL they send is checked as text and compiled with the mssql
dialect, and the loading runs for real on SQLite (tests/mssql runs it on a real server)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage import project_tables as pt
from tests.deploy.scripts import DEPLOY, REPO, load

SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


@pytest.fixture(scope="module")
def demo():
    return load("picsweb_demo")


# ----- airflow-init.sh --------------------------------------------------------------------------
def test_airflow_init_migrates_and_creates_the_pool(airflow_db):
    """Run for real against the tests' Airflow home (SQLite; SimpleAuthManager, so no user)."""
    from airflow.models.pool import Pool

    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
    }
    done = subprocess.run(
        ["bash", str(DEPLOY / "airflow-init.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== airflow db migrate" in done.stdout
    assert "SimpleAuthManager: users come from" in done.stdout
    assert done.stdout.rstrip().endswith("airflow-init done")
    pool = Pool.get_pool("onefile_api")
    assert (pool.slots, pool.description) == (1, "OneFile API rate limit")


def test_airflow_init_needs_the_admin_password_with_fab():
    script = (DEPLOY / "airflow-init.sh").read_text()
    fab = script.split("*FabAuthManager)")[1].split(";;")[0]
    assert "${AIRFLOW_ADMIN_PASSWORD:?" in fab
    assert "set -euo pipefail" in script


def test_the_scripts_parse():
    for script in ("airflow-init.sh", "ensure-docker-compose.sh"):
        done = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True)
        assert done.returncode == 0, done.stderr
        assert os.access(DEPLOY / script, os.X_OK), f"{script} is not executable"


# ----- picsweb_demo.py: T-SQL -----------------------------------------------------------------
def test_names_are_quoted_and_checked(demo):
    assert demo.quote_name("picsweb") == "[picsweb]"
    assert demo.create_database_sql("picsweb") == (
        "IF DB_ID(N'picsweb') IS NULL CREATE DATABASE [picsweb] COLLATE SQL_Latin1_General_CP1_CI_AS"
    )
    for bad in ("pics web", "x]; DROP DATABASE master; --", "", "1abc", "a-b"):
        with pytest.raises(demo.DemoError):
            demo.create_database_sql(bad)
        with pytest.raises(demo.DemoError):
            demo.login_sql(bad, "pw")


def test_a_password_is_one_unicode_literal_whatever_it_holds(demo):
    sql = demo.login_sql("picsweb_sync", "it's-Aa1")
    assert "WITH PASSWORD = N'it''s-Aa1', CHECK_POLICY = OFF" in sql
    assert "ELSE ALTER LOGIN [picsweb_sync] WITH PASSWORD = N'it''s-Aa1'" in sql
    assert sql.startswith("IF SUSER_ID(N'picsweb_sync') IS NULL CREATE LOGIN [picsweb_sync]")


def test_the_login_becomes_db_owner_of_its_database_only(demo):
    sql = demo.database_user_sql("picsweb_sync")
    assert sql == (
        "IF USER_ID(N'picsweb_sync') IS NULL CREATE USER [picsweb_sync] FOR LOGIN [picsweb_sync]; "
        "ALTER ROLE db_owner ADD MEMBER [picsweb_sync]"
    )


def test_dropping_a_database_ends_its_sessions_first(demo):
    sql = demo.drop_database_sql("t1")
    assert sql.index("SET SINGLE_USER WITH ROLLBACK IMMEDIATE") < sql.index("DROP DATABASE [t1]")


def test_the_url_keeps_the_password_apart(demo):
    url = demo.mssql_url("sqlserver", 1433, "sa", "p@ss:w/rd?#", "master")
    assert url.password == "p@ss:w/rd?#"
    assert sa.make_url(url.render_as_string(hide_password=False)).password == "p@ss:w/rd?#"
    assert url.drivername == "mssql+pymssql"


@pytest.mark.parametrize("project_tables", [False, True], ids=["picsweb", "sync"])
def test_the_ddl_is_tsql_for_every_table(demo, project_tables):
    statements = demo.ddl(project_tables)
    metadata = pt.project_metadata if project_tables else pw.metadata
    created = [s.split("(")[0].split()[-1] for s in statements if s.startswith("CREATE TABLE")]
    assert created == [t.name for t in metadata.sorted_tables]
    text = "\n".join(statements)
    assert "IDENTITY" in text or project_tables
    for construct in ("SERIAL", "AUTOINCREMENT", "::", " LIMIT "):
        assert construct not in text.upper()
    if not project_tables:
        assert "WHERE onefile_learner_id IS NOT NULL" in text  # filtered unique index


def test_ddl_command_prints_batches(demo, capsys):
    assert demo.main(["ddl"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nGO\n") == len(demo.ddl(False))


# ----- picsweb_demo.py: the demo PICSWeb ------------------------------------------------------
@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("DEMO_STATE_DIR", str(directory))
    monkeypatch.setenv("DEMO_LEARNERS", "3")
    monkeypatch.delenv("DEMO_TODAY", raising=False)
    return directory


def _generated(day: dt.date, table: str) -> int:
    from onefile_simulator import generate_dataset

    return len(generate_dataset(seed=7, organisations=2, learners=3, today=day).picsweb[table])


def _rows(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_the_demo_picsweb_loads_once_and_keeps_its_day(demo, state, tmp_path, monkeypatch):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'picsweb.sqlite'}")
    monkeypatch.setenv("DEMO_TODAY", "2026-03-17")
    day, loaded = demo.build_picsweb(engine, state, reset=False)
    assert (day, loaded) == (dt.date(2026, 3, 17), True)
    assert demo.stored_day(state) == day
    trainees = _rows(engine, pw.trainee)
    assert trainees == _generated(day, "trainee")
    with engine.begin() as conn:  # what a sync run would have done since
        pt.ensure_project_tables(conn)
        conn.execute(sa.update(pw.trainee).values(email="changed@example.org"))
    monkeypatch.setenv("DEMO_TODAY", "2026-06-01")
    assert demo.build_picsweb(engine, state, reset=False) == (day, False)  # left alone
    assert _rows(engine, pw.trainee) == trainees
    with engine.connect() as conn:
        emails = set(conn.execute(sa.select(pw.trainee.c.email)).scalars())
    assert emails == {"changed@example.org"}
    day, loaded = demo.build_picsweb(engine, state, reset=True)  # --reset: afresh, for the new day
    assert (day, loaded) == (dt.date(2026, 6, 1), True)
    assert demo.stored_day(state) == day
    with engine.connect() as conn:
        assert "changed@example.org" not in set(
            conn.execute(sa.select(pw.trainee.c.email)).scalars()
        )
        assert not sa.inspect(conn).has_table(pt.sync_run.name)
    engine.dispose()


def test_a_lost_day_rebuilds_the_picsweb_so_both_sides_match(demo, state, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'picsweb.sqlite'}")
    demo.build_picsweb(engine, state, reset=False)
    (state / demo.DAY_FILE).unlink()
    day, loaded = demo.build_picsweb(engine, state, reset=False)
    assert loaded and day == demo.uk_today()
    assert _rows(engine, pw.review) == _generated(day, "review")
    engine.dispose()


def test_the_demo_rows_are_the_generators_for_the_day(demo, state, tmp_path):
    from onefile_simulator import generate_dataset

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'picsweb.sqlite'}")
    day, _ = demo.build_picsweb(engine, state, reset=False)
    expected = generate_dataset(seed=7, organisations=2, learners=3, today=day).picsweb
    with engine.connect() as conn:
        reviews = conn.execute(sa.select(pw.review.c.scheduled_date)).scalars().all()
    assert sorted(reviews) == sorted(r["scheduled_date"] for r in expected["review"])
    engine.dispose()


def test_the_logical_date_is_02_00_uk_time_of_the_demo_day(demo, state, capsys):
    demo.store_day(state, dt.date(2026, 3, 30))  # the day after the clock change
    assert demo.main(["logical-date"]) == 0
    assert capsys.readouterr().out.strip() == "2026-03-30T02:00:00+01:00"
    demo.store_day(state, dt.date(2026, 3, 17))
    assert demo.main(["logical-date"]) == 0
    assert capsys.readouterr().out.strip() == "2026-03-17T02:00:00+00:00"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-03-17T03:00:00+00:00", "2026-03-17T02:00:00+00:00", id="after-02:00"),
        pytest.param("2026-03-17T00:30:15.5+00:00", "2026-03-17T00:30:15+00:00", id="before-02:00"),
        pytest.param(
            "2026-03-30T00:59:00+00:00", "2026-03-30T01:59:00+01:00", id="bst-before-02:00"
        ),
        pytest.param("2026-03-18T00:30:00+00:00", "2026-03-17T02:00:00+00:00", id="a-later-day"),
    ],
)
def test_the_demo_run_is_never_triggered_for_a_time_still_to_come(demo, now, expected):
    """Between midnight and 02:00 UK the run for the demo day is triggered for now: Airflow
    would not run a task of a run whose logical date is in the future until 02:00."""
    day = dt.date.fromisoformat(now[:10]) if now[:10] != "2026-03-18" else dt.date(2026, 3, 17)
    when = demo.trigger_logical_date(day, dt.datetime.fromisoformat(now))
    assert when.isoformat() == expected


def test_init_names_a_missing_setting(demo, state, monkeypatch, capsys):
    monkeypatch.delenv("MSSQL_SA_PASSWORD", raising=False)
    assert demo.main(["init", "--timeout", "0"]) == 2
    assert "MSSQL_SA_PASSWORD is not set" in capsys.readouterr().err


def test_a_bad_demo_day_is_said_plainly(demo, state, monkeypatch):
    monkeypatch.setenv("DEMO_TODAY", "17/03/2026")
    with pytest.raises(demo.DemoError, match="YYYY-MM-DD"):
        demo.chosen_day()


def test_waiting_for_the_server_gives_up_with_the_reason(demo):
    engine = sa.create_engine("sqlite:////nonexistent-dir/x.sqlite")
    ticks = iter([0.0, 0.0, 100.0])
    with pytest.raises(demo.DemoError, match="did not answer in 5 s"):
        demo.wait_for(engine, timeout=5, interval=0, clock=lambda: next(ticks))


# ----- picsweb_demo.py: the OneFile simulator -------------------------------------------------
def test_the_simulator_listens_on_every_interface(demo):
    from onefile_simulator import generate_dataset

    data = generate_dataset(seed=7, organisations=1, learners=2).onefile
    sim = demo.hosted_simulator(data, host="0.0.0.0", port=0, customer_token="demo-token")
    with sim:
        assert sim._server.server_address[0] == "0.0.0.0"
        assert sim.base_url.startswith("http://127.0.0.1:") and sim.base_url.endswith("/api/v2.1")
        ok = requests.post(
            f"{sim.base_url}/Authentication", headers={"X-CustomerToken": "demo-token"}, timeout=5
        )
        refused = requests.post(
            f"{sim.base_url}/Authentication", headers={"X-CustomerToken": "other"}, timeout=5
        )
    assert ok.status_code == 200
    assert refused.status_code in (401, 403)


def test_serve_onefile_serves_the_day_init_chose_until_sigterm(demo, tmp_path):
    state = tmp_path / "state"
    demo.store_day(state, dt.date(2026, 3, 17))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO / "plugins")]),
        "DEMO_STATE_DIR": str(state),
        "DEMO_LEARNERS": "2",
        "ONEFILE_CUSTOMER_TOKEN": "tok-from-env",
    }
    process = subprocess.Popen(
        [sys.executable, str(DEPLOY / "picsweb_demo.py"), "serve-onefile", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = process.stdout.readline()
        assert "(listening on 0.0.0.0)" in first
        base_url = first.split()[3]
        assert "reviews scheduled around 2026-03-17" in process.stdout.readline()
        answer = requests.post(
            f"{base_url}/Authentication", headers={"X-CustomerToken": "tok-from-env"}, timeout=5
        )
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert "stopped" in process.stdout.read()


@pytest.mark.parametrize(
    ("setting", "delayed"),
    [("0", None), ("", None), ("2.5", 2.5)],
    ids=["off", "unset", "seconds"],
)
def test_review_creates_wait_as_long_as_the_setting_says(demo, setting, delayed):
    """ONEFILE_SIMULATOR_REVIEW_DELAY (make test-compose's, to catch a push mid-way) slows
    the review creates only: never the searches, the visits or the reads."""
    from onefile_simulator import generate_dataset

    data = generate_dataset(seed=7, organisations=1, learners=2).onefile
    sim = demo.hosted_simulator(data, host="127.0.0.1", port=0, customer_token="t")
    demo.slow_review_creates(sim, setting or "0")
    for method, path in [
        ("POST", "/Review/Search/1/100"),
        ("POST", "/Visit"),
        ("GET", "/Review/1"),
    ]:
        assert sim.faults.take(method, path) is None
    for _ in range(3):  # every create, not the first only
        rule = sim.faults.take("POST", "/Review")
        assert (rule.seconds if rule else None) == delayed


def test_a_review_delay_that_is_not_seconds_is_said_plainly(demo):
    from onefile_simulator import generate_dataset

    data = generate_dataset(seed=7, organisations=1, learners=2).onefile
    sim = demo.hosted_simulator(data, host="127.0.0.1", port=0, customer_token="t")
    with pytest.raises(demo.DemoError, match="ONEFILE_SIMULATOR_REVIEW_DELAY='2s'"):
        demo.slow_review_creates(sim, "2s")
