"""The demo profile of docker-compose.yaml: a PICSWeb on SQL Server and the matching OneFile.

    python deploy/picsweb_demo.py init           # SQL Server: database, the sync's login, demo data
                                                 # (PostgreSQL with PICSWEB_DB_CONN_TYPE=postgres)
    python deploy/picsweb_demo.py serve-onefile  # the matching OneFile simulator on 0.0.0.0
    python deploy/picsweb_demo.py logical-date   # the logical date of the run that syncs the demo
    python deploy/picsweb_demo.py ddl            # the T-SQL of the PICSWeb tables (--project-tables)

``init`` waits for the SQL Server, creates the database ``PICSWEB_DB_NAME`` (case-insensitive
collation, as PICSWeb's), the login ``PICSWEB_DB_LOGIN`` with ``PICSWEB_DB_PASSWORD`` as a
db_owner of it (the sync creates its own ``sync_*`` tables on its first run), then, connected
as that login (as Airflow will be), the PICSWeb tables and the demo rows: the generator's
PICSWeb (:mod:`sync_demo.builder`, the demo builder ``make demo`` uses too), as ``make demo``
loads into SQLite. With ``PICSWEB_DB_CONN_TYPE=postgres`` (the ``demo-postgres`` profile) the
same is done on PostgreSQL (``DEMO_POSTGRES_HOST``, superuser ``postgres`` with
``DEMO_POSTGRES_PASSWORD``): the login becomes a role owning the database. It loads once: a database that holds the demo already is left alone
(``--reset`` rebuilds it). The day the demo reviews are scheduled around (``DEMO_TODAY``, else
today's UK date) is kept in ``DEMO_STATE_DIR``, a volume the simulator reads, so both sides
are generated from the same seed and day.

Settings come from the environment the compose file gives (see .env.example). Runs in the
project image, where ``include/`` is importable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from sync_demo.builder import (
    DEFAULT_LEARNERS,
    DEFAULT_ORGANISATIONS,
    DEFAULT_PORT,
    DEFAULT_SEED,
    DemoError,
    demo_dataset,
    error_reason,
    hosted_simulator,
    load_demo_picsweb,
    loaded_text,
    said_plainly,
    serve_until,
    spoil_some_rows,
    stop_on_signals,
)
from sync_demo.dag_runs import trigger_logical_date, uk_today

DAY_FILE = "demo-day"
DEFAULT_COLLATION = "SQL_Latin1_General_CP1_CI_AS"  # SQL Server's default: case-insensitive
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


# ----- settings -------------------------------------------------------------------------------
def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, "") or default
    if not value:
        raise DemoError(f"{name} is not set: set it in .env (see .env.example)")
    return value


def demo_shape() -> dict[str, int]:
    """The generator's parameters; the simulator and the PICSWeb must use the same ones."""
    return {
        "seed": int(env("DEMO_SEED", str(DEFAULT_SEED))),
        "organisations": int(env("DEMO_ORGANISATIONS", str(DEFAULT_ORGANISATIONS))),
        "learners": int(env("DEMO_LEARNERS", str(DEFAULT_LEARNERS))),
    }


def state_dir() -> Path:
    return Path(env("DEMO_STATE_DIR", "/opt/airflow/demo-state"))


def chosen_day() -> dt.date:
    """``DEMO_TODAY`` (YYYY-MM-DD) or today's UK date."""
    text = os.environ.get("DEMO_TODAY", "").strip()
    if not text:
        return uk_today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DemoError(f"DEMO_TODAY={text!r} is not a date (YYYY-MM-DD)") from None


def stored_day(directory: Path) -> dt.date | None:
    path = directory / DAY_FILE
    if not path.exists():
        return None
    return dt.date.fromisoformat(path.read_text().strip())


def store_day(directory: Path, day: dt.date) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DAY_FILE).write_text(day.isoformat() + "\n")


# ----- T-SQL --------------------------------------------------------------------------------
def checked_name(kind: str, name: str) -> str:
    """A database or login name: letters, digits and underscores only (they are spliced
    into T-SQL, which takes no parameters for names)."""
    if not _NAME.match(name):
        raise DemoError(f"{kind} {name!r}: use letters, digits and underscores only")
    return name


def quote_name(name: str) -> str:
    """``[name]``, as SQL Server quotes identifiers."""
    return mssql.dialect().identifier_preparer.quote_identifier(name)


