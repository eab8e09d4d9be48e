"""Fixtures: a OneFile simulator over real HTTP and hooks pointed at it via AIRFLOW_CONN_ONEFILE_API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onefile.hook import OneFileHook
from onefile_simulator import OneFileSimulator, generate_dataset

CUSTOMER_TOKEN = "sim-customer-token"

# Tiny waits so retry tests take milliseconds, not the production seconds.
FAST = {
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "timeout_seconds": 5.0,
    "max_retries": 3,
}


def conn_json(base_url: str, password: str = CUSTOMER_TOKEN, **extra: Any) -> str:
    """The JSON form of the onefile_api connection, as a deployment would put it in an env var."""
    return json.dumps({"conn_type": "http", "host": base_url, "password": password, "extra": extra})


@pytest.fixture
def start_sim() -> Iterator[Callable[..., OneFileSimulator]]:
    """Starts simulators on fresh data (tests mutate it) and stops them after the test."""
    started: list[OneFileSimulator] = []

    def start(**options: Any) -> OneFileSimulator:
        dataset = generate_dataset(seed=7, organisations=2, learners=20)
        sim = OneFileSimulator(
            dataset.onefile, customer_token=CUSTOMER_TOKEN, **{"rate_limit": (300, 60.0), **options}
        )
        sim.__enter__()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.__exit__(None, None, None)


@pytest.fixture
def sim(start_sim: Callable[..., OneFileSimulator]) -> OneFileSimulator:
    return start_sim()


@pytest.fixture
def hook_for(monkeypatch: pytest.MonkeyPatch) -> Callable[..., OneFileHook]:
    """Builds a hook for a simulator, sharing its clock, with FAST retries unless overridden."""

    def build(
        sim: OneFileSimulator, password: str = CUSTOMER_TOKEN, **overrides: Any
    ) -> OneFileHook:
        monkeypatch.setenv("AIRFLOW_CONN_ONEFILE_API", conn_json(sim.base_url, password))
        return OneFileHook(clock=sim.clock.now, **{**FAST, **overrides})

    return build


@pytest.fixture
def hook(sim: OneFileSimulator, hook_for: Callable[..., OneFileHook]) -> OneFileHook:
    return hook_for(sim)
