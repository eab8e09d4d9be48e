"""The OneFile checks: authentication, the configured organisations, one page of each search
the sync makes for each organisation, every field the sync reads or writes, how paging ends
and the rate-limit headers, all with reads only.

The only calls made are ``POST /Authentication``, ``POST /Organisation/Search`` and
``POST /{Entity}/Search/{page}/{size}`` (searches are reads sent as POST): never an update or
a create (tests/preflight proves it against the simulator's call log). The field names and
what makes a row a reject come from :mod:`picsweb_sync.onefile.fields` itself (``FIELDS``,
``parse_rows``), so the preflight judges a page exactly as the extract would.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from onefile.hook import (
    OneFileApiError,
    OneFileAuthenticationError,
    OneFileHook,
    SearchPage,
    format_instant,
)
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.rules import qualifications
from picsweb_sync.run.window import plan_run
from picsweb_sync.stages import extract, push

# The sync's searches, per parsed entity: (OneFile entity, filters for one organisation).
Search = tuple[str, str, dict[str, Any]]
FAR_PAGE = 10_000
"""A page past the end of any search with fewer than 10,000 pages (a million rows at the
default page size), asked for when page 1 is full, to see how OneFile answers an empty page."""
ENVIRONMENT_HOSTS = {
    "wsapi.onefile.co.uk": "Live",
    "wsapibeta.onefile.co.uk": "Beta",
    "wsapi2.onefile.co.uk": "Practice",
}
RATE_LIMIT_HEADER = re.compile(r"rate-?limit|retry-after", re.I)

# Fields the sync only keeps in staging (no rule reads them): their absence is a warning,
# not blocking. Every other field decides what is matched or written.
STAGED_ONLY = {
    "learners": {"FirstName", "LastName", "Email", "MISID", "ULN", "DefaultAssessorID"},
    "assessors": {"FirstName", "LastName", "Role"},
    "learning_aims": {"Title"},
    "reviews": {"Status"},
}


class PreflightHook(OneFileHook):
    """The sync's hook, with its connection looked up the way the command reads every
    connection (outside a task: :mod:`picsweb_sync.preflight.connections`), and fewer
    retries, so an unreachable OneFile is reported in seconds rather than minutes."""

    def __init__(self, onefile_conn_id: str, lookup: Callable[[str], Any], **overrides: Any):
        super().__init__(
            onefile_conn_id, **{"max_retries": 2, "backoff_max_seconds": 5, **overrides}
        )
        self._lookup = lookup

    def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
        return self._lookup(conn_id)


def written_fields() -> dict[str, list[str]]:
    """The OneFile fields the sync writes: learning-aim updates (rules 2-4), and the Visit
    and Review bodies of an upload as ``push.review_create_payload`` builds them."""
    sample = SimpleNamespace(
        learner_id=1,
        organisation_id=1,
        visit_from="",
        visit_to="",
        visit_type_id=1,
        assessor_id=1,
        scheduled_for="",
    )
    payload = push.review_create_payload(sample)
    names = onefile_fields.ONEFILE_NAMES["learning_aims"]
    return {
        "LearningAim": [names[column] for column, _, _ in qualifications.FILL_RULES],
        "Visit": list(payload["visit"]),
        # push_reviews adds the VisitID of the visit just created
        "Review": [*payload["review"], "VisitID"],
    }


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
        ("learners", "User", {**org, "Role": extract.LEARNER_ROLE}),
        *(("assessors", "User", {**org, "Role": role}) for role in extract.ASSESSOR_ROLES),
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


def onefile_checks(
    hook: OneFileHook,
    description: str,
    organisation_ids: tuple[int, ...],
    environment: str | None,
    now: datetime | None = None,
) -> tuple[list[Check], Sample]:
    """Every OneFile check, in the order the sync meets them."""
    sample = Sample()
    now = now or datetime.now(UTC)
    try:
        organisations = hook.search_organisations()
    except OneFileAuthenticationError as exc:
        return [_auth_failed(description, str(exc))], sample
    except OneFileApiError as exc:
        if exc.path == "/Authentication":
            return [_auth_failed(description, str(exc))], sample
        return [
            _auth_ok(hook, description),
            Check(
                "onefile.organisations",
                Level.BLOCKING,
                "OneFile organisations",
                str(exc),
                "check the base URL (it must end with /api/v2.1) and ask OneFile support",
            ),
        ], sample
    checks = [_auth_ok(hook, description), _environment_check(hook, environment)]
    visible = {int(o["ID"]): o.get("Name") for o in organisations if isinstance(o, dict)}
    if organisation_ids:
        absent = [o for o in organisation_ids if o not in visible]
        checks.append(_organisations_check(organisation_ids, visible, absent))
        checked = [o for o in organisation_ids if o in visible]
    else:
        checked = sorted(visible)
        checks.append(
            Check(
                "onefile.organisations",
                Level.OK,
                "OneFile organisations",
                f"the settings name none (or cannot be read); checking all the token sees: "
                f"{', '.join(str(o) for o in checked) or 'none'}",
            )
        )
    for organisation_id in checked:
        for entity, path, filters in searches(organisation_id, now):
            failure = _read_pages(hook, sample, organisation_id, entity, path, filters)
            if failure is not None:
                checks.append(failure)
    checks += _paging_checks(sample, hook.settings.page_size, hook.onefile_conn_id)
    for entity in onefile_fields.FIELDS:
        checks += field_checks(entity, sample)
    checks.append(_written_check())
    checks.append(_rate_limit_check(sample, hook))
    checks.append(
        Check(
            "onefile.calls",
            Level.OK,
            "OneFile calls made",
            f"{hook.calls_made} calls, all reads (authentication, organisation search, "
            "search pages): no update or create",
            details={"calls": hook.calls_made},
        )
    )
    return checks, sample


def _auth_ok(hook: OneFileHook, description: str) -> Check:
    return Check(
        "onefile.auth",
        Level.OK,
        "OneFile authentication",
        f"{description}: the customer token was accepted",
    )


def _auth_failed(description: str, error: str) -> Check:
    return Check(
        "onefile.auth",
        Level.BLOCKING,
        "OneFile authentication",
        f"{description}: {error}",
        "put the customer token of this OneFile environment in the connection's password "
        "(a token works in one environment only), and check the host ends with /api/v2.1",
    )


def _environment_check(hook: OneFileHook, environment: str | None) -> Check:
    host = urlsplit(hook.base_url).hostname or ""
    known = ENVIRONMENT_HOSTS.get(host)
    if known is None:
        return Check(
            "onefile.environment",
            Level.OK,
            "OneFile environment",
            f"{host} is not one of OneFile's Live, Beta or Practice hosts (a proxy or a "
            f"simulator?); the settings say {environment or 'nothing'}",
        )
    if environment is not None and environment.strip().casefold() != known.casefold():
        return Check(
            "onefile.environment",
            Level.WARNING,
            "OneFile environment",
            f"the connection points at {known} ({host}) but PICSWeb's settings say {environment}",
            "the sync uses the connection: point it at the environment PICSWeb's settings "
            "name, or correct the settings",
        )
    return Check("onefile.environment", Level.OK, "OneFile environment", f"{known} ({host})")


def _organisations_check(
    wanted: tuple[int, ...], visible: dict[int, Any], absent: list[int]
) -> Check:
    if absent:
        return Check(
            "onefile.organisations",
            Level.BLOCKING,
            "OneFile organisations",
            f"{', '.join(str(o) for o in absent)} not among the organisations this token "
            f"sees ({', '.join(str(o) for o in sorted(visible)) or 'none'})",
            "correct the organisation IDs in PICSWeb's OneFile Settings, or use the "
            "customer token of the customer they belong to",
        )
    named = ", ".join(f"{o} ({visible[o]})" for o in wanted)
    return Check("onefile.organisations", Level.OK, "OneFile organisations", named)


def _read_pages(
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


def _paging_checks(sample: Sample, page_size: int, conn_id: str) -> list[Check]:
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


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def field_checks(entity: str, sample: Sample) -> list[Check]:
    """For every field the sync reads from ``entity``: present in how many rows, its JSON
    types, and how many rows it would make a reject (``parse_rows``, as the extract)."""
    rows = [row for _, page in sample.rows.get(entity, []) for row in page]
    objects = [row for row in rows if isinstance(row, dict)]
    parsed = sample.parsed(entity)
    reasons = parsed.rejects["reason"].astype(str).tolist()
    read = {f.onefile for f in onefile_fields.FIELDS[entity]}
    unread = sorted({key for row in objects for key in row} - read)
    written = set(written_fields().get(onefile_fields.ONEFILE_ENTITY[entity], []))
    checks: list[Check] = []
    if not objects:
        return [
            Check(
                f"onefile.fields.{entity}",
                Level.WARNING,
                f"OneFile {entity} fields",
                "no rows on the pages read: the fields could not be checked",
                "run the preflight again once OneFile holds such rows (or with another "
                "organisation)",
            )
        ]
    for spec in onefile_fields.FIELDS[entity]:
        name = spec.onefile
        present = [row[name] for row in objects if name in row]
        types = Counter(_json_type(v) for v in present)
        typed = ", ".join(f"{t} ({n})" for t, n in sorted(types.items())) or "none"
        bad = [r for r in reasons if re.search(rf"(^|; ){re.escape(name)}:", r)]
        use = "read and written" if name in written else "read"
        title = f"OneFile field {onefile_fields.ONEFILE_ENTITY[entity]}.{name} of {entity} ({use})"
        details = {
            "rows": len(objects),
            "present": len(present),
            "types": dict(types),
            "rejects": len(bad),
        }
        if not present:
            level = Level.WARNING if name in STAGED_ONLY.get(entity, ()) else Level.BLOCKING
            checks.append(
                Check(
                    f"onefile.field.{entity}.{name}",
                    level,
                    title,
                    f"absent from all {len(objects)} rows; OneFile sent fields the sync does "
                    f"not read: {', '.join(unread) or 'none'}",
                    "if OneFile names it otherwise (one of those?), correct JSON_FIELDS in "
                    "include/picsweb_sync/onefile/names.py: without it the sync reads it "
                    "as empty on every row"
                    + (
                        "" if level is Level.WARNING else ", so it syncs nothing or the wrong thing"
                    ),
                    {**details, "unread_fields": unread},
                )
            )
            continue
        finding = f"in {len(present)} of {len(objects)} rows; {typed}"
        level, advice = Level.OK, "nothing to do"
        if len(present) < len(objects):
            level = Level.WARNING
            finding += f"; absent from {len(objects) - len(present)} rows (read as empty)"
            advice = "check whether OneFile leaves the field out when it is empty"
        if bad:
            level = Level.WARNING
            finding += f"; {len(bad)} row(s) would be rejects, e.g. {bad[0]}"
            advice = (
                "correct those rows in OneFile: each run sets them aside (sync_reject) "
                "and syncs the rest"
            )
        checks.append(
            Check(f"onefile.field.{entity}.{name}", level, title, finding, advice, details)
        )
    checks.append(_rejects_check(entity, len(rows), reasons, parsed.duplicates))
    return checks


def _rejects_check(entity: str, rows: int, reasons: list[str], duplicates: int) -> Check:
    if not reasons:
        return Check(
            f"onefile.rejects.{entity}",
            Level.OK,
            f"OneFile {entity} rows",
            f"all {rows} rows on the pages read would be synced",
            details={"rows": rows, "rejects": 0, "duplicates": duplicates},
        )
    level = Level.BLOCKING if len(reasons) == rows else Level.WARNING
    return Check(
        f"onefile.rejects.{entity}",
        level,
        f"OneFile {entity} rows",
        f"{len(reasons)} of {rows} rows on the pages read would be set aside, e.g. "
        + "; ".join(dict.fromkeys(reasons[:3])),
        "every row would be set aside: see the field checks above"
        if level is Level.BLOCKING
        else "correct those rows in OneFile (or the limits in picsweb_tables.py, if a "
        "PICSWeb column is really longer); the rest syncs",
        {"rows": rows, "rejects": len(reasons), "duplicates": duplicates},
    )


def _written_check() -> Check:
    fields = written_fields()
    return Check(
        "onefile.fields.written",
        Level.OK,
        "OneFile fields the sync writes",
        f"LearningAim update: {', '.join(fields['LearningAim'])} (checked above, they are "
        f"read too); Review create: {', '.join(fields['Review'])} (read on Review rows "
        f"above); Visit create: {', '.join(fields['Visit'])} (OneFile has no Visit search, "
        "so these are sent as the contract names them, unchecked: nothing is written here)",
        details=fields,
    )


def _rate_limit_check(sample: Sample, hook: OneFileHook) -> Check:
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
