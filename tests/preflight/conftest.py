"""Fixtures: a matching pair of systems (the OneFile simulator over real HTTP on 127.0.0.1 and
a PICSWeb on the tests' PostgreSQL, from one generated dataset), the preflight run as the
real command in a subprocess, and the proofs that it wrote nothing in either system."""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from onefile_simulator import OneFileSimulator, generate_dataset
from sync_demo.dag_runs import connection_env
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

REPO = Path(__file__).resolve().parents[2]
# A password the tests' PostgreSQL (trust authentication) accepts and ignores: it must
# still never appear in the preflight's output.
DB_PASSWORD = "pf-db-secret-9d41"
FAST_HOOK = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "timeout_seconds": 5}


@dataclass
class Pair:
    """PICSWeb and OneFile as one provider has them, before the sync's first run."""

    url: str  # PICSWeb, as the database's owner (with DB_PASSWORD)
    picsweb: sa.Engine
    sim: OneFileSimulator
    token: str  # the customer token in the onefile_api connection
    onefile_before: Any
    env: dict[str, str] = field(default_factory=dict)

    def execute(self, *statements: str) -> None:
        with self.picsweb.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))

    def connect_as(self, login: str) -> None:
        """Point the preflight's PICSWeb (and staging) connection at another login."""
        url = sa.engine.make_url(self.url).set(username=login)
        self.env.update(
            connection_env(self.sim.base_url, self.token, url.render_as_string(False), FAST_HOOK)
        )


@pytest.fixture
def pair(pg_url: str) -> Iterator[Pair]:
    with open_pair(pg_url) as opened:
        yield opened


@contextmanager
def open_pair(pg_url: str, **generate: Any) -> Iterator[Pair]:
    """Two organisations of 6 learners on both sides (``generate``: more arguments of
    ``generate_dataset``, e.g. its ``today``), the simulator serving OneFile's."""
    dataset = generate_dataset(seed=11, organisations=2, learners=6, **generate)
    url = sa.engine.make_url(pg_url).set(password=DB_PASSWORD).render_as_string(False)
    engine = sa.create_engine(url)
    create_picsweb_tables(engine)
    load_picsweb_rows(engine, dataset.picsweb)
    token = f"tok-{secrets.token_hex(8)}"
    sim = OneFileSimulator(dataset.onefile, customer_token=token)
    sim.start()
    env = connection_env(sim.base_url, token, url, FAST_HOOK)
    yield Pair(url, engine, sim, token, copy.deepcopy(dataset.onefile), env)
    sim.stop()
    engine.dispose()


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    @property
    def levels(self) -> dict[str, str]:
        return {c["id"]: c["level"] for c in self.report["checks"]}

    def check(self, check_id: str) -> dict[str, Any]:
        (found,) = [c for c in self.report["checks"] if c["id"] == check_id]
        return found


def run_preflight(env: dict[str, str], *args: str) -> Outcome:
    """``python -m picsweb_sync.preflight`` as a deployment runs it: its own process, the
    connections in ``AIRFLOW_CONN_*`` variables."""
    return run_command("picsweb_sync.preflight", env, *args)


def run_command(module: str, env: dict[str, str], *args: str) -> Outcome:
    """``python -m <module>`` (a read-only command) in its own process, the connections in
    ``AIRFLOW_CONN_*`` variables."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


# ----- nothing written ------------------------------------------------------------------------
def database_state(engine: sa.Engine) -> dict[str, Any]:
    """Every table of the database, and PostgreSQL's count of rows inserted, updated and
    deleted in each (rolled-back ones too), with every session's pending counts flushed: the
    other sessions are ended first (each reports its counts as it exits)."""
    engine.dispose()
    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(
            sa.text("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
        ).all()
        tables = sorted(sa.inspect(conn).get_table_names())
    admin.dispose()
    return {"tables": tables, "operations": {name: tuple(ops) for name, *ops in rows}}


def onefile_writes(sim: OneFileSimulator) -> list[tuple[str, str]]:
    """Every call that could change OneFile: any but GET, authentication and searches."""
    return [
        (c.method, c.path)
        for c in sim.calls
        if c.method != "GET" and c.path != "/Authentication" and "/Search" not in c.path
    ]
