"""Fixtures: the preflight's pair of systems (the OneFile simulator over HTTP, a PICSWeb on
the tests' PostgreSQL, from one generated dataset) with the dataset's day today, so its
reviews fall in the report's window around now; the report run as the real command in a
subprocess. The proofs that nothing was written are the preflight's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.preflight.conftest import Outcome, Pair, open_pair, run_command


@pytest.fixture
def pair(pg_url: str) -> Iterator[Pair]:
    """Two organisations of 6 learners, before the sync's first run (PICSWeb's trainees
    already carry their OneFile learner IDs, as the generator makes them)."""
    with open_pair(pg_url, today=dt.datetime.now(dt.UTC).date()) as opened:
        yield opened


def run_drift(env: dict[str, str], *args: str) -> Outcome:
    """``python -m picsweb_sync.drift`` as an operator runs it: its own process, the
    connections in ``AIRFLOW_CONN_*`` variables."""
    return run_command("picsweb_sync.drift", env, *args)
