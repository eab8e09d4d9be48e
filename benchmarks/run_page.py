"""The sync page's run page after a real first run, beside a baseline (``benchmarks.whole_dag``
calls :func:`measure` on the run it just made, so the rows are what a first run at that size
really puts on the page, not generated ones).

Timed, each the median of a few reads on the benchmark's PostgreSQL:

- ``run_detail``: everything the run page shows above its changes (counts, changes per
  field, rejects, conflicts, the run's story);
- the **changes rows**: the first page (100 rows, with each row's learner and qualification
  or review from PICSWeb), a deep page (the keyset cursor of the page ``DEPTH`` pages in) and
  a filtered first page (one field), through ``changes.run_changes`` as the page calls it;
- the **whole CSV**, streamed in keyset pages of 500 as ``onefile-sync/runs/<id>/changes.csv``
  serves it;
- the **baseline**: the deep page's audit rows read by ``OFFSET`` with the keyset's index
  ``(run_id, audit_id)`` dropped (inside a transaction rolled back after: PostgreSQL's DDL
  is transactional), against the same rows by the keyset through that index. Both must be
  the same rows, or the benchmark stops with an error.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sync_page import app, change_routes, queries
from sync_page.change_statements import Filters, audit_statement

from picsweb_sync.storage.project_tables import sync_audit

DEPTH = 50  # pages walked before the deep page
PAGE = 100
KEYSET_INDEX = "ix_sync_audit_run_id_audit_id"


@dataclass
class RunPage:
    changes: int  # audit rows of the run: the rows its page lists
    by_field: dict[str, int]  # "<system> <entity>.<field>" -> rows, most first
    detail_s: float
    first_page_s: float
    deep_page_s: float
    filtered_page_s: float
    filtered_field: str
    csv_s: float
    csv_rows: int
    keyset_s: float  # the deep page's audit rows by the keyset, through the index
    offset_s: float  # the same rows by OFFSET, the index dropped


def _median(call: Callable[[], Any], repeats: int = 5) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


class _Sources:
    """The page's sources on one database (PICSWeb and the sync's tables together)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def picsweb(self) -> sa.Engine:
        return self.engine

    def staging(self) -> sa.Engine:
        return self.engine

    def audit_engines(self) -> list[sa.Engine]:
        return [self.engine]


def measure(engine: sa.Engine, run_id: str) -> RunPage:
    sources = _Sources(engine)
    with engine.connect() as conn:
        detail_s, _ = _median(lambda: queries.run_detail(conn, run_id))
        a = sync_audit.c
        fields = conn.execute(
            sa.select(a.system, a.entity, a.field, sa.func.count().label("n"))
            .where(a.run_id == run_id)
            .group_by(a.system, a.entity, a.field)
            .order_by(sa.func.count().desc())
        ).all()
    by_field = {f"{r.system} {r.entity}.{r.field}": r.n for r in fields}
    run = change_routes.known_run(sources, app.synced, run_id)

    def page(filters: Filters, before: str | None = None) -> queries.Page:
        return change_routes.changes_page(sources, app.synced, run, filters, PAGE, before)

    first_s, first = _median(lambda: page(Filters()))
    cursor = first.next_cursor
    for _ in range(DEPTH - 1):
        if cursor is None:
            break
        cursor = page(Filters(), cursor).next_cursor
    deep_s, _ = _median(lambda: page(Filters(), cursor))
    field = fields[0].field if fields else ""
    filtered_s, _ = _median(lambda: page(Filters(field=field or None)))

    def whole_csv() -> int:
        return sum(
            chunk.count("\n")
            for chunk in change_routes.csv_lines(sources, app.synced, run, Filters())
        )

    csv_s, csv_lines = _median(whole_csv, repeats=1)
    keyset_s, offset_s = _audit_pair(engine, run_id)
    return RunPage(
        changes=sum(by_field.values()),
        by_field=by_field,
        detail_s=detail_s,
        first_page_s=first_s,
        deep_page_s=deep_s,
        filtered_page_s=filtered_s,
        filtered_field=field,
        csv_s=csv_s,
        csv_rows=csv_lines - 1,  # less the header
        keyset_s=keyset_s,
        offset_s=offset_s,
    )


def _audit_pair(engine: sa.Engine, run_id: str) -> tuple[float, float]:
    """The deep page's audit rows by keyset (the index) and by OFFSET (no such index)."""
    a = sync_audit.c
    skip = PAGE * DEPTH
    with engine.connect() as conn:
        after = conn.execute(
            sa.select(a.audit_id)
            .where(a.run_id == run_id)
            .order_by(a.audit_id)
            .offset(skip - 1)
            .limit(1)
        ).scalar()
        keyset = audit_statement(run_id, Filters(), PAGE, after)
        keyset_s, rows = _median(lambda: [r.audit_id for r in conn.execute(keyset)])
    offset = (
        sa.select(a.audit_id)
        .where(a.run_id == run_id)
        .order_by(a.audit_id)
        .offset(skip)
        .limit(PAGE)
    )
    with engine.connect() as conn, conn.begin() as txn:
        conn.execute(sa.text(f"DROP INDEX {KEYSET_INDEX}"))
        offset_s, same = _median(lambda: [r.audit_id for r in conn.execute(offset)])
        txn.rollback()
    if after is not None and rows[: len(same)] != same:
        raise AssertionError("the keyset and OFFSET pages differ: the benchmark compares nothing")
    return keyset_s, offset_s


def report(page: RunPage) -> list[str]:
    """Markdown lines for the whole-DAG report."""
    top = ", ".join(f"{k} {v:,}" for k, v in list(page.by_field.items())[:6])
    ratio = page.offset_s / page.keyset_s if page.keyset_s else float("nan")
    return [
        f"- Run page after the first run: **{page.changes:,}** changes as rows ({top}); "
        f"`run_detail` {page.detail_s * 1000:.0f} ms; a 100-row page of changes with its "
        f"learners: first {page.first_page_s * 1000:.0f} ms, {DEPTH} pages in "
        f"{page.deep_page_s * 1000:.0f} ms, filtered to `{page.filtered_field}` "
        f"{page.filtered_page_s * 1000:.0f} ms; the whole CSV ({page.csv_rows:,} rows) "
        f"{page.csv_s:.1f} s. The deep page's audit rows: keyset {page.keyset_s * 1000:.1f} ms "
        f"against OFFSET without the index {page.offset_s * 1000:.1f} ms (**{ratio:.1f}x**).",
    ]
