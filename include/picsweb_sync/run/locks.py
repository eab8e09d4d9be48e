"""Named locks in the staging database, so runs side by side take turns at writing.

Airflow runs backfill runs side by side (ten at once by default, whatever the DAG's
``max_active_runs``) and beside the scheduled run. Every guard of the sync is per row
(``UPDATE ... WHERE col = :old``, idempotent inserts, the outbox), but two runs pushing the
same review at the same moment could both find it unsent and both create it. So the tasks
that write take a lock first: one for the qualification writes, one for the review
writes (:data:`QUALIFICATIONS`, :data:`REVIEWS`).

A lock is a row of ``sync_fenced_lock`` (``project_tables.sync_lock``) claimed with one
guarded ``UPDATE`` (portable to SQL Server, PostgreSQL and SQLite), naming its holder (run,
task, try). The holder renews a heartbeat every :data:`HEARTBEAT` while it works; a holder
whose heartbeat stopped for :data:`STALE_AFTER` (its worker was killed) loses the lock to
the next claimant. A task that waits says for whom in its log, and gives up with
:class:`LockTimeout` after its timeout (Airflow then retries it).

**One clock.** Every lock time (the claim, the heartbeat, the staleness test) is the
database's own clock (``project_tables.database_epoch``), read inside the statement that
uses it, never a worker's clock: a worker whose clock runs minutes ahead cannot take a live
lock, and one whose clock runs behind cannot keep a dead one.

**Fencing.** A lock only says who *should* be writing; a holder paused for longer than
:data:`STALE_AFTER` (SIGSTOP, a frozen VM, a long GC pause) loses it without knowing and, once
resumed, would go on writing beside its successor. So every claim adds one to the row's
``token``, and the holder keeps its token in a :class:`Fence`. Before each write it checks
the fence: :meth:`Fence.check` inside its own staging-database transaction (a guarded
``UPDATE`` of the lock row, so the row stays locked until that transaction ends and no
claimant can take the lock between the check and the commit), :meth:`Fence.check_now` in a
short transaction of its own just before a call to OneFile. A fence whose token is no longer
the row's raises :class:`LockLost`, and the task stops before writing (Airflow retries it
later; every write is guarded, so the retry is safe). The heartbeat is the same guarded
``UPDATE``: when it finds the lock lost it records that, so the holder's next check raises
at once, and the ``with`` block ends with :class:`LockLost` even when the holder checked
nothing more. :func:`release` frees a lock only while the token is still the holder's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    Unicode,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from picsweb_sync.storage.project_tables import sync_lock
from picsweb_sync.storage.project_tables.common import INSTANT, database_epoch, epoch_instant

log = logging.getLogger(__name__)

QUALIFICATIONS = "qualification_writes"
REVIEWS = "review_writes"
# Module settings, read at each use (a test may make them small).
HEARTBEAT = timedelta(seconds=20)
STALE_AFTER = timedelta(minutes=2)
POLL = timedelta(seconds=2)

_table = sync_lock.c


class LockTimeout(RuntimeError):
    """The lock stayed taken for longer than the task was willing to wait."""


class LockLost(RuntimeError):
    """The holder's fencing token is no longer the lock's: someone else claimed the lock
    (this holder's heartbeat had stopped for longer than the staleness limit), so this
    holder must not write any more."""


@dataclass(frozen=True)
class LockState:
    """A lock's row as the database has it now."""

    holder: str | None
    token: int
    acquired_at: datetime | None  # naive UTC, on the database's clock
    heartbeat_age: float | None  # seconds since the last heartbeat, on the database's clock


class _Lost:
    """What a fence learned about losing its lock (set once, by whoever noticed first)."""

    def __init__(self) -> None:
        self._message: str | None = None
        self._guard = threading.Lock()

    def note(self, message: str) -> str:
        with self._guard:
            if self._message is None:
                self._message = message
            return self._message

    @property
    def message(self) -> str | None:
        return self._message


@dataclass(frozen=True)
class Fence:
    """The fencing token of a held lock: what a holder checks before each write."""

    engine: Engine
    name: str
    holder: str
    token: int
    _lost: _Lost = field(default_factory=_Lost, init=False, repr=False, compare=False)

    def check(self, conn: Connection) -> None:
        """Inside the caller's own (staging-database) write transaction: raise
        :class:`LockLost` unless this token is still the lock's current one.

        A guarded ``UPDATE`` of the lock row (``token = :token``, also refreshing
        ``heartbeat_at`` on the database clock), so the row stays locked until the caller's
        transaction ends and no claimant can take the lock between this check and the
        caller's commit. Once the lock is known lost (here or by the heartbeat), every
        check raises at once, without asking the database again."""
        if self._lost.message is not None:
            raise LockLost(self._lost.message)
        renewed = conn.execute(
            update(sync_lock)
            .where(
                _table.name == self.name,
                _table.holder == self.holder,
                _table.token == self.token,
            )
            .values(heartbeat_at=database_epoch())
        ).rowcount
        if renewed != 1:
            raise LockLost(self._lost.note(self._lost_text(lock_state(conn, self.name))))

    def check_now(self) -> None:
        """:meth:`check` in a short transaction of its own (before a OneFile write is sent)."""
        with self.engine.begin() as conn:
            self.check(conn)

    @property
    def lost(self) -> str | None:
        """Why the lock is known lost, or ``None`` while nothing says so."""
        return self._lost.message

    def _lost_text(self, now: LockState | None, outcome: str = "it stopped before writing") -> str:
        if now is None or now.holder is None:
            who = "nobody holds it now"
        else:
            who = f"{now.holder} holds it now (token {now.token}, since {now.acquired_at} UTC)"
        return (
            f"lost the {self.name} lock: {self.holder} held it with token {self.token}, but "
            f"{who}; its heartbeat had stopped for longer than {STALE_AFTER} (a paused or "
            f"frozen worker), so {outcome}"
        )


# The locks of the versions before the token (times by each worker's clock, naive UTC),
# read only, so that during an upgrade a task of this version waits for a task of the
# previous one still holding its lock there (best effort: the previous version does not
# see these locks). Nothing is read once the table is gone (it may be dropped after the
# upgrade).
_previous = Table(
    "sync_lock",
    MetaData(),
    Column("name", String(64), primary_key=True),
    Column("holder", Unicode(500)),
    Column("heartbeat_at", INSTANT),
)
_previous_present: dict[str, bool] = {}


def previous_version_holder(engine: Engine, name: str) -> str | None:
    """Who holds ``name`` in the previous version's ``sync_lock`` table, if its heartbeat
    is younger than :data:`STALE_AFTER` (``None`` when free, stale, or no such table)."""
    url = engine.url.render_as_string(hide_password=True)
    if url not in _previous_present:
        _previous_present[url] = inspect(engine).has_table(_previous.name)
    if not _previous_present[url]:
        return None
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(_previous.c.holder, _previous.c.heartbeat_at, database_epoch()).where(
                    _previous.c.name == name
                )
            ).first()
    except SQLAlchemyError:  # dropped meanwhile, or not this shape: nothing to wait for
        _previous_present[url] = False
        return None
    if row is None or row[0] is None or row[1] is None:
        return None
    if epoch_instant(row[2]) - row[1] > STALE_AFTER:
        return None
    return row[0]