def unicode_literal(value: str) -> str:
    """``N'...'`` (CREATE LOGIN takes its password as a literal, not a parameter)."""
    return "N'" + value.replace("'", "''") + "'"


def create_database_sql(name: str, collation: str = DEFAULT_COLLATION) -> str:
    checked_name("database", name)
    checked_name("collation", collation)
    return (
        f"IF DB_ID({unicode_literal(name)}) IS NULL "
        f"CREATE DATABASE {quote_name(name)} COLLATE {collation}"
    )


def drop_database_sql(name: str) -> str:
    """Drop a database, ending the sessions still using it."""
    checked_name("database", name)
    return (
        f"IF DB_ID({unicode_literal(name)}) IS NOT NULL BEGIN "
        f"ALTER DATABASE {quote_name(name)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; "
        f"DROP DATABASE {quote_name(name)}; END"
    )


def login_sql(login: str, password: str) -> str:
    """Create the login, or set its password to the one in .env when it exists."""
    checked_name("login", login)
    secret = unicode_literal(password)
    return (
        f"IF SUSER_ID({unicode_literal(login)}) IS NULL "
        f"CREATE LOGIN {quote_name(login)} WITH PASSWORD = {secret}, CHECK_POLICY = OFF "
        f"ELSE ALTER LOGIN {quote_name(login)} WITH PASSWORD = {secret}"
    )


def database_user_sql(login: str) -> str:
    """Run in the demo database: the login's user, db_owner there (and nowhere else)."""
    checked_name("login", login)
    return (
        f"IF USER_ID({unicode_literal(login)}) IS NULL "
        f"CREATE USER {quote_name(login)} FOR LOGIN {quote_name(login)}; "
        f"ALTER ROLE db_owner ADD MEMBER {quote_name(login)}"
    )


def mssql_url(host: str, port: int, login: str, password: str, database: str) -> sa.URL:
    """A SQLAlchemy URL (the password needs no escaping: URL.create keeps it apart)."""
    return sa.URL.create(
        "mssql+pymssql", username=login, password=password, host=host, port=port, database=database
    )


def wait_for(
    engine: sa.Engine,
    timeout: float,
    interval: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until the server answers ``SELECT 1`` (SQL Server takes a while on its first start)."""
    deadline = clock() + timeout
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return
        except sa.exc.DBAPIError as exc:
            if clock() >= deadline:
                raise DemoError(
                    f"{engine.url.render_as_string(hide_password=True)} did not answer in "
                    f"{timeout:.0f} s: {error_reason(exc)}"
                ) from None
            print(f"waiting for {engine.url.host or engine.url.database} ...", flush=True)
            time.sleep(interval)


# ----- the demo PICSWeb -----------------------------------------------------------------------
def demo_loaded(engine: sa.Engine) -> bool:
    """Whether the database holds the demo PICSWeb already (its settings row)."""
    from picsweb_sync.storage.picsweb_tables import onefile_settings

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(onefile_settings.name):
            return False
        return bool(conn.execute(sa.select(sa.func.count()).select_from(onefile_settings)).scalar())


def drop_demo_tables(engine: sa.Engine) -> None:
    """The sync's own tables, then the PICSWeb tables (a demo database only)."""
    from picsweb_sync.storage.picsweb_tables import metadata
    from picsweb_sync.storage.project_tables import project_metadata

    with engine.begin() as conn:
        project_metadata.drop_all(conn, checkfirst=True)
        metadata.drop_all(conn, checkfirst=True)


def load_demo(engine: sa.Engine, day: dt.date) -> dict[str, int]:
    """Create the PICSWeb tables and load the generator's PICSWeb for ``day``."""
    return load_demo_picsweb(engine, demo_dataset(**demo_shape(), today=day).picsweb)


def build_picsweb(engine: sa.Engine, directory: Path, reset: bool) -> tuple[dt.date, bool]:
    """Load the demo unless it is there already (with its day kept); returns (day, loaded)."""
    day = stored_day(directory)
    if demo_loaded(engine) and day is not None and not reset:
        return day, False
    if demo_loaded(engine) or reset:
        # Rebuilt, so that PICSWeb and the simulator are generated for the same day.
        drop_demo_tables(engine)
    day = chosen_day()
    loaded = load_demo(engine, day)
    store_day(directory, day)
    print("loaded " + loaded_text(loaded), flush=True)
    return day, True


def postgres_url(host: str, port: int, login: str, password: str, database: str) -> sa.URL:
    return sa.URL.create(
        "postgresql+psycopg2",
        username=login,
        password=password,
        host=host,
        port=port,
        database=database,
    )


def postgres_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings: only ' is doubled)."""
    return "'" + value.replace("'", "''") + "'"


def postgres_name(name: str) -> str:
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect().identifier_preparer.quote_identifier(name)


def init_postgres(args: argparse.Namespace) -> int:
    """The demo PICSWeb on PostgreSQL: the login as a role owning the database."""
    host = env("DEMO_POSTGRES_HOST", "picsweb-postgres")
    port = int(env("DEMO_POSTGRES_PORT", "5432"))
    database = checked_name("PICSWEB_DB_NAME", env("PICSWEB_DB_NAME", "picsweb"))
    login = checked_name("PICSWEB_DB_LOGIN", env("PICSWEB_DB_LOGIN", "picsweb_sync"))
    admin_password = env("DEMO_POSTGRES_PASSWORD")
    password = env("PICSWEB_DB_PASSWORD")
    if os.environ.get("PICSWEB_DB_HOST", host) != host:
        print(
            f"warning: PICSWEB_DB_HOST={os.environ['PICSWEB_DB_HOST']!r}, so the sync's "
            f"connection does not point at the demo PostgreSQL {host!r}",
            flush=True,
        )
    admin = sa.create_engine(
        postgres_url(host, port, "postgres", admin_password, "postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        wait_for(admin, timeout=args.timeout)
        with admin.connect() as conn:
            has_role = conn.execute(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login}
            ).first()
            verb = "ALTER" if has_role else "CREATE"
            # No bind parameters here (CREATE ROLE takes none), so the driver leaves % alone.
            role = postgres_name(login)
            conn.exec_driver_sql(f"{verb} ROLE {role} LOGIN PASSWORD {postgres_literal(password)}")
            has_db = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}
            ).first()
            if not has_db:
                conn.exec_driver_sql(
                    f"CREATE DATABASE {postgres_name(database)} OWNER {postgres_name(login)}"
                )
    finally:
        admin.dispose()

    url = postgres_url(host, port, login, password, database)
    return build_and_say(url, f"{database} on PostgreSQL {host}:{port} as {login}", args.reset)


