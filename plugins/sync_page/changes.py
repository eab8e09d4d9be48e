"""One run's changes, row by row: what a real run wrote or what a dry run would write.

The run page lists every field change of one run (and the JSON API and CSV download give
the same rows) so the team can read *what* a run changed, not only how many; for a dry run
it is the preview reviewed before letting the real run write. A first run at 50,000
learners makes hundreds of thousands of changes, so the list is read in keyset pages
(never OFFSET) of at most :data:`MAX_CHANGES` rows, from *segments* read one after the
other, each in its own key order:

===============  ==========================================  =============================
segment          rows                                        key
===============  ==========================================  =============================
``rejects``      first, the run's conflicts and refusals     ``stage, source_id, reason``
                 (changes it did not make, with the reason)
``audit<n>``     a real run's ``sync_audit`` rows, in each   ``audit_id``
                 database holding them (PICSWeb's, staging's) (index ``run_id, audit_id``)
``pw_updates``   a dry run's PICSWeb field updates           ``merge_name, change_no``
``pw_inserts``   a dry run's PICSWeb review inserts, a row   ``onefile_system_id``, field
                 per non-null field
``of_updates``   a dry run's OneFile learning-aim updates    ``change_no``
``of_creates``   a dry run's OneFile review creates, a row   ``review_id``, field
                 per field sent
===============  ==========================================  =============================

The dry-run segments read the change sets ``picsweb_sync.run.dry_run`` records, with the same
rows and values as :func:`picsweb_sync.run.dry_run.would_change` (which reads them whole). A
cursor names the segment and the key of the last row given. Each page's learners are then
looked up in PICSWeb by the page's own keys (at most one IN list per kind and page).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables import audit_text
from sync_page import change_learners
from sync_page.change_statements import (
    CREATE_FIELDS,
    CSV_COLUMNS,
    CURSOR_KINDS,
    DEFAULT_CHANGES,
    INSERT_FIELDS,
    MAX_CHANGES,
    REASON_FIELD,
    VALUE_TYPES,
    Filters,
    all_statements,
    audit_statement,
    of_creates_statement,
    of_updates_statement,
    pw_inserts_statement,
    pw_updates_statement,
    rejects_statement,
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
    "CREATE_FIELDS",
    "CSV_COLUMNS",
    "CURSOR_KINDS",
    "DEFAULT_CHANGES",
    "INSERT_FIELDS",
    "MAX_CHANGES",
    "REASON_FIELD",
    "Filters",
    "all_statements",
    "audit_statement",
    "of_creates_statement",
    "of_updates_statement",
    "pw_inserts_statement",
    "pw_updates_statement",
    "rejects_statement",
    "run_changes",
]

# ----- segments ------------------------------------------------------------------------------
# A segment reads up to ``need`` rows after its position (None: from its start); each row
# carries ``_pos``, the cursor position just after it.
Fetch = Callable[[tuple[int, str, str, str] | None, int], list[dict[str, Any]]]


def _row(
    system: str, entity: str, key: Any, field: str, old: Any, new: Any, status: str, **more: Any
) -> dict[str, Any]:
    return {
        "direction": DIRECTIONS.get(system, ""),
        "system": system,
        "status": status,
        "entity": entity,
        "entity_key": str(key),
        "field": field,
        "old_value": old,
        "new_value": new,
        "reason": None,
        **more,
    }


def _typed_value(row: Any, side: str) -> str | None:
    for kind in VALUE_TYPES:
        value = getattr(row, f"{side}_{kind}")
        if value is not None:
            return audit_text(value)
    return None


def _segments(
    run: dict[str, Any], f: Filters, staging: Connection, audit_conns: list[Connection]
) -> list[tuple[str, Fetch]]:
    run_id = run["run_id"]
    segments: list[tuple[str, Fetch]] = []

    def audit(conn: Connection) -> Fetch:
        def fetch(pos, need):
            rows = conn.execute(audit_statement(run_id, f, need, pos[0] if pos else None))
            return [
                _row(
                    r.system,
                    r.entity,
                    r.entity_key,
                    r.field,
                    r.old_value,
                    r.new_value,
                    "changed",
                    _key=(r.audit_id, "", "", ""),
                )
                for r in rows
            ]

        return fetch

    def pw_updates(pos, need):
        after = (pos[1], pos[0]) if pos else None
        rows = staging.execute(pw_updates_statement(run_id, f, need, after))
        return [
            _row(
                "picsweb",
                r.table_name,
                r.entity_key,
                r.field,
                _typed_value(r, "old"),
                _typed_value(r, "new"),
                "would change",
                _key=(r.change_no, r.merge_name, "", ""),
            )
            for r in rows
        ]

    def expand(rows: Iterable[Any], pos, need, key_of, fields, make) -> list[dict[str, Any]]:
        """Rows of one record per field, resuming after the position's field."""
        out = []
        for record in rows:
            key = key_of(record)
            done = fields.index(pos[1]) if pos and key == pos[0] and pos[1] in fields else -1
            for n, name in enumerate(fields):
                if n <= done:
                    continue
                row = make(record, name)
                if row is not None:
                    out.append({**row, "_key": (key, name, "", "")})
            if len(out) >= need:
                break
        return out[:need]

    def pw_inserts(pos, need):
        fields = [f.field] if f.field else list(INSERT_FIELDS)
        rows = staging.execute(pw_inserts_statement(run_id, f, need + 1, pos[0] if pos else None))

        def make(r, name):
            value = getattr(r, name)
            if value is None:
                return None
            key = f"new (OneFile review {r.onefile_system_id})"
            return _row(
                "picsweb",
                "review",
                key,
                name,
                None,
                audit_text(value),
                "would change",
                _trainee=r.trainee_id,
            )

        return expand(rows, pos, need, lambda r: int(r.onefile_system_id), fields, make)

    def of_updates(pos, need):
        rows = staging.execute(of_updates_statement(run_id, f, need, pos[0] if pos else None))
        return [
            _row(
                "onefile",
                r.entity,
                r.entity_id,
                r.field,
                None,
                audit_text(json.loads(r.new)) if r.new else None,
                "would change",
                _key=(r.change_no, "", "", ""),
            )
            for r in rows
        ]

    def of_creates(pos, need):
        fields = [name for name in CREATE_FIELDS if not f.field or f.field == name]
        rows = staging.execute(of_creates_statement(run_id, need + 1, pos[0] if pos else None))

        def make(r, name):
            key = f"new (PICSWeb review {r.review_id})"
            value = audit_text(getattr(r, CREATE_FIELDS[name]))
            return _row(
                "onefile",
                "Review",
                key,
                name,
                None,
                value,
                "would change",
                _trainee=r.trainee_id,
                _review=r.review_id,
            )

        return expand(rows, pos, need, lambda r: int(r.review_id), fields, make)

    def rejects(pos, need):
        rows = staging.execute(rejects_statement(run_id, f, need, tuple(pos[1:]) if pos else None))
        out = []
        for r in rows:
            match = REASON_FIELD.match(r.reason or "")
            system = "onefile" if (r.stage or "").startswith("push") else "picsweb"
            status = match.group(1) if match else "refused"
            row = _row(
                system,
                r.entity or "",
                r.source_id,
                match.group(2) if match else "",
                None,
                None,
                status,
                reason=r.reason,
            )
            out.append({**row, "_key": (0, r.stage, r.source_id, r.reason)})
        return out

    segments.append(("rejects", rejects))  # first: what needs a person's attention
    if not run["dry_run"]:
        for n, conn in enumerate(audit_conns):
            segments.append((f"audit{n}", audit(conn)))
    else:
        if f.wants("picsweb"):
            segments.append(("pw_updates", pw_updates))
        if f.wants("picsweb", "review") and (not f.field or f.field in INSERT_FIELDS):
            segments.append(("pw_inserts", pw_inserts))
        if f.wants("onefile"):
            segments.append(("of_updates", of_updates))
        if f.wants("onefile", "Review") and (not f.field or f.field in CREATE_FIELDS):
            segments.append(("of_creates", of_creates))
    return segments


