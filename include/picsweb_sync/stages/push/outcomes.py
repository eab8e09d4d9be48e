"""What a failed OneFile write says, and what a push reports when it ends.

A 4xx about the row is OneFile refusing the data (:func:`refused`): a reject, not retried.
Anything else (a 5xx after the hook's own retries, no answer, and 401/403/429, which are
about the session or the rate, not the data) is ``failed`` (:func:`record_failure`): the
task ends in :class:`PushIncomplete` (:func:`finish`) and Airflow retries it, resending
only what did not go. :func:`may_have_happened` and :func:`worth_retrying` tell a review
create (:mod:`~picsweb_sync.stages.push.creates`) whether to look for what it may have made
and whether to try again within the task.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import sqlalchemy as sa

from onefile.hook import OneFileApiError
from picsweb_sync.run.runtime import RunContext
from picsweb_sync.stages.push.answers import fence_check
from picsweb_sync.stages.push.log import log
from picsweb_sync.storage import project_tables

_NOT_DATA = (401, 403, 429)  # 4xx answers that say nothing about the row's data


class PushIncomplete(RuntimeError):
    """Some outbox rows failed for a reason worth retrying; the task fails so Airflow retries."""


def refused(exc: OneFileApiError) -> bool:
    """OneFile refused the data (a 4xx about the row): nothing was made."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in _NOT_DATA


def may_have_happened(exc: OneFileApiError) -> bool:
    """A failed create that OneFile may have carried out all the same: a server fault, or
    no answer at all (a 429 is refused before anything happens)."""
    return exc.status is None or exc.status >= 500


def worth_retrying(exc: OneFileApiError) -> bool:
    """Transient: a server fault, no answer, or a 429 the hook gave up waiting out."""
    return may_have_happened(exc) or exc.status == 429


def answered(exc: OneFileApiError) -> str:
    return "no answer" if exc.status is None else f"HTTP {exc.status}"


def record_failure(
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
    state = "rejected" if refused(exc) else "failed"
    with ctx.staging.begin() as conn:
        fence_check(fence, conn)
        project_tables.mark_outbox(conn, int(row.outbox_id), state, error=str(exc), payload=payload)
    log.warning("outbox %s (%s %s): %s", row.outbox_id, row.kind, row.target_id, exc)
    return state


def finish(ctx: RunContext, stage: str, kind: str, counts: dict[str, int]) -> dict[str, int]:
    with ctx.staging.begin() as conn:
        project_tables.record_counts(conn, ctx.run_id, stage, counts)
        refused = _refused_rows(conn, ctx.run_id, kind)
        project_tables.record_rejects(conn, ctx.run_id, f"{stage}refused", refused)
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
