"""The PICSWeb database checks: the connection, every PICSWeb table against the sync's
definitions, the OneFile Settings row and its organisation IDs, then the text collation
(:mod:`.collation`) and the login's permissions (:mod:`.permissions`); and what they read
for the first-run counts (:class:`PicswebFacts`).

All read-only: one rolled-back, ``READ ONLY`` transaction (:mod:`.read_only`), ``SELECT``
statements and catalog reads only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from picsweb_sync.preflight.collation import collation_checks
from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.permissions import grant_checks
from picsweb_sync.preflight.read_only import connected_check, error_text, read_only
from picsweb_sync.preflight.schema import INSERTED, WRITTEN, reflect, table_checks
from picsweb_sync.run.settings import (
    SettingsError,
    SyncSettings,
    parse_organisation_ids,
    parse_settings,
)
from picsweb_sync.storage import picsweb_tables as pw
from picsweb_sync.storage.sqlframes import read_frame

PICSWEB_DEFINITIONS = "include/picsweb_sync/storage/picsweb_tables.py"


# ----- what the checks found, for later checks ------------------------------------------------
@dataclass
class PicswebFacts:
    """What the PICSWeb checks read, for the first-run counts: the tables that fit, the
    settings, and the frames the rules work on."""

    fits: set[str] = field(default_factory=set)
    settings: SyncSettings | None = None
    organisation_ids: tuple[int, ...] = ()
    environment: str | None = None
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)


# ----- PICSWeb ------------------------------------------------------------------------------
def picsweb_checks(
    engine: Engine, description: str, *, writes: bool = True, read_frames: bool = False
) -> tuple[list[Check], PicswebFacts]:
    """Connection, tables, settings, collation and permissions of the PICSWeb database.

    ``writes=False`` (a dry run) judges what the sync only writes as a warning, not as
    blocking; ``read_frames`` also reads the tables the first-run counts need.
    """
    facts = PicswebFacts()
    try:
        with read_only(engine) as conn:
            checks = [connected_check("picsweb.connect", "PICSWeb database", conn, description)]
            tables = pw.metadata.sorted_tables
            found = reflect(conn, tables)
            for table in tables:
                table_level = table_checks(
                    conn,
                    table,
                    found[table.name],
                    prefix="picsweb",
                    where=PICSWEB_DEFINITIONS,
                    written=WRITTEN.get(table.name, frozenset()) if writes else frozenset(),
                    inserted=table.name in INSERTED and writes,
                )
                checks += table_level
                if all(c.level is not Level.BLOCKING for c in table_level):
                    facts.fits.add(table.name)
            checks += settings_checks(conn, facts)
            checks += collation_checks(conn, found)
            checks += grant_checks(conn, found, writes=writes)
            if read_frames:
                facts.frames = _frames(conn, facts.fits)
    except SQLAlchemyError as exc:
        return [
            Check(
                "picsweb.connect",
                Level.BLOCKING,
                "PICSWeb database",
                f"{description}: {error_text(exc)}",
                "check the connection's host, port, database, login and password, and that "
                "this machine may reach the server",
            )
        ], facts
    return checks, facts


# ----- settings -----------------------------------------------------------------------------
def settings_checks(conn: Connection, facts: PicswebFacts) -> list[Check]:
    """The OneFile Settings row: present once, valid (``parse_settings``, as ``start_run``
    reads it), and its organisation IDs."""
    if "onefile_settings" not in facts.fits:
        return [
            Check(
                "picsweb.settings",
                Level.WARNING,
                "OneFile Settings row",
                "not read: the table onefile_settings does not fit (see above)",
                "fix the table first, then run the preflight again",
            )
        ]
    rows = conn.execute(sa.select(pw.onefile_settings)).mappings().all()
    if len(rows) != 1:
        return [
            Check(
                "picsweb.settings",
                Level.BLOCKING,
                "OneFile Settings row",
                f"onefile_settings holds {len(rows)} rows; the sync needs exactly one",
                "fill in PICSWeb's OneFile Settings screen once (one row, settings_id 1)",
                {"rows": len(rows)},
            )
        ]
    row = rows[0]
    facts.environment = row["environment"]
    checks = [_organisations_check(row["organisation_ids"], facts)]
    try:
        settings = parse_settings(row)
    except SettingsError as exc:
        checks.insert(
            0,
            Check(
                "picsweb.settings",
                Level.BLOCKING,
                "OneFile Settings row",
                str(exc),
                "correct it on PICSWeb's OneFile Settings screen: every run stops at "
                "start_run until it is valid",
            ),
        )
        return checks
    facts.settings = settings
    shown = (
        f"integration {'on' if settings.integration_enabled else 'off'}, environment "
        f"{settings.environment}, upload review data "
        f"{'on' if settings.upload_review_data else 'off'}, download review data "
        f"{'on' if settings.download_review_data else 'off'}, visit type "
        f"{settings.visit_type} (VisitTypeID {settings.visit_type_id})"
    )
    if not settings.integration_enabled:
        check = Check(
            "picsweb.settings",
            Level.WARNING,
            "OneFile Settings row",
            f"valid; {shown}: every run ends at once, syncing nothing",
            "switch the integration on in PICSWeb's OneFile Settings when the team is ready",
        )
    else:
        check = Check("picsweb.settings", Level.OK, "OneFile Settings row", f"valid; {shown}")
    checks.insert(0, check)
    return checks


def _organisations_check(text: Any, facts: PicswebFacts) -> Check:
    try:
        ids = parse_organisation_ids(text)
    except SettingsError as exc:
        return Check(
            "picsweb.settings.organisation_ids",
            Level.BLOCKING,
            "organisation IDs",
            str(exc),
            "list the OneFile organisation (centre) IDs to sync, comma-separated, e.g. "
            "'5740, 5741'",
        )
    facts.organisation_ids = ids
    if not ids:
        return Check(
            "picsweb.settings.organisation_ids",
            Level.WARNING,
            "organisation IDs",
            "blank: no organisation would be synced",
            "list the OneFile organisation (centre) IDs to sync, comma-separated",
        )
    return Check(
        "picsweb.settings.organisation_ids",
        Level.OK,
        "organisation IDs",
        ", ".join(str(i) for i in ids),
        details={"organisation_ids": list(ids)},
    )


# ----- what the first-run counts read --------------------------------------------------------
def _frames(conn: Connection, fits: set[str]) -> dict[str, pd.DataFrame]:
    """The rows the merges read, as they read them (only tables that fit)."""
    frames: dict[str, pd.DataFrame] = {}
    review = pw.review
    statements = {
        "trainee": sa.select(pw.trainee),
        "trainee_qualification": sa.select(pw.trainee_qualification),
        "officer": sa.select(pw.officer),
        # plan_review_uploads reads the reviews not yet in OneFile, the same way
        "review": sa.select(review).where(review.c.onefile_system_id.is_(None)),
    }
    for name, statement in statements.items():
        if name in fits:
            frames[name] = read_frame(conn, statement)
    return frames
