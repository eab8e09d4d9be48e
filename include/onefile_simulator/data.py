"""The simulator's in-memory OneFile state and the wire form of OneFile instants.

Rows are plain dicts keyed by the OneFile JSON field names of the contract, with instants kept
as the strings OneFile sends. Keeping the wire form (rather than parsed values) lets the
simulator serve exactly what the generator or a test wrote, including deliberately odd rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class OneFileData:
    """Everything the simulated OneFile customer holds, one list of rows per entity."""

    organisations: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    learning_aims: list[dict] = field(default_factory=list)
    reviews: list[dict] = field(default_factory=list)
    visits: list[dict] = field(default_factory=list)


def format_instant(value: dt.datetime, millis: bool = True) -> str:
    """Write an aware datetime as OneFile does: UTC, `Z` suffix, milliseconds optional."""
    utc = value.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def parse_instant(value: object) -> dt.datetime | None:
    """Read a OneFile instant into an aware UTC datetime; None when it is not one.

    Returning None instead of raising lets filters treat a corrupt row as "no match"
    and lets request validation turn a bad value into a 400 answer.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(dt.UTC)
