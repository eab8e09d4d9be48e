"""Fixtures: the preflight's pair of systems (the OneFile simulator over HTTP, a PICSWeb on
the tests' PostgreSQL, from one generated dataset) with the dataset's day today, so its
reviews fall in the report's window around now; the report run as the real command in a
subprocess. The proofs that nothing was written are the preflight's."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from onefile_simulator import OneFileSimulator, generate_dataset
from sync_demo.dag_runs import connection_env
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows
from tests.preflight.conftest import DB_PASSWORD, FAST_HOOK, REPO, Pair


@pytest.fixture
def pair(pg_url: str) -> Iterator[Pair]:
    """Two organisations of 6 learners, before the sync's first run (PICSWeb's trainees
    already carry their OneFile learner IDs, as the generator makes them)."""
    today = dt.datetime.now(dt.UTC).date()
    dataset = generate_dataset(seed=11, organisations=2, learners=6, today=today)
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


def run_drift(env: dict[str, str], *args: str) -> Outcome:
    """``python -m picsweb_sync.drift`` as an operator runs it: its own process, the
    connections in ``AIRFLOW_CONN_*`` variables."""
    done = subprocess.run(
        [sys.executable, "-m", "picsweb_sync.drift", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)
