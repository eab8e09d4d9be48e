"""PICSWeb's "OneFile Settings" row, read once per run into a frozen :class:`SyncSettings`.

A missing or malformed row stops the run with a :class:`SettingsError` that says what to fix
on the settings screen, rather than syncing with a guess (a wrong organisation list or visit
type would write to the wrong place in OneFile).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from picsweb_sync.storage.picsweb_tables import onefile_settings

ENVIRONMENTS = ("Live", "Beta", "Practice")
# OneFile VisitTypeID of each PICSWeb visit type (contract: onefile-api.md, [assumed]).
VISIT_TYPE_IDS = {"Not Specified": 1, "Remote Session": 2, "Face to Face": 3}
_FLAGS = ("integration_enabled", "upload_review_data", "download_review_data")


class SettingsError(ValueError):
    """The OneFile Settings row is missing, duplicated or malformed."""


@dataclass(frozen=True)
class SyncSettings:
    integration_enabled: bool
    environment: str
    organisation_ids: tuple[int, ...]
    upload_review_data: bool
    download_review_data: bool
    visit_type: str
    visit_type_id: int
    last_synchronised: dt.datetime | None


def read_settings(conn: Connection) -> SyncSettings:
    """The single ``onefile_settings`` row as :class:`SyncSettings`."""
    rows = conn.execute(select(onefile_settings)).mappings().all()
    if len(rows) != 1:
        raise SettingsError(
            f"onefile_settings must hold exactly one row, found {len(rows)}: "
            "fill in PICSWeb's OneFile Settings screen once"
        )
    return parse_settings(rows[0])


def _choice(name: str, value: Any, allowed: Mapping[str, Any] | tuple[str, ...]) -> str:
    """``value`` matched to one of ``allowed``, ignoring case and surrounding spaces."""
    wanted = str(value or "").strip().casefold()
    for option in allowed:
        if option.casefold() == wanted:
            return option
    raise SettingsError(f"{name} {value!r} is not one of {', '.join(allowed)}")


def parse_organisation_ids(text: str | None) -> tuple[int, ...]:
    """``'123, 456'`` -> ``(123, 456)``; duplicates dropped, order kept, blank -> ``()``."""
    tokens = [token.strip() for token in (text or "").split(",")]
    if tokens == [""]:
        return ()
    bad = [token for token in tokens if not re.fullmatch(r"[0-9]+", token) or int(token) == 0]
    if bad:
        raise SettingsError(
            f"organisation_ids {text!r} must be comma-separated positive whole numbers (bad: {bad})"
        )
    return tuple(dict.fromkeys(int(token) for token in tokens))


def parse_settings(row: Mapping[str, Any]) -> SyncSettings:
    """Validate one settings row; every problem found is named in one error."""
    problems: list[str] = []
    flags: dict[str, bool] = {}
    for name in _FLAGS:
        value = row[name]
        if value in (True, False):  # also 1/0 from a BIT column
            flags[name] = bool(value)
        else:
            problems.append(f"{name} must be yes or no, found {value!r}")
    parsed: dict[str, Any] = {}
    for name, parse in (
        ("environment", lambda v: _choice("environment", v, ENVIRONMENTS)),
        ("visit_type", lambda v: _choice("visit_type", v, VISIT_TYPE_IDS)),
        ("organisation_ids", parse_organisation_ids),
    ):
        try:
            parsed[name] = parse(row[name])
        except SettingsError as exc:
            problems.append(str(exc))
    if flags.get("integration_enabled") and parsed.get("organisation_ids") == ():
        problems.append("organisation_ids is blank but the integration is enabled")
    if problems:
        raise SettingsError("OneFile Settings are malformed: " + "; ".join(problems))
    return SyncSettings(
        **flags,
        **parsed,
        visit_type_id=VISIT_TYPE_IDS[parsed["visit_type"]],
        last_synchronised=row["last_synchronised"],
    )


def mark_synchronised(conn: Connection, when: dt.datetime) -> None:
    """Set ``last_synchronised`` at the end of a successful run.

    ``when`` must be naive: PICSWeb shows it as a wall-clock datetime, so the caller decides
    the zone (``picsweb_sync.onefile.ukdates``) instead of this function guessing.
    """
    if when.tzinfo is not None:
        raise ValueError("last_synchronised is a naive PICSWeb datetime; convert it first")
    done = conn.execute(update(onefile_settings).values(last_synchronised=when))
    if done.rowcount != 1:
        raise SettingsError(f"onefile_settings must hold exactly one row, found {done.rowcount}")
