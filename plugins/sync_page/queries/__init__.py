"""The sync page's reads: bounded, indexed queries over the ``sync_*`` tables and PICSWeb.

By concern: :mod:`~sync_page.queries.history` (the run history and its charts),
:mod:`~sync_page.queries.one_run` (one run's detail), :mod:`~sync_page.queries.audit` (the
audit search), and :mod:`~sync_page.queries.page` (cursors, limits and the page they make).
This package re-exports the names the app, the tests and the benchmarks use.

Every statement has a LIMIT (each module's ``MAX_*``) and pages by key (keyset paging, never
OFFSET): the run history by ``(started_at, run_id)`` through ``ix_sync_run_started_at``;
the audit search by ``(changed_at, audit_id)`` after resolving a learner or a review to
the keys the audit rows carry, through ``ix_sync_audit_entity_entity_key_changed_at``.
Every statement compiles for SQL Server too (tests/sync_page/test_queries.py).

What a real run writes to ``sync_audit`` (``picsweb_sync.storage.picsweb_writes``, ``picsweb_sync.stages.push``):

==========  ========================  ============================================
system      entity                    entity_key
==========  ========================  ============================================
picsweb     trainee_qualification     PICSWeb ``tq_id``
picsweb     review                    PICSWeb ``review_id``
onefile     LearningAim               OneFile learning aim ID (``tq.onefile_learning_aim_id``)
onefile     Review                    OneFile review ID (``review.onefile_system_id``)
==========  ========================  ============================================
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select

from sync_page import drift_statements, run_story
from sync_page.queries.audit import (
    DEFAULT_AUDIT,
    MAX_AUDIT,
    MAX_LEARNERS,
    SEARCH_KINDS,
    audit_search,
    audit_statement,
    learner_statement,
    qualifications_statement,
    review_statement,
    reviews_statement,
)
from sync_page.queries.history import (
    DEFAULT_RUNS,
    MAX_RUNS,
    RUN_TYPES,
    SUMMARY_COUNTS,
    chart_points,
    chart_statement,
    history_statement,
    run_history,
)
from sync_page.queries.one_run import (
    conflicts_statement,
    counts_statement,
    field_changes_statement,
    reject_kind,
    reject_rows_statement,
    reject_total_statement,
    run_detail,
    run_statement,
)
from sync_page.queries.page import (
    DIRECTIONS,
    BadRequest,
    Page,
    bounded,
    decode_cursor,
    encode_cursor,
)

__all__ = [
    "DEFAULT_AUDIT",
    "DEFAULT_RUNS",
    "DIRECTIONS",
    "MAX_AUDIT",
    "MAX_LEARNERS",
    "MAX_RUNS",
    "RUN_TYPES",
    "SEARCH_KINDS",
    "SUMMARY_COUNTS",
    "BadRequest",
    "Page",
    "all_statements",
    "audit_search",
    "audit_statement",
    "bounded",
    "chart_points",
    "decode_cursor",
    "encode_cursor",
    "history_statement",
    "reject_kind",
    "run_detail",
    "run_history",
    "run_statement",
]


# Every statement above, for the test that checks each has a LIMIT and compiles for SQL
# Server (and the benchmark).
def all_statements() -> dict[str, Select]:
    keys = {("picsweb", "trainee_qualification"): {"1": ""}, ("onefile", "LearningAim"): {"2": ""}}
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).replace(tzinfo=None)
    return {
        "history": history_statement(DEFAULT_RUNS, (when, "r"), "manual", "success"),
        "history_dry_run": history_statement(DEFAULT_RUNS, None, "dry_run"),
        "chart": chart_statement(when),
        "run": run_statement("r"),
        "counts": counts_statement("r"),
        "field_changes": field_changes_statement("r"),
        "reject_rows": reject_rows_statement("r"),
        "conflicts": conflicts_statement("r"),
        "learner_by_id": learner_statement("42", "auto"),
        "learner_by_name": learner_statement("ann o_k", "name"),
        "audit": audit_statement(keys, DEFAULT_AUDIT, (when, 5)),
        "reject_total": reject_total_statement("r"),
        "qualifications": qualifications_statement([1, 2]),
        "reviews": reviews_statement([1, 2]),
        "review": review_statement(7),
        **run_story.all_statements(),
        **drift_statements.all_statements(),
    }
