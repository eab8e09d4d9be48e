"""One OneFile task in a process of its own, for tests/hook/test_call_budget.py.

``python -m tests.hook.budget_worker STAGING_URL CALLS USER_ID``: builds a hook whose
limiter is the budget shared through the staging database (as a task's ``RunContext``
does), says ``ready`` on stdout, waits for a line on stdin (so several workers start
calling together), makes ``CALLS`` reads of one user and says ``done``. The connection
comes from ``AIRFLOW_CONN_ONEFILE_API`` in the environment.
"""

from __future__ import annotations

import sys

from onefile.hook import OneFileHook
from picsweb_sync.run.budget_limiter import limiter_factory
from picsweb_sync.storage.engines import engine_for_url


def main(staging_url: str, calls: str, user_id: str) -> int:
    engine = engine_for_url(staging_url)
    hook = OneFileHook(limiter_factory=limiter_factory(engine), max_retries=3)
    hook._ready()  # connection read and budget tables made before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(calls)):
        hook.get_user(int(user_id))
    print(f"done {hook.calls_made}", flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
