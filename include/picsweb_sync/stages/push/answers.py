"""What OneFile answered, recorded in batches, and only while the push holds its lock.

**Bookkeeping in batches.** What OneFile answered is recorded a batch at a time
(:class:`Bookkeeping`: every :data:`BOOKKEEPING_BATCH` answers or
:data:`BOOKKEEPING_SECONDS`, and whenever the sending loop ends, by success or by an
exception), not in two or three transactions of its own per call. The one fact that must be
durable before a call, a review create's VisitID before its Review call, is still written
alone, first (:mod:`~picsweb_sync.stages.push.creates`). Losing a batch (the process killed
outright) repeats no write: a learning aim update still pending is re-checked against
OneFile before it is sent again and finds its fields filled, and a create with its VisitID
but no Review ID is of unknown outcome, settled by the next push
(:mod:`~picsweb_sync.stages.push.recovery`).

**Fenced.** A push holds its writers' lock (``ctx.lock``) and checks its fence
(``picsweb_sync.run.locks.Fence``) in every staging transaction that records an answer (the
batches, the VisitID before a Review call, a failure: :func:`fence_check`), and before every
OneFile write (:func:`fence_now`: ``check_now``, a guarded one-row ``UPDATE`` of the lock in
a transaction of its own: 1.4 ms measured on the tests' PostgreSQL under load, against the
200 ms a call slot lasts at 300 calls a minute), so no write follows a lost lock. A push
whose lock was taken over (its heartbeat stopped for longer than the staleness limit and
another holder claimed it) stops at once with ``LockLost``: it sends nothing more and
records nothing more; what it sent before is recovered by the new holder as after a crash.

Named ``answers``, not ``bookkeeping``: that name is the context manager callers use as
``push.bookkeeping``, and a module of the same name would hide it (or be hidden by it).
"""

from __future__ import annotations

import contextvars
import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from picsweb_sync.run import locks
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push.log import log
from picsweb_sync.storage import picsweb_writes, project_tables
from picsweb_sync.storage.project_tables import outbox as outbox_table
from picsweb_sync.storage.project_tables.common import database_now, utcnow


def fence_check(fence: Any, conn: sa.Connection) -> None:
    """The lock's fence check inside this staging transaction (``None``: no fence)."""
    if fence is not None:
        fence.check(conn)


def fence_now(fence: Any) -> None:
    """The lock's fence check in a short transaction of its own, before a OneFile write."""
    if fence is not None:
        fence.check_now()


# ----- bookkeeping: what OneFile answered, recorded in batches -----------------------------
BOOKKEEPING_BATCH = 200
"""OneFile answers recorded per batch (outbox states, audit rows, PICSWeb links)."""
BOOKKEEPING_SECONDS = 5.0
"""The longest an answer waits to be recorded while the push keeps sending."""


@dataclass
class Bookkeeping:
    """The answers of one push's OneFile writes not yet recorded, written in batches.

    One transaction per write (the outbox state, an audit row built through pandas, the
    PICSWeb link) cost about 20 ms of the sync's own time per OneFile call; a batch costs
    well under one a call. Recorded, in this order, at :meth:`flush`: the created reviews'
    links in PICSWeb (with their audit), then in staging every outbox state with the
    payload sent, the OneFile-side audit and the rejects of links that could not be made.
    With a ``fence``, each flush first checks that the push still holds its lock (and
    records nothing once it does not).
    """

    ctx: RunContext
    batch: int = BOOKKEEPING_BATCH
    seconds: float = BOOKKEEPING_SECONDS
    fence: Any = None
    marks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    audits: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    links: list[tuple[int, int, int, datetime | None]] = dataclasses.field(default_factory=list)
    _since: float | None = None
    _clock_offset: timedelta | None = None

    def aim_sent(self, outbox_id: int, target_id: int, payload: dict[str, Any]) -> None:
        self.marks.append({"outbox_id": outbox_id, "state": "sent", "payload": payload})
        for name, value in payload.items():
            self.audits.append(_aim_audit(target_id, name, value))
        self._added()

    def skipped(self, outbox_id: int, reason: str) -> None:
        self.marks.append({"outbox_id": outbox_id, "state": "skipped", "error": reason})
        self._added()

    def review_created(
        self, outbox_id: int, review_id: int, onefile_id: int, *basis_at: datetime | None
    ) -> None:
        """A create OneFile accepted; ``basis_at`` (naive UTC) is when it did: now when not
        given (the create was just answered); ``None``: not known (a review found by
        search without its ``CreatedOn``)."""
        basis = basis_at[0] if basis_at else self.database_now()
        self.links.append((outbox_id, review_id, onefile_id, basis))
        self._added()

    def database_now(self) -> datetime:
        """Now on the staging database's clock, the clock extracts are stamped by (see
        ``extract._stage``), so a reflection's basis compares with them whatever this
        worker's own clock says: the offset is read once per push, then applied."""
        if self._clock_offset is None:
            self._clock_offset = database_now(self.ctx.staging) - utcnow()
        return utcnow() + self._clock_offset

    def _added(self) -> None:
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if len(self.marks) + len(self.links) >= self.batch or now - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        marks, audits, links = self.marks, self.audits, self.links
        self.marks, self.audits, self.links, self._since = [], [], [], None
        if marks or links:
            _record_answers(self.ctx, marks, audits, links, self.fence)


