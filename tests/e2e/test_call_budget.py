"""A whole run of the real DAG, with OneFile's limit made small: every task that calls
OneFile (each organisation's extracts, both pushes) takes its calls from one budget shared
through the staging database, so OneFile never sees more than the limit in any window
and never answers 429, though each task starts a hook (and a session) of its own."""

from __future__ import annotations

import json

import sqlalchemy as sa

from picsweb_sync.run import call_budget as cb
from tests.e2e.conftest import FAST_HOOK

LIMIT, PERIOD = 8, 1.0


def busiest_window(stamps: list[float], period: float) -> int:
    stamps = sorted(stamps)
    return max(
        (
            sum(1 for later in stamps[i:] if later < start + period)
            for i, start in enumerate(stamps)
        ),
        default=0,
    )


def test_every_task_of_a_run_shares_one_call_budget(world, monkeypatch):
    world.sim.rate_limit = (LIMIT, PERIOD)
    onefile = {
        "conn_type": "http",
        "host": world.sim.base_url,
        "password": world.sim.customer_token,
        "extra": {**FAST_HOOK, "calls_per_minute": LIMIT, "rate_period_seconds": PERIOD},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ONEFILE_API", json.dumps(onefile))

    run = world.run()

    assert str(run.state) == "success"
    calls = world.sim.calls
    sessions = sum(1 for call in calls if call.path == "/Authentication")
    assert sessions >= 6  # a hook per task: the limit had many holders
    assert [call for call in calls if call.status == 429] == []
    assert busiest_window([call.at for call in calls], PERIOD) <= LIMIT
    with world.picsweb.connect() as conn:
        budgets = conn.execute(sa.select(cb.sync_call_budget)).all()
    assert [(row.calls, row.claims > 0) for row in budgets] == [(LIMIT, True)]
