"""What ``push_reviews`` says in its log about a review create that was not a plain first
send: one it *recovered* (found in OneFile by its VisitID and linked, not created again)
and one it *re-sent* (an earlier try or attempt failed, or made a visit whose review never
came).

These are the creates a person looks for after a crash, a clear or an outage of OneFile,
so each line names the three IDs that tie the two systems together: the PICSWeb review
ID, the OneFile visit ID and the OneFile review ID, and the outbox row (``sync_outbox``)
that holds the rest. A plain first send is not logged one by one (a first run uploads
thousands); the task's counts line says how many.

Lines name IDs and OneFile's answers only (an ``OneFileApiError``'s text: method, path,
status and OneFile's message), never a token.

**One logger** for the whole push, :data:`LOGGER` (``picsweb_sync.stages.push``, the
package's name): every module of :mod:`picsweb_sync.stages.push` logs through :data:`log`,
so ``push_reviews``' lines (these, a visit left empty, a link refused, a skip) come from one
logger whatever room writes them, and one filter reads them all.
"""

from __future__ import annotations

import logging
from typing import Any

LOGGER = "picsweb_sync.stages.push"
log = logging.getLogger(LOGGER)  # the push's one logger: one place to read


def recovered(row: Any, onefile_id: int, visit_id: int, how: str) -> None:
    """A create found in OneFile and linked to its PICSWeb review, not sent again."""
    log.info(
        "PICSWeb review %s recovered: OneFile review %s on visit %s, linked and not created "
        "again (outbox %s; %s)",
        row.target_id,
        onefile_id,
        visit_id,
        row.outbox_id,
        how,
    )


def trying_again(row: Any, visit_id: int | None, error: Exception) -> None:
    """An attempt of a create failed for a reason worth retrying within the task."""
    log.warning(
        "PICSWeb review %s (outbox %s, OneFile visit %s): %s; trying again",
        row.target_id,
        row.outbox_id,
        "not made yet" if visit_id is None else visit_id,
        error,
    )


def sent(
    row: Any,
    onefile_id: int,
    visit_id: int,
    earlier_visit: int | None,
    attempt: int,
    last_error: Exception | None,
) -> None:
    """A create OneFile accepted: logged when it was a re-send (``row`` failed before, an
    earlier try made a visit, or an attempt of this try failed); a first send is not."""
    reasons = []
    if earlier_visit is not None and earlier_visit != visit_id:
        reasons.append(
            f"the PICSWeb review changed after an earlier try made visit {earlier_visit} "
            "(left empty): sent on a new visit"
        )
    elif earlier_visit is not None:
        reasons.append("the Review call sent again on the visit an earlier try made")
    tries = int(getattr(row, "attempts", 0) or 0)
    if tries:
        reasons.append(f"{tries} earlier {'try' if tries == 1 else 'tries'} failed")
    if attempt:
        reasons.append(f"attempt {attempt + 1} of this try, after: {last_error}")
    if not reasons:
        return
    log.info(
        "PICSWeb review %s re-sent: OneFile review %s on visit %s (outbox %s; %s)",
        row.target_id,
        onefile_id,
        visit_id,
        row.outbox_id,
        "; ".join(reasons),
    )