_BOOKKEEPING: contextvars.ContextVar[Bookkeeping | None] = contextvars.ContextVar(
    "push_bookkeeping", default=None
)


@contextmanager
def bookkeeping(ctx: RunContext, fence: Any = None) -> Iterator[Bookkeeping]:
    """Record the answers of the writes made inside in batches; whatever is left is
    recorded on the way out, also when an exception ends the sending (it then propagates),
    except after the lock was lost (``fence``): then nothing more is recorded.
    Per thread (and per task): two pushes side by side each keep their own."""
    book = Bookkeeping(ctx, fence=fence)
    token = _BOOKKEEPING.set(book)
    try:
        yield book
    except locks.LockLost:
        book.marks, book.audits, book.links = [], [], []  # nothing further is recorded
        raise
    finally:
        _BOOKKEEPING.reset(token)
        if fence is None or getattr(fence, "lost", None) is None:
            book.flush()


@contextmanager
def book_of(ctx: RunContext) -> Iterator[Bookkeeping]:
    """The current push's :class:`Bookkeeping`, or (outside one: recovery, a single
    write) one recorded on the way out."""
    book = _BOOKKEEPING.get()
    if book is not None and book.ctx is ctx:
        yield book
    else:
        with bookkeeping(ctx) as book:
            yield book


def _aim_audit(target_id: int, name: str, value: Any) -> dict[str, Any]:
    return {
        "system": "onefile",
        "entity": "LearningAim",
        "entity_key": target_id,
        "field": name,
        "old": None,  # sent only where OneFile was blank, re-checked just before
        "new": value,
    }


def _record_answers(
    ctx: RunContext,
    marks: list[dict[str, Any]],
    audits: list[dict[str, Any]],
    links: list[tuple[int, int, int, datetime | None]],
    fence: Any = None,
) -> None:
    """Write a batch of answers: PICSWeb links first (one transaction), then staging; with
    a ``fence``, only while the lock is still held (checked before the links, and in the
    staging transaction itself)."""
    rejects = []
    if links:
        fence_now(fence)
        frame = pd.DataFrame(
            [link[:3] for link in links], columns=["outbox_id", "review_id", "onefile_id"]
        )
        with ctx.picsweb.begin() as conn:
            linked = picsweb_writes.link_reviews(conn, ctx.run_id, frame)
        for (outbox_id, review_id, onefile_id, _), made in zip(links, linked, strict=True):
            marks.append({"outbox_id": outbox_id, "state": "sent", "result_id": onefile_id})
            audits.append(
                {
                    "system": "onefile",
                    "entity": "Review",
                    "entity_key": onefile_id,
                    "field": "created_from_picsweb_review",
                    "old": None,
                    "new": review_id,
                }
            )
            if not made:
                reason = (
                    f"OneFile review {onefile_id} was created for PICSWeb review {review_id}, "
                    "which is gone or already holds another OneFile ID: link them by hand"
                )
                rejects.append({"entity": "review", "source_id": str(review_id), "reason": reason})
                log.warning("%s", reason)
    with ctx.staging.begin() as conn:
        fence_check(fence, conn)
        for mark in marks:
            project_tables.mark_outbox(conn, **mark)
        if audits:
            project_tables.audit(conn, ctx.run_id, pd.DataFrame(audits))
        if rejects:
            project_tables.add_rejects(conn, ctx.run_id, "push_reviews", pd.DataFrame(rejects))
        if links:
            bases = pd.DataFrame(
                links, columns=["outbox_id", "target_id", "result_id", "basis_at"]
            ).astype({"basis_at": "datetime64[us]"})
            outbox_table.record_create_bases(conn, ctx.run_id, bases)


_ANSWERED_NOW: Any = object()  # record_review_id's default basis: the moment it is called


def record_review_id(
    ctx: RunContext,
    outbox_id: int,
    review_id: int,
    onefile_id: int,
    *,
    basis_at: datetime | None = _ANSWERED_NOW,
) -> None:
    """Write the new Review ID to PICSWeb (with its audit), then close the outbox row: with
    the current push's batch (:func:`bookkeeping`), else at once. The create's basis (when
    OneFile accepted it) is ``basis_at`` when given (a review found by search: its
    ``CreatedOn``, ``None`` if OneFile gave none), else the moment this is called, just
    after OneFile answered the create.

    The PICSWeb review is linked whatever happened to it since the upload, as long as it
    has no OneFile ID yet; one that is gone or linked to another review is reported."""
    with book_of(ctx) as book:
        basis = () if basis_at is _ANSWERED_NOW else (basis_at,)
        book.review_created(outbox_id, review_id, onefile_id, *basis)


def skip(ctx: RunContext, outbox_id: int, reason: str) -> None:
    with book_of(ctx) as book:
        book.skipped(outbox_id, reason)
    log.info("outbox %s %s", outbox_id, reason)
