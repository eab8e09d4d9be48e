"""Push: the OneFile change sets sent through the outbox, each row exactly once, and only
while it still applies.

The outbox (``sync_outbox``) holds one row per OneFile write with its state. A push sends
only rows not yet done, and marks each one as OneFile answers, so a retried or cleared
task resends only what did not go.

**Re-checked at most a minute before sending.** A push may run long after its merge (a
task cleared days later, a run waiting for another's lock), and at 300 calls a minute a
long push sends its last row tens of minutes after its first. So every row is checked
against what both systems hold *now*, at most :data:`CHECK_MAX_AGE_SECONDS` (measured on a
monotonic clock) before it is sent, a chunk at a time:

- a learning-aim update sends only the fields that OneFile still has blank and that PICSWeb
  still holds the value of (PICSWeb fills OneFile's blanks, never overwrites them). OneFile
  is re-read the cheapest way per organisation, as the one snapshot before the loop was:
  each concerned learner's aims (``LearningAim/Search`` by ``UserID``) when they are fewer
  than the organisation's pages, else the organisation's pages (by ``OrganisationID``),
  read one page at a time just before the aims on that page are sent; PICSWeb is read
  for the same aims right after. Every OneFile page is read once, as before, so re-checking
  costs no more calls than the old snapshot, whatever the push's length; only an update
  that could not be sent within the limit (the budget held up by 429s or other tasks) is
  re-read again, by its learner;
- a review create is planned again from the PICSWeb review as it is now (rule 5) per
  chunk of :func:`chunk_calls` calls (two a create), so a chunk is sent within the limit:
  one that is no longer eligible (attendance entered, linked meanwhile, deleted) is not
  sent; one that was rescheduled is sent with its new time.
A row that no longer applies is ``skipped``, with the reason in ``last_error``.

**Exactly once.** Creating a review is two calls (Visit, then Review). The VisitID is
recorded in the outbox *before* the Review call. A row with a VisitID and no Review ID is
a create whose outcome is unknown: the Review call may have reached OneFile before a
crash. Every review push, of any run, first settles all such rows: it looks for the review
by what was *sent* (the learner, in the organisation the learner is in *now*, looked up by
``GET /User/{id}``, and the recorded ``ScheduledFor``, told apart by the VisitID; failing
that, among all the learner's reviews), and links the one it finds to its PICSWeb review
whatever happened to that row since. A create is never repeated while its outcome is
unknown, and the retention purge never deletes such a row.

**A failed create is settled in the same try.** A Visit or Review call that fails for a
reason worth retrying (a server fault, no answer, a 429 the hook gave up on) is tried again
within the task, :data:`CREATE_ATTEMPTS` times in all with the hook's backoff: after a
Review call that may have reached OneFile, the review is first looked for (as above) and
linked if found, else the Review call is sent again on the same visit. So a transient 5xx
costs seconds, not Airflow's retry delay. After :data:`FAILING_CREATES_TO_STOP_RETRYING`
creates in a row failed every attempt (OneFile is down), the rest are tried once each.
Each create recovered or re-sent is logged with its PICSWeb review, OneFile visit and
review IDs (:mod:`picsweb_sync.stages.push_log`).

**Visits left empty.** OneFile has no visit search in the contract, so a visit the sync
made and could not use stays in OneFile: a review refused after its visit was made, a
review changed or no longer eligible after a crash between its two calls, a create of
unknown outcome not found by a later run, and a Visit call that failed with a server fault
or no answer (the visit may exist; its ID is unknown). Each is recorded
(``sync_empty_visit``, :func:`picsweb_sync.storage.project_tables.outbox.empty_visits`) and reported
as a reject of the run (``OneFile visit left empty``), naming the visit, the learner and
what to do in OneFile. No review is ever duplicated.

**Bookkeeping in batches.** What OneFile answered is recorded a batch at a time
(:class:`Bookkeeping`: every :data:`BOOKKEEPING_BATCH` answers or
:data:`BOOKKEEPING_SECONDS`, and whenever the sending loop ends, by success or by an
exception), not in two or three transactions of its own per call. The one fact that must be
durable before a call, a review create's VisitID before its Review call, is still written
alone, first. Losing a batch (the process killed outright) repeats no write: a learning aim
update still pending is re-checked against OneFile before it is sent again and finds its
fields filled, and a create with its VisitID but no Review ID is of unknown outcome, settled
by the next push as above.

**Fenced.** A push holds its writers' lock (``ctx.lock``) and checks its fence
(``picsweb_sync.run.locks.Fence``) in every staging transaction that records an answer (the
batches, the VisitID before a Review call, a failure), and before every OneFile write
(``check_now``, a guarded one-row ``UPDATE`` of the lock in a transaction of its own:
1.4 ms measured on the tests' PostgreSQL under load, against the 200 ms a call slot lasts at
300 calls a minute), so no write follows a lost lock. A push whose lock was taken over (its heartbeat stopped for longer than
the staleness limit and another holder claimed it) stops at once with ``LockLost``: it
sends nothing more and records nothing more; what it sent before is recovered by the
new holder as after a crash.

**Dry run** (``ctx.dry_run``): the same re-checks, read-only, and no OneFile write call.
Nothing is enqueued (no outbox row a later run could send), unknown creates are left for
a real run to settle and nothing is copied back to PICSWeb; the counts a real push records
say what it *would* do (``sent``: would send, ``skipped``: would not), and what it would
send is kept for the sync page (``picsweb_sync.run.dry_run``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from onefile.hook import OneFileApiError, full_jitter_backoff
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.ukdates import date_to_onefile
from picsweb_sync.rules import reviews
from picsweb_sync.rules.blank import is_blank
from picsweb_sync.run import dry_run, locks
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages import merge as merge_stage
from picsweb_sync.stages import push_log
from picsweb_sync.storage import picsweb_tables, picsweb_writes, project_tables
from picsweb_sync.storage.project_tables import outbox as outbox_table
from picsweb_sync.storage.project_tables.common import database_now, utcnow
from picsweb_sync.storage.sqlframes import read_frame, select_in_chunks

log = logging.getLogger(__name__)

AIM_UPDATE = project_tables.AIM_UPDATE
REVIEW_CREATE = project_tables.REVIEW_CREATE


_NOT_DATA = (401, 403, 429)  # 4xx answers that say nothing about the row's data

CHECK_MAX_AGE_SECONDS = 50.0
"""The longest a re-check (the reads of both systems) may precede the write it allows:
a minute, less a margin for the call itself. Measured on :func:`_monotonic`."""
CHUNK_BUDGET_SHARE = 0.9
"""The share of the call budget of :data:`CHECK_MAX_AGE_SECONDS` a chunk is sized to (the
rest is slack for retries and the other tasks sharing the customer's budget)."""
CREATE_ATTEMPTS = 4
"""Calls a review create's Visit or Review call may take within one try: the first and
three more, each after the hook's backoff (1, 2, 4 s at most by default)."""
FAILING_CREATES_TO_STOP_RETRYING = 3
"""Creates in a row that failed every attempt, after which the rest are tried once each
(OneFile is down: retrying each would only stretch the try)."""

_monotonic: Callable[[], float] = time.monotonic  # the clock of every re-check's age
_sleep: Callable[[float], None] = time.sleep


class PushIncomplete(RuntimeError):
    """Some outbox rows failed for a reason worth retrying; the task fails so Airflow retries."""


def _fence_check(fence: Any, conn: sa.Connection) -> None:
    """The lock's fence check inside this staging transaction (``None``: no fence)."""
    if fence is not None:
        fence.check(conn)


def _fence_now(fence: Any) -> None:
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
def _answers(ctx: RunContext) -> Iterator[Bookkeeping]:
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
        _fence_now(fence)
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
        _fence_check(fence, conn)
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


def _rows_where_in(conn: sa.Connection, table: sa.Table, column: str, ids) -> pd.DataFrame:
    """Rows of ``table`` whose ``column`` is one of ``ids``, in bounded ``IN`` lists."""
    return select_in_chunks(
        conn, lambda chunk: sa.select(table).where(table.c[column].in_(chunk)), ids
    )


# ----- learning aims (rules 2-4: PICSWeb fills OneFile's blanks) ---------------------------
def push_learning_aims(ctx: RunContext) -> dict[str, int]:
    ctx.require_qualifications()
    if ctx.dry_run:
        return _dry_run_learning_aims(ctx)
    counts = {"sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.lock(locks.QUALIFICATIONS) as fence:
        with ctx.staging.begin() as conn:
            _fence_check(fence, conn)
            changes = project_tables.read_change_set(conn, ctx.run_id, "onefile_updates")
            items = aim_update_items(changes)
            project_tables.enqueue_outbox(conn, ctx.run_id, AIM_UPDATE, items)
            pending = project_tables.pending_outbox(conn, ctx.run_id, AIM_UPDATE)
            staged = project_tables.read_staging(conn, ctx.run_id, "learning_aims", with_raw=False)
        if not pending.empty:
            hook = ctx.onefile()
            with bookkeeping(ctx, fence):
                for outcome in send_aim_updates(ctx, hook, pending, staged, fence):
                    counts[outcome] += 1
    return _finish(ctx, "push_learning_aims", AIM_UPDATE, counts)


def chunk_calls(hook: Any) -> int:
    """OneFile calls one chunk may make (its re-reads and its writes) so that all of them
    go within :data:`CHECK_MAX_AGE_SECONDS` of its re-check at the hook's rate limit, less
    :data:`CHUNK_BUDGET_SHARE`'s slack: 225 at OneFile's 300 calls a minute."""
    settings = _hook_settings(hook)
    calls = getattr(settings, "calls_per_minute", 300) or 300
    period = getattr(settings, "rate_period_seconds", 60.0) or 60.0
    share = min(1.0, CHECK_MAX_AGE_SECONDS / float(period))
    return max(2, int(calls * share * CHUNK_BUDGET_SHARE))


def _hook_settings(hook: Any) -> Any:
    """The hook's tuning as its connection sets it (read once, before the first call)."""
    ready = getattr(hook, "_ready", None)
    if callable(ready):
        ready()  # loads the connection (its extras: page size, rate); no OneFile call
    return getattr(hook, "settings", None)


def send_aim_updates(
    ctx: RunContext, hook: Any, pending: pd.DataFrame, staged: pd.DataFrame, fence: Any = None
) -> Iterator[str]:
    """Send the ``pending`` aim updates, each re-checked against OneFile and PICSWeb at
    most :data:`CHECK_MAX_AGE_SECONDS` before it goes; yields each one's outcome.

    Per organisation, the cheaper of the two ways :func:`current_learning_aims` chooses
    between: each concerned learner's aims, read just before that learner's updates are
    sent; or the organisation's pages, read one batch of rows (a page, at most a chunk's
    budget) at a time just before the updates of the aims on it are sent. An update left
    over (its aim on no page read: gone from OneFile's search, or not sent in time) is
    re-read by its learner and sent, or skipped if its aim is really gone."""
    settings = _hook_settings(hook)
    page = int(getattr(settings, "page_size", 100) or 100)
    batch_rows = max(1, min(page, chunk_calls(hook)))
    ids = pending["target_id"].map(int)
    staged_aims = staged.drop_duplicates("learning_aim_id").set_index("learning_aim_id")
    learner_of = staged_aims["learner_id"].reindex(ids.to_numpy())
    rows_by_aim = pending.assign(target_id=ids).set_index("target_id", drop=False)
    left = _Left(rows_by_aim)
    wanted = staged_aims[staged_aims.index.isin(ids)]
    for organisation_id, group in wanted.groupby("organisation_id", sort=True):
        learners = [int(x) for x in group["learner_id"].dropna().unique()]
        organisation_rows = int((staged["organisation_id"] == organisation_id).sum())
        if reads_by_learner(len(learners), organisation_rows, page):
            for learner_id in learners:
                yield from _send_learner(ctx, hook, left, learner_of, learner_id, fence)
        else:
            aims = group.index
            rows = hook.search_learning_aims(organisation_id=int(organisation_id))
            for read_at, batch in _batches(rows, batch_rows):
                found = onefile_fields.parse_learning_aims(batch, organisation_id=0).frame
                ids_on_it = found["learning_aim_id"]
                on_it = left.rows(ids_on_it[ids_on_it.isin(aims)])
                yield from _send_checked(ctx, hook, left, on_it, found, read_at, fence)
    # Left over: not on any page read (gone, or moved to another learner or organisation),
    # or not sent within the limit (the budget held up): re-read by learner and sent, or
    # skipped when the learner's aims no longer hold it.
    for _ in range(3):
        if left.now().empty:
            break
        learners = learner_of.reindex(left.now().index)
        for learner_id in learners.dropna().unique():
            yield from _send_learner(ctx, hook, left, learner_of, int(learner_id), fence)
        now = left.now()
        unknown = now[learner_of.reindex(now.index).isna().to_numpy()]
        if not unknown.empty:  # no staged learner to read it by: not in OneFile's search now
            empty = onefile_fields.parse_learning_aims([], organisation_id=0).frame
            yield from _send_checked(ctx, hook, left, unknown, empty, _monotonic(), fence)
    for row in left.now().itertuples(index=False):  # a re-check never fitted in the limit
        yield _record_failure(
            ctx,
            row,
            OneFileApiError(
                None,
                None,
                f"not sent: OneFile could not be re-read within {CHECK_MAX_AGE_SECONDS:.0f} s "
                "of sending it",
                "POST",
                f"/LearningAim/{int(row.target_id)}",
            ),
            fence=fence,
        )


@dataclass
class _Left:
    """The pending aim updates (by aim) and which of them are done (sent or skipped)."""

    by_aim: pd.DataFrame
    done: set[int] = dataclasses.field(default_factory=set)

    def now(self) -> pd.DataFrame:
        """The updates not yet done."""
        return self.by_aim[~self.by_aim.index.isin(self.done)]

    def rows(self, aims: pd.Series) -> pd.DataFrame:
        """The updates not yet done of the aims ``aims`` (learning aim IDs)."""
        now = self.now()
        return now[now.index.isin(aims)]


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[tuple[float, list]]:
    """The rows of a lazy search in batches of ``size``, each with the monotonic time at or
    before which every page it came from was read (a batch may start on a page read while
    the one before it was gathered: its time is that one's start)."""
    earlier = None
    while True:
        started = _monotonic()
        batch = list(itertools.islice(rows, size))
        if not batch:
            return
        yield (started if earlier is None else earlier), batch
        earlier = started


def _send_learner(
    ctx: RunContext,
    hook: Any,
    left: _Left,
    learner_of: pd.Series,
    learner_id: int,
    fence: Any,
) -> Iterator[str]:
    """Re-read one learner's aims in OneFile, then send (or skip) the pending updates among
    ``left`` of the aims that learner had when staged or has now."""
    read_at = _monotonic()
    found = onefile_fields.parse_learning_aims(
        list(hook.search_learning_aims(user_id=learner_id)), organisation_id=0
    ).frame
    now = left.now()
    theirs = learner_of.reindex(now.index).eq(learner_id).fillna(False).to_numpy()
    mine = now[theirs | now.index.isin(found["learning_aim_id"])]
    yield from _send_checked(ctx, hook, left, mine, found, read_at, fence)


def _send_checked(
    ctx: RunContext,
    hook: Any,
    left: _Left,
    rows: pd.DataFrame,
    onefile_now: pd.DataFrame,
    read_at: float,
    fence: Any,
) -> Iterator[str]:
    """Check ``rows`` against ``onefile_now`` (read at ``read_at``) and PICSWeb (read now),
    then send each still within :data:`CHECK_MAX_AGE_SECONDS` of ``read_at``; the rows done
    are added to ``left.done``, those out of time are not."""
    if rows.empty:
        return
    aims = [int(t) for t in rows["target_id"]]
    with ctx.picsweb.connect() as conn:
        picsweb_now = _rows_where_in(
            conn, picsweb_tables.trainee_qualification, "onefile_learning_aim_id", aims
        )
    onefile_now = onefile_now[onefile_now["learning_aim_id"].isin(aims)]
    checked = aim_fields_still_to_fill(rows.reset_index(drop=True), onefile_now, picsweb_now)
    for row in checked.itertuples(index=False):  # one API call per row: no set form
        if pd.isna(row.reason) and _monotonic() - read_at > CHECK_MAX_AGE_SECONDS:
            continue  # re-checked too long ago: stays in ``left``, re-read by its learner
        left.done.add(int(row.target_id))
        yield _send_aim_update(ctx, hook, row, fence)


def _dry_run_learning_aims(ctx: RunContext) -> dict[str, int]:
    """What :func:`push_learning_aims` would send now: each aim update re-checked against
    OneFile (searches only) and PICSWeb, nothing sent or enqueued."""
    counts = {"sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.staging.connect() as conn:
        changes = project_tables.read_change_set(conn, ctx.run_id, "onefile_updates")
        staged = project_tables.read_staging(conn, ctx.run_id, "learning_aims", with_raw=False)
        loaded = dry_run.would_apply(conn, ctx.run_id, "qualifications")
    items = aim_update_items(changes)
    would_send = changes.iloc[0:0]
    if not items.empty:
        aims = [int(t) for t in items["target_id"]]
        onefile_now = current_learning_aims(ctx.onefile(), staged, aims)
        quals = picsweb_tables.trainee_qualification
        touched = loaded.loc[loaded["table"] == quals.name, "key"]
        with ctx.picsweb.connect() as conn:  # the rows linked to the aims, or that would be
            linked = _rows_where_in(conn, quals, "onefile_learning_aim_id", aims)
            changing = _rows_where_in(conn, quals, "tq_id", touched)
        rows = pd.concat([linked, changing], ignore_index=True).drop_duplicates("tq_id")
        picsweb_now = dry_run.as_loaded(rows, loaded, quals.name, "tq_id")
        picsweb_now = picsweb_now[picsweb_now["onefile_learning_aim_id"].isin(aims).fillna(False)]
        checked = aim_fields_still_to_fill(items, onefile_now, picsweb_now)
        kept = {
            (int(target), field)
            for target, payload in zip(checked["target_id"], checked["payload"], strict=True)
            for field in payload
        }
        pairs = zip(changes["entity_id"].map(int), changes["field"], strict=True)
        would_send = changes[[pair in kept for pair in pairs]]
        counts["sent"] = int(checked["reason"].isna().sum())
        counts["skipped"] = len(checked) - counts["sent"]
        for target, why in zip(checked["target_id"], checked["reason"], strict=True):
            if not pd.isna(why):
                log.info("dry run: learning aim %s would not be sent: %s", target, why)
    with ctx.staging.begin() as conn:
        dry_run.record_aim_updates(conn, ctx.run_id, would_send)
    return _finish(ctx, "push_learning_aims", AIM_UPDATE, counts)


def aim_update_items(changes: pd.DataFrame) -> pd.DataFrame:
    """One outbox item per learning aim: a partial body of every field to fill."""
    if changes.empty:
        return pd.DataFrame({"target_id": pd.Series(dtype="Int64"), "payload": []})
    payloads = changes.groupby("entity_id").apply(
        lambda g: dict(zip(g["field"], g["new"], strict=True)), include_groups=False
    )
    return pd.DataFrame({"target_id": payloads.index, "payload": payloads.to_numpy()})


def reads_by_learner(learners: int, organisation_rows: int, page: int) -> bool:
    """Whether re-reading ``learners`` learners' aims one search each costs no more calls than
    the organisation's ``organisation_rows`` aims a ``page`` at a time. A learner's search is
    one short page and the call that confirms it ends there (``OneFileHook.search``): two
    calls; the organisation's pages cost one each, and one more when the last is short."""
    pages = -(-organisation_rows // page)
    return 2 * learners <= pages + (1 if organisation_rows % page else 0)


def current_learning_aims(hook: Any, staged: pd.DataFrame, aim_ids: list[int]) -> pd.DataFrame:
    """The learning aims ``aim_ids`` as OneFile holds them now (parsed), read with as few
    calls as the run's staged aims allow: per learner when few learners are concerned,
    else the organisation's pages."""
    wanted = staged[staged["learning_aim_id"].isin(aim_ids)]
    rows: list[dict[str, Any]] = []
    page = getattr(getattr(hook, "settings", None), "page_size", 100) or 100
    for organisation_id, group in wanted.groupby("organisation_id"):
        learners = group["learner_id"].dropna().unique()
        organisation_rows = int((staged["organisation_id"] == organisation_id).sum())
        if reads_by_learner(len(learners), organisation_rows, page):
            for learner_id in learners:
                rows.extend(hook.search_learning_aims(user_id=int(learner_id)))
        else:
            rows.extend(hook.search_learning_aims(organisation_id=int(organisation_id)))
    parsed = onefile_fields.parse_learning_aims(rows, organisation_id=0).frame
    return parsed[parsed["learning_aim_id"].isin(aim_ids)]


def aim_fields_still_to_fill(
    pending: pd.DataFrame, onefile_now: pd.DataFrame, picsweb_now: pd.DataFrame
) -> pd.DataFrame:
    """Each pending aim update reduced to the fields that still apply: OneFile's value is
    still blank and PICSWeb still holds the value to send (in OneFile's wire form).

    Returns ``pending`` with ``payload`` reduced and ``reason`` (NA when something is
    left to send, else why nothing is). Checked a column at a time (one field of every
    update at once), not a value at a time: a run's aim updates are thousands of rows.
    """
    columns = {v: k for k, v in onefile_fields.ONEFILE_NAMES["learning_aims"].items()}
    onefile = onefile_now.drop_duplicates("learning_aim_id").set_index("learning_aim_id")
    linked = picsweb_now.dropna(subset=["onefile_learning_aim_id"])
    picsweb = linked.drop_duplicates("onefile_learning_aim_id").set_index("onefile_learning_aim_id")
    fields = pd.DataFrame(
        [
            (position, int(target), name, columns[name], value)
            for position, (target, payload) in enumerate(
                zip(pending["target_id"], pending["payload"], strict=True)
            )
            for name, value in payload.items()
        ],
        columns=["position", "aim", "field", "column", "value"],
    )
    in_onefile = fields["aim"].isin(onefile.index).to_numpy()
    in_picsweb = fields["aim"].isin(picsweb.index).to_numpy()
    onefile_blank = np.ones(len(fields), dtype=bool)
    picsweb_wire = np.full(len(fields), None, dtype=object)
    for column, rows in fields.groupby("column", sort=False).groups.items():
        aims = fields.loc[rows, "aim"]
        now_onefile = onefile[column].reindex(aims).astype(object)
        onefile_blank[rows] = is_blank(now_onefile).to_numpy()
        picsweb_wire[rows] = _wire_values(picsweb[column].reindex(aims), column)
    payloads: list[dict[str, Any]] = [{} for _ in range(len(pending))]
    why: list[list[str]] = [[] for _ in range(len(pending))]
    for i, (position, name, value) in enumerate(
        zip(fields["position"], fields["field"], fields["value"], strict=True)
    ):
        if not in_onefile[i]:
            why[position].append("the learning aim is no longer in OneFile's search")
        elif not in_picsweb[i]:
            why[position].append("no PICSWeb qualification is linked to it any more")
        elif not onefile_blank[i]:
            why[position].append(f"{name} is no longer blank in OneFile")
        elif picsweb_wire[i] != value:
            why[position].append(f"{name} changed in PICSWeb since the merge")
        else:
            payloads[position][name] = value
    reasons = [
        pd.NA if kept else "; ".join(dict.fromkeys(reason)) or "nothing to send"
        for kept, reason in zip(payloads, why, strict=True)
    ]
    return pending.assign(payload=payloads, reason=pd.Series(reasons, dtype="string").to_numpy())


def _wire_values(values: pd.Series, column: str) -> np.ndarray:
    """PICSWeb values as the merge sends them to OneFile (dates midnight UTC, text
    trimmed), ``None`` for missing."""
    values = values.astype(object).where(values.notna(), None)
    if column.endswith("_date"):
        wire = date_to_onefile(values)
    else:
        wire = values.map(lambda v: str(v).strip(), na_action="ignore")
    return wire.astype(object).where(values.notna(), None).to_numpy()


def _send_aim_update(ctx: RunContext, hook: Any, row: Any, fence: Any = None) -> str:
    """Send one re-checked aim update (after the fence's check); its answer (with the
    payload sent, and the audit of each field) is recorded by the current
    :func:`bookkeeping`, a failure at once."""
    outbox_id = int(row.outbox_id)
    if not pd.isna(row.reason):
        _skip(ctx, outbox_id, f"not sent: {row.reason}")
        return "skipped"
    _fence_now(fence)
    try:
        hook.update_learning_aim(int(row.target_id), row.payload)
    except OneFileApiError as exc:
        return _record_failure(ctx, row, exc, payload=row.payload, fence=fence)
    with _answers(ctx) as book:
        book.aim_sent(outbox_id, int(row.target_id), row.payload)
    return "sent"


# ----- reviews (rule 5: new PICSWeb reviews created in OneFile) ----------------------------
def push_reviews(ctx: RunContext) -> dict[str, int]:
    if ctx.dry_run:
        return _dry_run_reviews(ctx)
    counts = {"recovered": 0, "sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.lock(locks.REVIEWS) as fence:
        project_tables.ensure_project_tables(ctx.staging, _PUSH_TABLES)
        with ctx.staging.connect() as conn:
            unknown = project_tables.unknown_creates(conn)
        hook = ctx.onefile() if not unknown.empty else None
        with bookkeeping(ctx, fence):
            counts["recovered"] = settle_unknown_creates(ctx, hook, unknown, fence)
        if not (ctx.plan.does_uploads and ctx.settings.upload_review_data):
            if counts["recovered"]:
                _finish(ctx, "push_reviews", REVIEW_CREATE, counts)
            ctx.require_upload()  # after settling: a create of unknown outcome never waits
        with ctx.staging.begin() as conn:
            _fence_check(fence, conn)
            uploads = project_tables.read_change_set(conn, ctx.run_id, "review_uploads")
            items = review_create_items(uploads)
            project_tables.enqueue_outbox(conn, ctx.run_id, REVIEW_CREATE, items)
            pending = project_tables.pending_outbox(conn, ctx.run_id, REVIEW_CREATE)
        if not pending.empty:
            hook = hook or ctx.onefile()
            with bookkeeping(ctx, fence):
                for outcome in send_review_creates(ctx, hook, pending, fence):
                    counts[outcome] += 1
        _fence_now(fence)
        counts["fields_reflected"] = reflect_uploaded_reviews(ctx)
    return _finish(ctx, "push_reviews", REVIEW_CREATE, counts)


_PUSH_TABLES = (outbox_table.sync_create_basis, outbox_table.sync_empty_visit)
"""Tables a review push writes that an older deployment's ``start_run`` did not create."""


def send_review_creates(
    ctx: RunContext, hook: Any, pending: pd.DataFrame, fence: Any = None
) -> Iterator[str]:
    """Send the ``pending`` creates a chunk at a time, each chunk planned again from
    PICSWeb as it is now (:func:`plan_again`) and sent within :data:`CHECK_MAX_AGE_SECONDS`
    of that: a chunk is :func:`chunk_calls` calls (two a create), and a create that would
    go later than that is put back for the next chunk. Yields each create's outcome."""
    per_chunk = max(1, chunk_calls(hook) // 2)
    queue = list(pending.itertuples(index=False))
    failing = 0  # creates in a row that failed every attempt
    while queue:
        chunk, queue = queue[:per_chunk], queue[per_chunk:]
        planned_at = _monotonic()
        fresh = plan_again(ctx, [int(row.target_id) for row in chunk])
        for position, row in enumerate(chunk):
            if position and _monotonic() - planned_at > CHECK_MAX_AGE_SECONDS:
                queue = chunk[position:] + queue  # planned too long ago: planned again
                break
            attempts = CREATE_ATTEMPTS if failing < FAILING_CREATES_TO_STOP_RETRYING else 1
            try:
                outcome = _create_review(
                    ctx, hook, row, fresh.get(int(row.target_id)), fence, attempts
                )
            except OneFileApiError as exc:
                state = _record_failure(ctx, row, exc, fence=fence)
                failing = failing + 1 if state == "failed" else 0
                yield state
                continue
            failing = 0
            yield outcome


def _dry_run_reviews(ctx: RunContext) -> dict[str, int]:
    """What :func:`push_reviews` would create now: each planned upload planned again from
    the PICSWeb review as it is now, and the fields rule 6 would then copy back onto those
    reviews (:func:`would_reflect`); nothing sent, enqueued, settled or written."""
    ctx.require_upload()
    counts = {"recovered": 0, "sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.staging.connect() as conn:
        uploads = project_tables.read_change_set(conn, ctx.run_id, "review_uploads")
    would_send = uploads.iloc[0:0]
    if not uploads.empty:
        review_ids = [int(r) for r in uploads["review_id"]]
        answer, fresh = _plan_again(ctx, review_ids)
        would_send = fresh[fresh["review_id"].isin(review_ids)]
        counts["sent"] = len(would_send)
        counts["skipped"] = len(review_ids) - len(would_send)
        for review_id, why in answer.items():
            if not isinstance(why, dict):
                log.info("dry run: PICSWeb review %s would not be sent: %s", review_id, why)
    reflected = None
    if ctx.settings.download_review_data and not would_send.empty:
        reflected = would_reflect(ctx, would_send).applied
    counts["fields_reflected"] = 0 if reflected is None else len(reflected)
    with ctx.staging.begin() as conn:
        dry_run.record_review_creates(conn, ctx.run_id, would_send, reflected)
    return _finish(ctx, "push_reviews", REVIEW_CREATE, counts)


def review_create_items(uploads: pd.DataFrame) -> pd.DataFrame:
    """The Visit and Review bodies of each upload, exactly as the contract names them."""
    items = [
        {"target_id": int(u.review_id), "payload": review_create_payload(u)}
        for u in uploads.itertuples(index=False)  # builds small dicts, no data-dependent logic
    ]
    return pd.DataFrame(items, columns=["target_id", "payload"])


def review_create_payload(upload: Any) -> dict[str, Any]:
    """The Visit and Review bodies of one planned upload (a ``review_uploads`` row)."""
    return {
        "visit": {
            "LearnerID": int(upload.learner_id),
            "OrganisationID": int(upload.organisation_id),
            "DateFrom": upload.visit_from,
            "DateTo": upload.visit_to,
            "VisitTypeID": int(upload.visit_type_id),
            "SMSReminder": False,
            "AssessorID": int(upload.assessor_id),
        },
        "review": {
            "LearnerID": int(upload.learner_id),
            "Status": 1,
            "ScheduledFor": upload.scheduled_for,
            "AssessorID": int(upload.assessor_id),
        },
        "organisation_id": int(upload.organisation_id),
    }


def plan_again(ctx: RunContext, review_ids: list[int]) -> dict[int, dict[str, Any] | str]:
    """Rule 5 applied again, now, to these PICSWeb reviews: review ID -> the payload to send,
    or the reason it can no longer be sent."""
    return _plan_again(ctx, review_ids)[0]


def _plan_again(
    ctx: RunContext, review_ids: list[int]
) -> tuple[dict[int, dict[str, Any] | str], pd.DataFrame]:
    """:func:`plan_again`, and the ``review_uploads`` rows of the reviews still to send."""
    plan, current, trainees = merge_stage.upload_plan(
        ctx, lambda conn: _rows_where_in(conn, picsweb_tables.review, "review_id", review_ids)
    )
    answer: dict[int, dict[str, Any] | str] = {
        int(review_id): "the PICSWeb review was deleted" for review_id in review_ids
    }
    joined = current.merge(
        trainees[["trainee_id", "onefile_learner_id", "main_officer_id"]],
        on="trainee_id",
        how="left",
    )
    for review_id, why in zip(
        joined["review_id"], reviews.review_upload_eligibility(joined), strict=True
    ):
        if not pd.isna(why):
            answer[int(review_id)] = f"no longer eligible for upload ({why.replace('_', ' ')})"
    for review_id, why in zip(plan.rejects["review_id"], plan.rejects["reason"], strict=True):
        answer[int(review_id)] = f"cannot be uploaded now: {why}"
    for upload in plan.uploads.itertuples(index=False):
        answer[int(upload.review_id)] = review_create_payload(upload)
    return answer, plan.uploads


def _create_review(
    ctx: RunContext,
    hook: Any,
    row: Any,
    fresh: dict[str, Any] | str | None,
    fence: Any = None,
    attempts: int = CREATE_ATTEMPTS,
) -> str:
    """Send one pending create, re-checked: ``'sent'`` or ``'skipped'``.

    A Visit or Review call that fails for a reason worth retrying is tried again here, up to
    ``attempts`` calls each with the hook's backoff; after a Review call that may have
    reached OneFile, the review is looked for first (:func:`find_created_review`) and linked
    if found. Raises the last :class:`OneFileApiError` when the attempts run out or OneFile
    refuses the data (a visit made for a refused review is recorded as left empty)."""
    outbox_id = int(row.outbox_id)
    visit_id = None if pd.isna(row.visit_id) else int(row.visit_id)
    earlier_visit, retried_after = visit_id, None  # for the log of a re-send (push_log)
    if not isinstance(fresh, dict):
        why = f"the PICSWeb review {fresh or 'changed'}"
        if visit_id is not None:  # made by an earlier try whose review never came (settled)
            _left_empty(ctx, row, row.payload, visit_id, f"not sent: {why}", fence)
        _skip(ctx, outbox_id, f"not sent: {why}")
        return "skipped"
    if visit_id is not None and fresh != row.payload:
        # This row's earlier try made a visit whose review never reached OneFile (settled
        # above), and the review has changed since: that visit is left empty, a new one made.
        _left_empty(
            ctx,
            row,
            row.payload,
            visit_id,
            "the PICSWeb review changed after its visit was made and before its review was",
            fence,
            restart=fresh,
        )
        visit_id = None
    payload = fresh if visit_id is None else row.payload
    for attempt in range(attempts):
        last = attempt == attempts - 1
        if attempt:
            _sleep(_backoff(hook, attempt - 1))
        if visit_id is None:
            _fence_now(fence)
            try:
                visit_id = hook.create_visit(payload["visit"])
            except OneFileApiError as exc:
                if _may_have_happened(exc):
                    _left_empty(
                        ctx, row, payload, None, f"POST /Visit failed ({_answer(exc)})", fence
                    )
                if last or not _worth_retrying(exc):
                    raise
                push_log.trying_again(row, None, exc)
                retried_after = exc
                continue
            # Recorded before the Review call (see module doc), with what is being sent, in
            # one transaction (with the fence's check): the only write a create waits for.
            with ctx.staging.begin() as conn:
                _fence_check(fence, conn)
                if payload != row.payload:
                    project_tables.set_payload(conn, outbox_id, payload)
                project_tables.mark_outbox(conn, outbox_id, "pending", visit_id=visit_id)
        else:
            _fence_now(fence)
        try:
            onefile_id = hook.create_review({**payload["review"], "VisitID": visit_id})
        except OneFileApiError as exc:
            if not _worth_retrying(exc):
                if _refused(exc):  # OneFile refused the review: its visit holds none
                    _left_empty(
                        ctx, row, payload, visit_id, f"POST /Review refused ({exc.message})", fence
                    )
                raise
            if _may_have_happened(exc):
                found = find_created_review(hook, payload, visit_id)
                if found is not None:
                    record_review_id(
                        ctx, outbox_id, int(row.target_id), found[0], basis_at=found[1]
                    )
                    how = f"its Review call failed ({exc}) but had reached OneFile"
                    push_log.recovered(row, found[0], visit_id, how)
                    return "sent"
            if last:
                raise
            push_log.trying_again(row, visit_id, exc)
            retried_after = exc
            continue
        record_review_id(ctx, outbox_id, int(row.target_id), onefile_id)
        push_log.sent(row, onefile_id, visit_id, earlier_visit, attempt, retried_after)
        return "sent"
    raise AssertionError("unreachable: the last attempt returns or raises")


def _backoff(hook: Any, attempt: int) -> float:
    settings = getattr(hook, "settings", None)
    base = float(getattr(settings, "backoff_base_seconds", 1.0))
    cap = float(getattr(settings, "backoff_max_seconds", 60.0))
    return full_jitter_backoff(attempt + 1, base, cap)


def _refused(exc: OneFileApiError) -> bool:
    """OneFile refused the data (a 4xx about the row): nothing was made."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in _NOT_DATA


def _may_have_happened(exc: OneFileApiError) -> bool:
    """A failed create that OneFile may have carried out all the same: a server fault, or
    no answer at all (a 429 is refused before anything happens)."""
    return exc.status is None or exc.status >= 500


def _worth_retrying(exc: OneFileApiError) -> bool:
    """Transient: a server fault, no answer, or a 429 the hook gave up waiting out."""
    return _may_have_happened(exc) or exc.status == 429


def _answer(exc: OneFileApiError) -> str:
    return "no answer" if exc.status is None else f"HTTP {exc.status}"


def _left_empty(
    ctx: RunContext,
    row: Any,
    payload: dict[str, Any],
    visit_id: int | None,
    reason: str,
    fence: Any,
    restart: dict[str, Any] | None = None,
) -> None:
    """Record a visit made for ``row`` (sent with ``payload``) that no review will use:
    ``visit_id`` (``None``: a Visit call of unknown outcome). With ``restart``, the row
    starts afresh with that payload (its visit let go) in the same transaction."""
    visit = payload["visit"]
    frame = pd.DataFrame(
        [
            {
                "outbox_id": int(row.outbox_id),
                "review_id": int(row.target_id),
                "visit_id": visit_id,
                "learner_id": int(visit["LearnerID"]),
                "organisation_id": int(visit["OrganisationID"]),
                "visit_from": visit.get("DateFrom"),
                "reason": reason,
            }
        ]
    ).astype({"visit_id": "Int64"})
    with ctx.staging.begin() as conn:
        _fence_check(fence, conn)
        outbox_table.record_empty_visits(conn, ctx.run_id, frame)
        if restart is not None:
            note = f"visit {visit_id} left empty"
            project_tables.restart_create(conn, int(row.outbox_id), restart, note)
    log.warning(
        "outbox %s: OneFile visit %s of learner %s (for PICSWeb review %s) left empty: %s",
        row.outbox_id,
        "(ID unknown)" if visit_id is None else visit_id,
        visit["LearnerID"],
        row.target_id,
        reason,
    )


def settle_unknown_creates(
    ctx: RunContext, hook: Any, unknown: pd.DataFrame, fence: Any = None
) -> int:
    """Find out what became of every review create whose outcome is unknown (any run) and
    link each review found to its PICSWeb review. Returns how many were found."""
    found_count = 0
    learners: dict[int, int | None] = {}
    for row in unknown.itertuples(index=False):
        visit_id = int(row.visit_id)
        found = find_created_review(hook, row.payload, visit_id, learners)
        if found is not None:
            record_review_id(
                ctx, int(row.outbox_id), int(row.target_id), found[0], basis_at=found[1]
            )
            how = f"the outcome of run {row.run_id}'s create was unknown"
            push_log.recovered(row, found[0], visit_id, how)
            found_count += 1
        elif row.run_id != ctx.run_id:
            reason = (
                f"the Review call never reached OneFile (no review has visit {visit_id}); "
                "the review is planned again by the next run that uploads"
            )
            _left_empty(ctx, row, row.payload, visit_id, reason, fence)
            _skip(ctx, int(row.outbox_id), f"{reason}; visit {visit_id} is left empty")
        # A row of this run that was not found is sent below, re-checked, with its visit.
    return found_count


def find_created_review(
    hook: Any,
    payload: dict[str, Any],
    visit_id: int,
    learners: dict[int, int | None] | None = None,
) -> tuple[int, datetime | None] | None:
    """The review an earlier attempt created with this VisitID, if OneFile has it, with
    when OneFile created it (naive UTC, ``None`` when not given): first around the
    ``ScheduledFor`` that was sent, then among all the learner's reviews (it may have been
    rescheduled in OneFile since).

    A Review search needs an organisation (contract: ``OrganisationID``, optionally
    ``LearnerID``), and OneFile finds a learner's reviews in the organisation the learner is
    in *now*: the learner is looked up first (``GET /User/{id}``; ``learners`` caches it
    across calls), so a learner moved since the create is still found. A learner OneFile no
    longer has is searched for in the organisation the create was sent to, and so is one
    that moved, if not found where it is now (should OneFile keep a review where it was
    made)."""
    review = payload["review"]
    learner_id = int(review["LearnerID"])
    sent_to = int(payload["organisation_id"])
    now_in = _current_organisation(hook, learner_id, learners)
    scheduled = datetime.fromisoformat(review["ScheduledFor"].replace("Z", "+00:00"))
    windows = [(scheduled - timedelta(days=1), scheduled + timedelta(days=1)), (None, None)]
    for organisation_id in dict.fromkeys(o for o in (now_in, sent_to) if o is not None):
        for date_from, date_to in windows:
            for row in hook.search_reviews(
                organisation_id, learner_id=learner_id, date_from=date_from, date_to=date_to
            ):
                if row.get("VisitID") == visit_id:
                    return int(row["ID"]), _created_on(row.get("CreatedOn"))
    return None


def _current_organisation(
    hook: Any, learner_id: int, learners: dict[int, int | None] | None
) -> int | None:
    if learners is not None and learner_id in learners:
        return learners[learner_id]
    try:
        organisation_id = hook.get_user(learner_id).get("OrganisationID")
    except OneFileApiError as exc:
        if exc.status != 404:
            raise
        organisation_id = None
    organisation_id = int(organisation_id) if isinstance(organisation_id, int) else None
    if learners is not None:
        learners[learner_id] = organisation_id
    return organisation_id


def _created_on(value: Any) -> datetime | None:
    """A OneFile instant as naive UTC; ``None`` when absent or not an instant."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return instant.astimezone(UTC).replace(tzinfo=None)


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
    with _answers(ctx) as book:
        basis = () if basis_at is _ANSWERED_NOW else (basis_at,)
        book.review_created(outbox_id, review_id, onefile_id, *basis)


def reflect_uploaded_reviews(ctx: RunContext) -> int:
    """Apply rule 6 at once to the reviews this run created in OneFile.

    A created review is, in OneFile, scheduled and not started, with the chosen assessor;
    the next download would write exactly that back (attended ``U``, the assessor's
    officer, a 09:00 start time where PICSWeb had none). Writing it now keeps PICSWeb equal
    to OneFile and lets the next run change nothing. The rule is the download's own
    (``merge_reviews``); the write is the same guarded, audited ``apply_updates``, so a
    retry reflects nothing twice. A review whose attendance was recorded in PICSWeb since
    its upload is left alone: that entry is newer than anything this push knows.

    Each update says what OneFile data it is based on (``basis_at``, :func:`with_basis`):
    the moment OneFile accepted the create, when the payload sent was OneFile's state of
    that review.
    """
    if not ctx.settings.download_review_data:  # rule 6 is off: PICSWeb keeps its own values
        return 0
    with ctx.staging.connect() as conn:
        sent = project_tables.outbox_rows(conn, ctx.run_id, REVIEW_CREATE, ("sent",))
        bases = outbox_table.create_bases(conn, ctx.run_id)
        assessors = project_tables.read_staging(conn, ctx.run_id, "assessors", with_raw=False)
    sent = sent[sent["result_id"].notna()]
    if sent.empty:
        return 0
    created = [
        {**p["review"], "ID": int(rid), "VisitID": int(vid), "StartedOn": None}
        for p, rid, vid in zip(sent["payload"], sent["result_id"], sent["visit_id"], strict=True)
    ]
    staged = onefile_fields.parse_reviews(created, organisation_id=0).frame
    with ctx.picsweb.begin() as conn:
        linked = picsweb_writes.reviews_with_onefile_ids(conn, staged["review_id"])
        updates = _reflected_updates(conn, staged, linked, assessors)
        updates = with_basis(updates, bases)
        unknown = updates["basis_at"].isna()
        updates = updates[~unknown]
        applied = picsweb_writes.apply_updates(conn, ctx.run_id, updates, work_key="review_uploads")
    if unknown.any():  # a write without a basis is refused: the next download brings them
        log.warning(
            "%d field(s) of created reviews not reflected: the outbox has no time OneFile "
            "accepted their create (sent by an earlier version); the next run's download "
            "sets them",
            int(unknown.sum()),
        )
    for row in applied.stale.itertuples(index=False):
        log.info(
            "review %s: %s not reflected: a later download (run %s) wrote newer OneFile data",
            row.key,
            row.field,
            row.newer_run,
        )
    return len(applied.applied)


def with_basis(updates: pd.DataFrame, bases: pd.DataFrame) -> pd.DataFrame:
    """``updates`` (``picsweb_updates`` of ``review`` rows) with ``basis_at``: when OneFile
    accepted the create of the PICSWeb review each one writes (naive UTC; ``NaT`` where the
    outbox has no such time), from ``bases`` (:func:`~picsweb_sync.storage.project_tables.outbox.create_bases`)."""
    when = bases.drop_duplicates("target_id", keep="last").set_index("target_id")["basis_at"]
    when.index = when.index.astype("int64")
    keys = updates["key"].astype("int64")
    basis = pd.to_datetime(when.reindex(keys.to_numpy()).to_numpy())
    return updates.assign(basis_at=pd.Series(basis, index=updates.index).astype("datetime64[us]"))


def _reflected_updates(
    conn: sa.Connection, staged: pd.DataFrame, linked: pd.DataFrame, assessors: pd.DataFrame
) -> pd.DataFrame:
    """Rule 6's ``picsweb_updates`` for the created reviews ``staged`` (as OneFile holds
    them) onto their PICSWeb reviews ``linked``, only where the review is still as it was
    uploaded (attendance blank or ``U``, no actual date)."""
    trainees = read_frame(conn, sa.select(picsweb_tables.trainee))
    officers = read_frame(conn, sa.select(picsweb_tables.officer))
    as_uploaded = linked[is_blank(linked["attended"]) | linked["attended"].eq("U").fillna(False)]
    as_uploaded = as_uploaded[as_uploaded["actual_date"].isna()]
    merged = reviews.merge_reviews(staged, trainees, officers, assessors, linked)
    updates = merged.picsweb_updates
    return updates[updates["key"].isin(as_uploaded["review_id"])]


def would_reflect(ctx: RunContext, would_send: pd.DataFrame) -> picsweb_writes.ApplyResult:
    """What :func:`reflect_uploaded_reviews` would write after creating ``would_send``
    (``review_uploads`` rows), read-only: each review as OneFile would hold it, tied to its
    PICSWeb review by a stand-in ID (its own ``review_id``; OneFile's is not known yet)."""
    created = [
        {**review_create_payload(u)["review"], "ID": int(u.review_id), "StartedOn": None}
        for u in would_send.itertuples(index=False)
    ]
    staged = onefile_fields.parse_reviews(created, organisation_id=0).frame
    with ctx.staging.connect() as conn:
        assessors = project_tables.read_staging(conn, ctx.run_id, "assessors", with_raw=False)
    with ctx.picsweb.connect() as conn:
        review = picsweb_tables.review
        linked = _rows_where_in(conn, review, "review_id", would_send["review_id"])
        linked = linked.assign(onefile_system_id=linked["review_id"])
        updates = _reflected_updates(conn, staged, linked, assessors)
        return picsweb_writes.classify_updates(conn, updates)


# ----- shared -----------------------------------------------------------------------------
def _skip(ctx: RunContext, outbox_id: int, reason: str) -> None:
    with _answers(ctx) as book:
        book.skipped(outbox_id, reason)
    log.info("outbox %s %s", outbox_id, reason)


def _record_failure(
    ctx: RunContext,
    row: Any,
    exc: OneFileApiError,
    payload: dict[str, Any] | None = None,
    fence: Any = None,
) -> str:
    """A 4xx means OneFile refused the data: a reject, not retried. Anything else (5xx
    after the hook's own retries, timeouts, and 401/403/429, which are about the session
    or the rate, not the data) is ``failed`` and retried by the task. Recorded at once
    (with ``payload``, what was sent, when given), with the ``fence``'s check."""
    state = "rejected" if _refused(exc) else "failed"
    with ctx.staging.begin() as conn:
        _fence_check(fence, conn)
        project_tables.mark_outbox(conn, int(row.outbox_id), state, error=str(exc), payload=payload)
    log.warning("outbox %s (%s %s): %s", row.outbox_id, row.kind, row.target_id, exc)
    return state


def _finish(ctx: RunContext, stage: str, kind: str, counts: dict[str, int]) -> dict[str, int]:
    with ctx.staging.begin() as conn:
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
        refused = _refused_rows(conn, ctx.run_id, kind)
        project_tables.record_rejects(conn, ctx.run_id, f"{stage}_refused", refused)
        failed = project_tables.outbox_rows(conn, ctx.run_id, kind, ("failed",))
    log.info("%s: %s", stage, counts)
    if counts["failed"]:
        errors = list(dict.fromkeys(failed["last_error"].dropna().astype(str)))
        shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        raise PushIncomplete(
            f"{counts['failed']} OneFile write(s) failed and will be retried ({shown}); "
            "see sync_outbox"
        )
    return counts


def _refused_rows(conn: sa.Connection, run_id: str, kind: str) -> pd.DataFrame:
    rows = project_tables.outbox_rows(conn, run_id, kind, ("rejected",))
    return pd.DataFrame(
        {
            "entity": rows["kind"],
            "source_id": rows["target_id"].map(str),
            "reason": "OneFile refused: " + rows["last_error"].astype(str),
            "raw": rows["payload"].map(lambda p: json.dumps(p, sort_keys=True)),
        }
    )