def init(args: argparse.Namespace) -> int:
    kind = os.environ.get("PICSWEB_DB_CONN_TYPE", "") or "mssql"
    if kind == "postgres":
        return init_postgres(args)
    if kind != "mssql":
        raise DemoError(f"PICSWEB_DB_CONN_TYPE={kind!r}: the demo is built on mssql or postgres")
    host = env("DEMO_MSSQL_HOST", "sqlserver")
    port = int(env("DEMO_MSSQL_PORT", "1433"))
    database = checked_name("PICSWEB_DB_NAME", env("PICSWEB_DB_NAME", "picsweb"))
    login = checked_name("PICSWEB_DB_LOGIN", env("PICSWEB_DB_LOGIN", "picsweb_sync"))
    sa_password = env("MSSQL_SA_PASSWORD")
    password = sa_password if login == "sa" else env("PICSWEB_DB_PASSWORD")
    if os.environ.get("PICSWEB_DB_HOST", host) != host:
        print(
            f"warning: PICSWEB_DB_HOST={os.environ['PICSWEB_DB_HOST']!r}, so the sync's "
            f"connection does not point at the demo SQL Server {host!r}",
            flush=True,
        )

    admin = sa.create_engine(
        mssql_url(host, port, "sa", sa_password, "master"), isolation_level="AUTOCOMMIT"
    )
    try:
        wait_for(admin, timeout=args.timeout)
        with admin.connect() as conn:
            conn.exec_driver_sql(create_database_sql(database, args.collation))
            if login != "sa":
                conn.exec_driver_sql(login_sql(login, password))
        if login != "sa":
            owner = sa.create_engine(
                mssql_url(host, port, "sa", sa_password, database), isolation_level="AUTOCOMMIT"
            )
            with owner.connect() as conn:
                conn.exec_driver_sql(database_user_sql(login))
            owner.dispose()
    finally:
        admin.dispose()

    url = mssql_url(host, port, login, password, database)
    return build_and_say(url, f"{database} on {host}:{port} as {login}", args.reset)


