"""The OneFile pages the preflight reads: the sync's searches for one organisation
(:func:`searches`), page 1 of each kept as a :class:`Sample` for the field checks and the
first-run counts, how each search's paging ends (a page past the end, a page-size cap), and
the rate-limit headers OneFile sent.

Only ``POST /{Entity}/Search/{page}/{size}`` calls (searches are reads sent as POST); the
user roles searched are OneFile's names (:mod:`picsweb_sync.onefile.names`), as the extract
searches by them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from onefile.hook import OneFileApiError, OneFileHook, SearchPage, format_instant
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.names import ASSESSOR_ROLES, LEARNER_ROLE
from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.run.window import plan_run

# The sync's searches, per parsed entity: (OneFile entity, filters for one organisation).
Search = tuple[str, str, dict[str, Any]]
FAR_PAGE = 10_000
"""A page past the end of any search with fewer than 10,000 pages (a million rows at the
default page size), asked for when page 1 is full, to see how OneFile answers an empty page."""
RATE_LIMIT_HEADER = re.compile(r"rate-?limit|retry-after", re.I)


def searches(organisation_id: int, now: datetime) -> list[Search]:
    """The sync's searches for one organisation (``picsweb_sync.stages.extract``), with the review
    window of a daily run today."""
    plan = plan_run(
        run_type="scheduled",
        interval_start=now - timedelta(days=1),
        interval_end=now,
        days_before=30,
        days_after=30,
    )
    org = {"OrganisationID": organisation_id}
    return [
        ("learners", "User", {**org, "Role": LEARNER_ROLE}),
        *(("assessors", "User", {**org, "Role": role}) for role in ASSESSOR_ROLES),
        ("learning_aims", "LearningAim", org),
        (
            "reviews",
            "Review",
            {
                **org,
                "DateFrom": format_instant(plan.review_from),
                "DateTo": format_instant(plan.review_to),
            },
        ),
    ]


@dataclass
class Sample:
    """What the pages held: raw rows per entity and organisation, for the field checks and
    the first-run counts."""

    rows: dict[str, list[tuple[int, list[Any]]]] = field(default_factory=lambda: defaultdict(list))
    paging: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    page_caps: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    paging_levels: dict[str, Level] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def parsed(self, entity: str) -> onefile_fields.Parsed:
        frames, rejects = [], []
        for organisation_id, rows in self.rows.get(entity, []):
            parsed = onefile_fields.parse_rows(entity, rows, organisation_id)
            frames.append(parsed.frame)
            rejects.append(parsed.rejects)
        if not frames:
            empty = onefile_fields.parse_rows(entity, [], 0)
            return empty
        return onefile_fields.Parsed(
            pd.concat(frames, ignore_index=True), pd.concat(rejects, ignore_index=True)
        )


def read_pages(
    hook: OneFileHook,
    sample: Sample,
    organisation_id: int,
    entity: str,
    path: str,
    filters: dict[str, Any],
) -> Check | None:
    """Page 1 of one search, then a page past its end; a review search that finds nothing
    in the window is asked again without dates, so its fields can still be checked."""
    label = f"{path} {filters}"
    try:
        first = hook.search_page(path, filters, 1)
    except OneFileApiError as exc:
        sample.paging_levels[entity] = Level.BLOCKING
        return Check(
            f"onefile.search.{entity}.{organisation_id}",
            Level.BLOCKING,
            f"OneFile search {path} for organisation {organisation_id}",
            f"{label}: {exc}",
            "the extract makes this search every run: ask OneFile support why it is refused",
        )
    _headers(sample, first)
    rows = first.rows
    if not rows and entity == "reviews":
        undated = {"OrganisationID": organisation_id}
        try:
            rows = hook.search_page(path, undated, 1).rows
        except OneFileApiError:
            rows = []
    sample.rows[entity].append((organisation_id, rows))
    sample.paging[entity].append(
        _paging_text(hook, sample, entity, organisation_id, filters, first, path)
    )
    return None


def _paging_text(
    hook: OneFileHook,
    sample: Sample,
    entity: str,
    organisation_id: int,
    filters: dict[str, Any],
    first: SearchPage,
    path: str,
) -> str:
    """How one search's paging ends, how OneFile answers a page past the end, and whether
    it caps the page size (contract: Paging [risk]).

    After a short page 1 of ``n`` rows the probe is page 2 **of ``n`` rows**, as the sync's
    own search confirms it (``OneFileHook.search``): that page starts right after the rows
    read whichever size a capping OneFile counts its offsets by, so rows there mean OneFile
    served fewer rows than asked for although more exist: a cap of ``n`` (kept in
    ``sample.page_caps``)."""
    where = f"organisation {organisation_id}" + (
        f", role {filters['Role']}" if "Role" in filters else ""
    )
    if not first.rows:
        return f"{where}: no rows ({_answer(first)})"
    short = len(first.rows) < first.size
    if short:
        seen = f"{where}: {len(first.rows)} rows on page 1 of {first.size}, a short page"
        probe_page, probe_size = 2, len(first.rows)
    else:
        seen = f"{where}: page 1 full ({first.size} rows), more pages follow"
        probe_page, probe_size = FAR_PAGE, first.size
    try:
        probe = hook.search_page(path, filters, probe_page, probe_size)
    except OneFileApiError as exc:
        return f"{seen}; page {probe_page} of {probe_size} (past the end) FAILED: {exc}"
    if probe.rows and short:
        sample.page_caps[entity].append(probe_size)
        return (
            f"{seen}, yet page 2 of {probe_size} still has {len(probe.rows)} rows: OneFile "
            f"CAPS pages at {probe_size} rows"
        )
    if probe.rows:
        return f"{seen}; page {probe_page} still has rows (not probed further)"
    ending = "so the last" if short else "past the end"
    return f"{seen}, {ending}: page {probe_page} of {probe_size} answers {_answer(probe)}"


def _answer(page: SearchPage) -> str:
    if page.status == 204:
        return "204 No Content"
    return f"{page.status} with an empty array"


def _headers(sample: Sample, page: SearchPage) -> None:
    for name, value in page.headers.items():
        if RATE_LIMIT_HEADER.search(name):
            sample.headers[name] = value


def paging_checks(sample: Sample, page_size: int, conn_id: str) -> list[Check]:
    checks = []
    for entity, lines in sample.paging.items():
        failed = [line for line in lines if "FAILED" in line]
        caps = sample.page_caps.get(entity, [])
        title = f"OneFile paging of {entity} (page size {page_size})"
        details: dict[str, Any] = {"pages": lines}
        if caps:
            cap = min(caps)
            checks.append(
                Check(
                    f"onefile.paging.{entity}",
                    Level.BLOCKING,
                    title,
                    f"OneFile serves at most {cap} rows a page, fewer than the {page_size} "
                    "the sync asks for: " + "; ".join(lines),
                    f"set page_size to {cap} in the extras of the {conn_id!r} connection "
                    f'({{"page_size": {cap}}}, OneFileSettings.page_size) and run the '
                    "preflight again. Until then every search finds the cap anew: the "
                    "sync pages by it without losing rows, but warns in each extract's "
                    "log, and the contract's paging assumption (no maximum) does not hold "
                    "for this OneFile (contract: Paging [risk])",
                    {**details, "cap": cap, "setting": "page_size", "connection": conn_id},
                )
            )
            continue
        checks.append(
            Check(
                f"onefile.paging.{entity}",
                Level.WARNING if failed else Level.OK,
                title,
                "; ".join(lines),
                "nothing to do: the sync ends a search at an empty array or a 204, and "
                "confirms a short page by asking for the page after it"
                if not failed
                else "OneFile refuses a page past the end: the sync asks for that page "
                "after a full last page and to confirm a short one, so its extract fails. "
                "Tell the sync's maintainers (contract: Paging)",
                details,
            )
        )
    return checks


def rate_limit_check(sample: Sample, hook: OneFileHook) -> Check:
    limit = (
        f"the hook keeps itself under {hook.settings.calls_per_minute} calls per "
        f"{hook.settings.rate_period_seconds:g} s (connection extra calls_per_minute)"
    )
    if sample.headers:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(sample.headers.items()))
        finding = f"OneFile sent {shown}; {limit}"
    else:
        finding = f"OneFile sent no rate-limit headers; {limit}"
    return Check(
        "onefile.rate_limit",
        Level.OK,
        "OneFile rate limit",
        finding,
        details={"headers": sample.headers},
    )
