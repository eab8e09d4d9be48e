"""Push: the OneFile change sets sent through the outbox, each row exactly once, and only
while it still applies.

The outbox (``sync_outbox``) holds one row per OneFile write with its state. A push sends
only rows not yet done, and marks each one as OneFile answers, so a retried or cleared
task resends only what did not go. Two task bodies, and the rooms they share:

- :mod:`.aims`: ``push_learning_aims`` (rules 2-4: PICSWeb fills OneFile's blanks), each
  update re-checked against both systems just before it goes (:mod:`.aim_recheck`);
- :mod:`.reviews`: ``push_reviews`` (rule 5: new PICSWeb reviews created in OneFile), each
  chunk planned again; one create's two calls and their retries (:mod:`.creates`), the
  creates of unknown outcome found and linked (:mod:`.recovery`), the visits no review
  will use (:mod:`.empty_visits`), rule 6 applied at once to what was created
  (:mod:`.reflect`), and the log lines of creates recovered or re-sent (:mod:`.log`);
- shared: how fresh a re-check must be (:mod:`.recheck`), the wire bodies
  (:mod:`picsweb_sync.onefile.payloads`), OneFile's answers recorded in batches under the lock's fence
  (:mod:`.answers`), a failure told apart and a push's counts (:mod:`.outcomes`).

**Dry run** (``ctx.dry_run``): the same re-checks, read-only, and no OneFile write call.
Nothing is enqueued (no outbox row a later run could send), unknown creates are left for
a real run to settle and nothing is copied back to PICSWeb; the counts a real push records
say what it *would* do (``sent``: would send, ``skipped``: would not), and what it would
send is kept for the sync page (``picsweb_sync.run.dry_run``).

The names callers use are re-exported here (``push.push_reviews``, ``push.chunk_calls``...).
A name replaced for a test is replaced where the push looks it up, its defining module:
``recheck._monotonic``, ``recheck.chunk_calls``, ``reviews.plan_again``,
``answers.record_review_id``. The DAG names the defining modules
(``stages.push.aims.push_learning_aims``, ``stages.push.reviews.push_reviews``).
"""

from __future__ import annotations

from picsweb_sync.onefile.payloads import (
    aim_update_items,
    review_create_items,
    review_create_payload,
)
from picsweb_sync.stages.push.aim_recheck import (
    aim_fields_still_to_fill,
    current_learning_aims,
    reads_by_learner,
)
from picsweb_sync.stages.push.aims import AIM_UPDATE, push_learning_aims, send_aim_updates
from picsweb_sync.stages.push.answers import (
    BOOKKEEPING_BATCH,
    BOOKKEEPING_SECONDS,
    Bookkeeping,
    bookkeeping,
    record_review_id,
)
from picsweb_sync.stages.push.creates import CREATE_ATTEMPTS, FAILING_CREATES_TO_STOP_RETRYING
from picsweb_sync.stages.push.outcomes import PushIncomplete
from picsweb_sync.stages.push.recheck import CHECK_MAX_AGE_SECONDS, CHUNK_BUDGET_SHARE, chunk_calls
from picsweb_sync.stages.push.recovery import find_created_review, settle_unknown_creates
from picsweb_sync.stages.push.reflect import reflect_uploaded_reviews, with_basis, would_reflect
from picsweb_sync.stages.push.reviews import (
    REVIEW_CREATE,
    plan_again,
    push_reviews,
    send_review_creates,
)

__all__ = [
    "AIM_UPDATE",
    "BOOKKEEPING_BATCH",
    "BOOKKEEPING_SECONDS",
    "CHECK_MAX_AGE_SECONDS",
    "CHUNK_BUDGET_SHARE",
    "CREATE_ATTEMPTS",
    "FAILING_CREATES_TO_STOP_RETRYING",
    "REVIEW_CREATE",
    "Bookkeeping",
    "PushIncomplete",
    "aim_fields_still_to_fill",
    "aim_update_items",
    "bookkeeping",
    "chunk_calls",
    "current_learning_aims",
    "find_created_review",
    "plan_again",
    "push_learning_aims",
    "push_reviews",
    "reads_by_learner",
    "record_review_id",
    "reflect_uploaded_reviews",
    "review_create_items",
    "review_create_payload",
    "send_aim_updates",
    "send_review_creates",
    "settle_unknown_creates",
    "with_basis",
    "would_reflect",
]