def _ensure_row(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if conn.execute(select(_table.name).where(_table.name == name)).first():
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(sync_lock).values(name=name, token=0))
    except IntegrityError:  # another claimant inserted it first: the row is there
        pass


def try_claim(engine: Engine, name: str, holder: str) -> int | None:
    """Claim ``name`` for ``holder`` if it is free, stale (no heartbeat for
    :data:`STALE_AFTER` by the database's clock), or already ``holder``'s.

    Returns the new fencing token, or ``None`` when someone else holds the lock. Every claim
    makes a new token, a holder's own claim again too (its earlier fence is then lost)."""
    stale = STALE_AFTER.total_seconds()
    with engine.begin() as conn:
        claimed = conn.execute(
            update(sync_lock)
            .where(
                _table.name == name,
                or_(
                    _table.holder.is_(None),
                    _table.holder == holder,
                    _table.heartbeat_at.is_(None),
                    _table.heartbeat_at < database_epoch() - stale,
                ),
            )
            .values(
                holder=holder,
                token=_table.token + 1,
                acquired_at=database_epoch(),
                heartbeat_at=database_epoch(),
            )
        ).rowcount
        if claimed != 1:
            return None
        # Still inside the claim's transaction: the row stays ours to read.
        return conn.execute(select(_table.token).where(_table.name == name)).scalar_one()


