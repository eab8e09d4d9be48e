"""A lock holder in a process of its own, for tests/data/test_locks.py (the paused holder).

``python -m tests.data.lock_holder URL NAME HOLDER STALE_SECONDS HEARTBEAT_SECONDS``: takes
lock ``NAME`` as ``HOLDER`` (with the staleness limit and heartbeat given, small for a test),
says ``holding TOKEN``, then for each number read from stdin writes one row of
:data:`fenced_write` in a transaction guarded by ``fence.check`` and says ``wrote N``. An
empty line or the end of stdin ends it (``released``, exit 0); a lost lock ends it with
``lost MESSAGE`` (exit 3).
"""

from __future__ import annotations

import sys
from datetime import timedelta

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from picsweb_sync.run import locks
from picsweb_sync.storage.engines import engine_for_url

# What the holders write, each row in a transaction guarded by its fence.
fenced_write = Table(
    "test_fenced_write",
    MetaData(),
    Column("n", Integer, primary_key=True),
    Column("writer", String(100), nullable=False),
)


def main(url: str, name: str, holder: str, stale: str, heartbeat: str) -> int:
    locks.STALE_AFTER = timedelta(seconds=float(stale))
    locks.HEARTBEAT = timedelta(seconds=float(heartbeat))
    engine = engine_for_url(url)
    try:
        with locks.held(engine, name, holder, timedelta(seconds=30)) as fence:
            print(f"holding {fence.token}", flush=True)
            while line := sys.stdin.readline().strip():
                with engine.begin() as conn:
                    fence.check(conn)
                    conn.execute(insert(fenced_write).values(n=int(line), writer=holder))
                print(f"wrote {line}", flush=True)
    except locks.LockLost as lost:
        print(f"lost {lost}", flush=True)
        return 3
    finally:
        engine.dispose()
    print("released", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
