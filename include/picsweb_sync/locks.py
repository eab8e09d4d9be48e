"""Named locks in the staging database, so runs side by side take turns at writing.

Airflow runs backfill runs side by side (ten at once by default, whatever the DAG's
``max_active_runs``) and beside the scheduled run. Every guard of the sync is per row
(``UPDATE ... WHERE col = :old``, idempotent inserts, the outbox), but two runs pushing the
same review at the same moment could both find it unsent and both create it. So the tasks
that write take a lock first: one for the qualification writes, one for the review
writes (:data:`QUALIFICATIONS`, :data:`REVIEWS`).

A lock is a row of ``sync_lock`` claimed with one guarded ``UPDATE`` (portable to SQL
Server, PostgreSQL and SQLite), naming its holder (run, task, try). The holder renews a
heartbeat every :data:`HEARTBEAT` while it works; a holder whose heartbeat stopped for
:data:`STALE_AFTER` (its worker was killed) loses the lock to the next claimant. A task
that waits says for whom in its log, and gives up with :class:`LockTimeout` after its
timeout (Airflow then retries it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from picsweb_sync.project_tables import sync_lock, utcnow

log = logging.getLogger(__name__)

QUALIFICATIONS = "qualification_writes"
REVIEWS = "review_writes"
HEARTBEAT = timedelta(seconds=20)
STALE_AFTER = timedelta(minutes=2)
POLL = timedelta(seconds=2)


class LockTimeout(RuntimeError):
    """The lock stayed taken for longer than the task was willing to wait."""


def _ensure_row(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if conn.execute(select(sync_lock.c.name).where(sync_lock.c.name == name)).first():
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(sync_lock).values(name=name))
    except IntegrityError:  # another claimant inserted it first: the row is there
        pass


def try_claim(engine: Engine, name: str, holder: str, now: datetime | None = None) -> bool:
    """Claim ``name`` for ``holder`` if it is free, stale, or already ``holder``'s."""
    now = now or utcnow()
    table = sync_lock.c
    with engine.begin() as conn:
        claimed = conn.execute(
            update(sync_lock)
            .where(
                table.name == name,
                or_(
                    table.holder.is_(None),
                    table.holder == holder,
                    table.heartbeat_at < now - STALE_AFTER,
                ),
            )
            .values(holder=holder, acquired_at=now, heartbeat_at=now)
        ).rowcount
    return claimed == 1


def current_holder(engine: Engine, name: str) -> tuple[str | None, datetime | None]:
    """Who holds ``name`` and since when (``None`` when free)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(sync_lock.c.holder, sync_lock.c.acquired_at).where(sync_lock.c.name == name)
        ).first()
    return (row.holder, row.acquired_at) if row else (None, None)


def release(engine: Engine, name: str, holder: str) -> None:
    """Free ``name`` if ``holder`` still holds it (a stale holder never frees a successor)."""
    with engine.begin() as conn:
        conn.execute(
            update(sync_lock)
            .where(sync_lock.c.name == name, sync_lock.c.holder == holder)
            .values(holder=None, heartbeat_at=None)
        )


def _beat(engine: Engine, name: str, holder: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT.total_seconds()):
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(sync_lock)
                    .where(sync_lock.c.name == name, sync_lock.c.holder == holder)
                    .values(heartbeat_at=utcnow())
                )
        except Exception:  # a missed beat is retried; only STALE_AFTER of them loses the lock
            log.warning("could not renew the %s lock's heartbeat", name, exc_info=True)


@contextmanager
def held(
    engine: Engine,
    name: str,
    holder: str,
    timeout: timedelta,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold lock ``name`` for the ``with`` block, waiting up to ``timeout`` for it."""
    _ensure_row(engine, name)
    deadline = time.monotonic() + timeout.total_seconds()
    announced = None
    while not try_claim(engine, name, holder):
        other, since = current_holder(engine, name)
        if other != announced:
            log.info(
                "waiting for %s to release the %s lock (held since %s UTC)", other, name, since
            )
            announced = other
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"gave up after {timeout} waiting for the {name} lock, held by {other} since "
                f"{since} UTC; if that task is no longer running, the lock frees itself "
                f"{STALE_AFTER} after its last heartbeat"
            )
        sleep(POLL.total_seconds())
    log.info("holding the %s lock as %s", name, holder)
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(engine, name, holder, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        release(engine, name, holder)
