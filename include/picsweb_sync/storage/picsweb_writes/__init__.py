"""The set-based writes to PICSWeb, with their work tables.

Writes to PICSWeb are set-based and guarded, each in the caller's transaction:

- ``field_updates``: a run's field changes to existing rows (:func:`apply_updates`),
  applied only where the row still holds the value the merge read, refused where the row
  was last written from newer OneFile data; :func:`classify_updates` is the same judgement,
  read-only (a dry run);
- ``reviews``: new reviews (:func:`insert_reviews`) and their OneFile IDs
  (:func:`link_review`, :func:`link_reviews`), each written exactly once;
- ``exact_text``: the exact text comparison the guards use, whatever the collation.

Callers use the names below from ``picsweb_sync.storage.picsweb_writes`` itself.

Layering: this package builds on the table definitions and their queries
(``picsweb_sync.storage.picsweb_tables``, ``picsweb_sync.storage.project_tables``), which
build on the frame helpers (``picsweb_sync.storage.sqlframes``); none of those imports it.
"""

from __future__ import annotations

from picsweb_sync.storage.picsweb_writes.exact_text import ExactChar, ExactText
from picsweb_sync.storage.picsweb_writes.field_updates import (
    ApplyResult,
    ConcurrentChangeError,
    apply_statement,
    apply_updates,
    classify_statement,
    classify_updates,
    missing_statement,
)
from picsweb_sync.storage.picsweb_writes.reviews import (
    insert_new_statement,
    insert_reviews,
    link_review,
    link_reviews,
    mark_existing_statement,
    reviews_already_linked,
    reviews_with_onefile_ids,
)

__all__ = [
    "ApplyResult",
    "ConcurrentChangeError",
    "ExactChar",
    "ExactText",
    "apply_statement",
    "apply_updates",
    "classify_statement",
    "classify_updates",
    "insert_new_statement",
    "insert_reviews",
    "link_review",
    "link_reviews",
    "mark_existing_statement",
    "missing_statement",
    "reviews_already_linked",
    "reviews_with_onefile_ids",
]