def build_and_say(url: str, where: str, reset: bool) -> int:
    """Build the demo PICSWeb at ``url`` as the sync's own login (as Airflow connects: it
    proves the connection in .env works) and say where and for which run."""
    picsweb = sa.create_engine(url)
    try:
        day, loaded = build_picsweb(picsweb, state_dir(), reset=reset)
    finally:
        picsweb.dispose()
    what = "built" if loaded else "already there (--reset rebuilds it)"
    print(
        f"demo PICSWeb {what}: {where}; reviews scheduled around {day.isoformat()}; the run "
        f"that syncs them: logical date {trigger_logical_date(day).isoformat()}",
        flush=True,
    )
    return 0


# ----- the OneFile simulator ------------------------------------------------------------------
def slow_review_creates(sim, seconds_text: str) -> None:
    """Every review create (``POST /Review``) carried out only after ``seconds_text``
    seconds (ONEFILE_SIMULATOR_REVIEW_DELAY; 0, the default: at once), so that a test can
    catch a push in the middle of its creates (`make test-compose` kills the workers then);
    a create whose client went meanwhile still happens, as on a real server."""
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise DemoError(f"ONEFILE_SIMULATOR_REVIEW_DELAY={seconds_text!r} is not seconds") from None
    if seconds > 0:
        sim.faults.delay(seconds, times=None, method="POST", path_is="/Review")


def serve_onefile(args: argparse.Namespace) -> int:
    directory = state_dir()
    deadline = time.monotonic() + args.timeout
    while (day := stored_day(directory)) is None:
        if time.monotonic() >= deadline:
            raise DemoError(f"no demo day in {directory}: run `picsweb_demo.py init` first")
        time.sleep(2)
    token = env("ONEFILE_CUSTOMER_TOKEN")
    dataset = demo_dataset(**demo_shape(), today=day)
    sim = hosted_simulator(dataset.onefile, host=args.host, port=args.port, customer_token=token)
    stop = stop_on_signals()
    with sim:
        slow_review_creates(sim, env("ONEFILE_SIMULATOR_REVIEW_DELAY", "0"))
        if not args.no_malformed_rows:
            spoil_some_rows(sim)  # as make demo: set aside with their reason by the sync
        orgs = ", ".join(str(o["ID"]) for o in dataset.onefile.organisations)
        print(f"OneFile simulator at {sim.base_url} (listening on {args.host})", flush=True)
        print(
            f"organisations {orgs}; reviews scheduled around {day.isoformat()}; "
            "customer token: ONEFILE_CUSTOMER_TOKEN from .env",
            flush=True,
        )
        serve_until(stop)
    print("stopped", flush=True)
    return 0


# ----- small commands -------------------------------------------------------------------------
def print_logical_date(args: argparse.Namespace) -> int:
    day = stored_day(state_dir())
    if day is None:
        raise DemoError("the demo PICSWeb is not built yet: run `picsweb_demo.py init` first")
    print(trigger_logical_date(day).isoformat())
    return 0


def sql_server_dialect() -> mssql.base.MSDialect:
    """The dialect as it sets itself up on a modern server (DATE, TIME, NVARCHAR(max))."""
    dialect = mssql.dialect()
    dialect.server_version_info = (16, 0)  # SQL Server 2022
    dialect._setup_version_attributes()
    return dialect


def ddl(project_tables: bool) -> list[str]:
    """CREATE TABLE / CREATE INDEX statements for SQL Server, in dependency order."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    if project_tables:
        from picsweb_sync.storage.project_tables import project_metadata as metadata
    else:
        from picsweb_sync.storage.picsweb_tables import metadata

    dialect = sql_server_dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return statements


def print_ddl(args: argparse.Namespace) -> int:
    for statement in ddl(args.project_tables):
        print(statement + ";\nGO\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python deploy/picsweb_demo.py", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "init", help="database, login and demo PICSWeb on SQL Server (or PostgreSQL)"
    )
    p.add_argument("--reset", action="store_true", help="rebuild the demo PICSWeb")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the server")
    p.add_argument("--collation", default=DEFAULT_COLLATION)
    p.set_defaults(run=init)
    p = commands.add_parser("serve-onefile", help="the matching OneFile simulator")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for init")
    p.add_argument("--no-malformed-rows", action="store_true")
    p.set_defaults(run=serve_onefile)
    p = commands.add_parser("logical-date", help="the logical date of the demo's run")
    p.set_defaults(run=print_logical_date)
    p = commands.add_parser("ddl", help="T-SQL of the PICSWeb tables")
    p.add_argument("--project-tables", action="store_true", help="the sync_* tables instead")
    p.set_defaults(run=print_ddl)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return said_plainly(lambda: args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