def run_changes(
    run: dict[str, Any],
    staging: Connection,
    audit_conns: list[Connection],
    picsweb: Connection,
    filters: Filters,
    limit: int | None = None,
    before: str | None = None,
) -> Page:
    """One page of the changes of ``run`` (a row of ``queries.run_detail``'s ``run``),
    with each row's learner and qualification or review from PICSWeb."""
    size = bounded(limit, DEFAULT_CHANGES, MAX_CHANGES)
    segments = _segments(run, filters, staging, audit_conns)
    names = [name for name, _ in segments]
    start, pos = 0, None
    if before:
        segment, *key = decode_cursor(before, CURSOR_KINDS)
        if segment not in names:
            raise BadRequest(f"bad cursor: no segment {segment!r} for this run and filters")
        start, pos = names.index(segment), tuple(key)
    rows: list[dict[str, Any]] = []
    for name, fetch in segments[start:]:
        got = fetch(pos if name == names[start] else None, size + 1 - len(rows))
        rows.extend({**row, "_segment": name} for row in got)
        if len(rows) > size:
            break
    more = len(rows) > size
    rows = rows[:size]
    cursor = encode_cursor(rows[-1]["_segment"], *rows[-1]["_key"]) if more else None
    change_learners.describe(picsweb, rows)
    for row in rows:
        for name in ("_segment", "_key", "_trainee", "_review"):
            row.pop(name, None)
    return Page(rows, cursor, {"filters": filters.params()})
