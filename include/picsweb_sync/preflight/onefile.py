"""The OneFile checks, in the order the sync meets them: authentication, the environment
the connection points at, the configured organisations; then the pages of each search
(:mod:`.onefile_pages`), every field the sync reads or writes (:mod:`.field_checks`), the
rate-limit headers, and the calls made. All with reads only.

The only calls made are ``POST /Authentication``, ``POST /Organisation/Search`` and
``POST /{Entity}/Search/{page}/{size}`` (searches are reads sent as POST): never an update or
a create (tests/preflight proves it against the simulator's call log).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from onefile.hook import OneFileApiError, OneFileAuthenticationError, OneFileHook
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.preflight.field_checks import field_checks, written_check
from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.onefile_pages import (
    Sample,
    paging_checks,
    rate_limit_check,
    read_pages,
    searches,
)

ENVIRONMENT_HOSTS = {
    "wsapi.onefile.co.uk": "Live",
    "wsapibeta.onefile.co.uk": "Beta",
    "wsapi2.onefile.co.uk": "Practice",
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
            failure = read_pages(hook, sample, organisation_id, entity, path, filters)
            if failure is not None:
                checks.append(failure)
    checks += paging_checks(sample, hook.settings.page_size, hook.onefile_conn_id)
    for entity in onefile_fields.FIELDS:
        checks += field_checks(entity, sample)
    checks.append(written_check())
    checks.append(rate_limit_check(sample, hook))
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