def lock_state(bind: Engine | Connection, name: str) -> LockState | None:
    """Lock ``name``'s row now (``None`` when it was never claimed)."""
    statement = select(
        _table.holder,
        _table.token,
        _table.acquired_at,
        (database_epoch() - _table.heartbeat_at).label("age"),
    ).where(_table.name == name)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            row = conn.execute(statement).first()
    else:
        row = bind.execute(statement).first()
    if row is None:
        return None
    return LockState(row.holder, row.token, epoch_instant(row.acquired_at), row.age)


def current_holder(engine: Engine, name: str) -> tuple[str | None, datetime | None]:
    """Who holds ``name`` and since when (naive UTC; ``None`` when free)."""
    state = lock_state(engine, name)
    if state is None or state.holder is None:
        return None, None
    return state.holder, state.acquired_at


def release(engine: Engine, name: str, holder: str, token: int) -> bool:
    """Free ``name`` if ``holder`` still holds it with ``token``: a holder that lost the
    lock never frees its successor's. Whether it freed it."""
    with engine.begin() as conn:
        freed = conn.execute(
            update(sync_lock)
            .where(_table.name == name, _table.holder == holder, _table.token == token)
            .values(holder=None, heartbeat_at=None)
        ).rowcount
    return freed == 1


def _beat(fence: Fence, stop: threading.Event) -> None:
    """Renew ``fence``'s heartbeat every :data:`HEARTBEAT` until ``stop``; when the lock
    turns out lost, record it (the holder's next check raises) and stop beating."""
    while not stop.wait(HEARTBEAT.total_seconds()):
        try:
            fence.check_now()
        except LockLost as lost:
            log.error("%s", lost)
            return
        except Exception:  # a missed beat is retried; only STALE_AFTER of them loses the lock
            log.warning("could not renew the %s lock's heartbeat", fence.name, exc_info=True)


@contextmanager
def held(
    engine: Engine,
    name: str,
    holder: str,
    timeout: timedelta,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Fence]:
    """Hold lock ``name`` for the ``with`` block, waiting up to ``timeout`` for it; yields
    the holder's :class:`Fence`. The block ends with :class:`LockLost` when the lock was
    lost meanwhile, even if the block itself checked nothing more."""
    _ensure_row(engine, name)
    deadline = time.monotonic() + timeout.total_seconds()
    announced = None
    while True:
        previous = previous_version_holder(engine, name)
        if previous is None and (token := try_claim(engine, name, holder)) is not None:
            break
        if previous is not None:
            other, since = f"{previous} (the sync's previous version, in sync_lock)", None
        else:
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
    fence = Fence(engine, name, holder, token)
    log.info("holding the %s lock as %s (token %d)", name, holder, token)
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(fence, stop), daemon=True)
    beat.start()
    finished = False
    try:
        yield fence
        finished = True
    finally:
        stop.set()
        beat.join()
        freed = release(engine, name, holder, token)
    if finished and not freed:  # lost since its last check, and not checked again
        raise LockLost(
            fence.lost
            or fence._lost.note(
                fence._lost_text(
                    lock_state(engine, name),
                    "the task fails as its block ends, for Airflow to retry it",
                )
            )
        )
