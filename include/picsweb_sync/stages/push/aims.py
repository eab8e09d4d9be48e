"""``push_learning_aims``: the learning-aim updates (rules 2-4: PICSWeb fills OneFile's
blanks) sent through the outbox, each re-checked just before it goes; and its dry run.

A learning-aim update sends only the fields that OneFile still has blank and that PICSWeb
still holds the value of (PICSWeb fills OneFile's blanks, never overwrites them; the check
is :mod:`~picsweb_sync.stages.push.aim_recheck`). OneFile is re-read the cheapest way per
organisation, as the one snapshot before the loop was: each concerned learner's aims
(``LearningAim/Search`` by ``UserID``) when they are fewer than the organisation's pages,
else the organisation's pages (by ``OrganisationID``), read one page at a time just before
the aims on that page are sent; PICSWeb is read for the same aims right after. Every
OneFile page is read once, as before, so re-checking costs no more calls than the old
snapshot, whatever the push's length; only an update that could not be sent within the
limit (:data:`~picsweb_sync.stages.push.recheck.CHECK_MAX_AGE_SECONDS`: the budget held up by
429s or other tasks) is re-read again, by its learner.

Each answer is recorded in batches (:mod:`~picsweb_sync.stages.push.answers`); a pending
update whose batch was lost is re-checked before it is sent again and finds its fields
filled. A dry run makes the same re-checks, read-only, and sends and enqueues nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from onefile.hook import OneFileApiError
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.payloads import aim_update_items
from picsweb_sync.run import dry_run, locks
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push import recheck
from picsweb_sync.stages.push.aim_recheck import (
    aim_fields_still_to_fill,
    current_learning_aims,
    reads_by_learner,
)
from picsweb_sync.stages.push.answers import book_of, bookkeeping, fence_check, fence_now, skip
from picsweb_sync.stages.push.log import log
from picsweb_sync.stages.push.outcomes import finish, record_failure
from picsweb_sync.stages.push.recheck import CHECK_MAX_AGE_SECONDS, hook_settings, rows_where_in
from picsweb_sync.storage import picsweb_tables, project_tables

AIM_UPDATE = project_tables.AIM_UPDATE


def push_learning_aims(ctx: RunContext) -> dict[str, int]:
    ctx.require_qualifications()
    if ctx.dry_run:
        return _dry_run_learning_aims(ctx)
    counts = {"sent": 0, "skipped": 0, "rejected": 0, "failed": 0}
    with ctx.lock(locks.QUALIFICATIONS) as fence:
        with ctx.staging.begin() as conn:
            fence_check(fence, conn)
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
    return finish(ctx, "push_learning_aims", AIM_UPDATE, counts)


def send_aim_updates(
    ctx: RunContext, hook: Any, pending: pd.DataFrame, staged: pd.DataFrame, fence: Any = None
) -> Iterator[str]:
    """Send the ``pending`` aim updates, each re-checked against OneFile and PICSWeb at
    most :data:`~picsweb_sync.stages.push.recheck.CHECK_MAX_AGE_SECONDS` before it
    goes; yields each one's outcome.

    Per organisation, the cheaper of the two ways
    :func:`~picsweb_sync.stages.push.aim_recheck.current_learning_aims` chooses between:
    each concerned learner's aims, read just before that learner's updates are sent; or
    the organisation's pages, read one batch of rows (a page, at most a chunk's
    budget) at a time just before the updates of the aims on it are sent. An update left
    over (its aim on no page read: gone from OneFile's search, or not sent in time) is
    re-read by its learner and sent, or skipped if its aim is really gone."""
    settings = hook_settings(hook)
    page = int(getattr(settings, "page_size", 100) or 100)
    batch_rows = max(1, min(page, recheck.chunk_calls(hook)))
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
            yield from _send_checked(ctx, hook, left, unknown, empty, recheck.monotonic(), fence)
    for row in left.now().itertuples(index=False):  # a re-check never fitted in the limit
        yield record_failure(
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
        started = recheck.monotonic()
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
    read_at = recheck.monotonic()
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
    then send each still within :data:`~picsweb_sync.stages.push.recheck.CHECK_MAX_AGE_SECONDS`
    of ``read_at``; the rows done are added to ``left.done``, those out of time are not."""
    if rows.empty:
        return
    aims = [int(t) for t in rows["target_id"]]
    with ctx.picsweb.connect() as conn:
        picsweb_now = rows_where_in(
            conn, picsweb_tables.trainee_qualification, "onefile_learning_aim_id", aims
        )
    onefile_now = onefile_now[onefile_now["learning_aim_id"].isin(aims)]
    checked = aim_fields_still_to_fill(rows.reset_index(drop=True), onefile_now, picsweb_now)
    for row in checked.itertuples(index=False):  # one API call per row: no set form
        if pd.isna(row.reason) and recheck.monotonic() - read_at > CHECK_MAX_AGE_SECONDS:
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
            linked = rows_where_in(conn, quals, "onefile_learning_aim_id", aims)
            changing = rows_where_in(conn, quals, "tq_id", touched)
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
    return finish(ctx, "push_learning_aims", AIM_UPDATE, counts)


def _send_aim_update(ctx: RunContext, hook: Any, row: Any, fence: Any = None) -> str:
    """Send one re-checked aim update (after the fence's check); its answer (with the
    payload sent, and the audit of each field) is recorded by the current
    :func:`~picsweb_sync.stages.push.answers.bookkeeping`, a failure at once."""
    outbox_id = int(row.outbox_id)
    if not pd.isna(row.reason):
        skip(ctx, outbox_id, f"not sent: {row.reason}")
        return "skipped"
    fence_now(fence)
    try:
        hook.update_learning_aim(int(row.target_id), row.payload)
    except OneFileApiError as exc:
        return record_failure(ctx, row, exc, payload=row.payload, fence=fence)
    with book_of(ctx) as book:
        book.aim_sent(outbox_id, int(row.target_id), row.payload)
    return "sent"
