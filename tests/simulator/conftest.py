"""Fixtures: a running simulator on fresh generated data and a client session for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from onefile_simulator import OneFileSimulator, generate_dataset

CUSTOMER_TOKEN = "sim-customer-token"


@pytest.fixture
def start_sim() -> Iterator[Callable[..., OneFileSimulator]]:
    """Starts simulators on fresh data (tests change it) and stops them after the test."""
    started: list[OneFileSimulator] = []

    def start(**options: Any) -> OneFileSimulator:
        sim = OneFileSimulator(generate_dataset(seed=7).onefile, **options)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(start_sim: Callable[..., OneFileSimulator]) -> OneFileSimulator:
    return start_sim()


def login(sim: OneFileSimulator) -> requests.Session:
    """A session carrying a fresh X-TokenID, the way a client uses the API."""
    answer = requests.post(
        f"{sim.base_url}/Authentication", headers={"X-CustomerToken": sim.customer_token}, timeout=5
    )
    answer.raise_for_status()
    session = requests.Session()
    session.headers["X-TokenID"] = answer.text.strip().strip('"')
    return session


@pytest.fixture
def api(sim: OneFileSimulator) -> Iterator[requests.Session]:
    session = login(sim)
    yield session
    session.close()
