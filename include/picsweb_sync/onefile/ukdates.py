"""UK dates and times <-> UTC instants: the only module of the project that knows UK time.

OneFile speaks ISO-8601 instants in UTC; PICSWeb stores UK wall-clock dates and times
(Europe/London). Every conversion between the two goes through here, so the rules of the
contract live in one place:

- a OneFile instant becomes a PICSWeb date by converting to Europe/London first, then
  taking the date (``2026-03-29T23:30:00Z`` is 30 March in the UK);
- a PICSWeb date sent to OneFile is midnight UTC of that date (``2026-06-01`` ->
  ``2026-06-01T00:00:00Z``), which reads back as the same UK date;
- a PICSWeb date + time is UK wall-clock time and becomes a UTC instant.

Instants are naive UTC (``datetime64[us]`` in frames, naive ``datetime`` as scalars); UK
dates and times are ``datetime.date`` / ``datetime.time`` objects, ``None`` when unset.
The functions work on Series (vectorised); the scalar forms wrap the same code, so a single
value and a column can never be converted differently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

UK_ZONE = "Europe/London"
_INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_ONEFILE_DATE_FORMAT = "%Y-%m-%dT00:00:00Z"


def _objects(values: pd.Series) -> pd.Series:
    """An object column with ``None`` for every kind of missing (NaT, NA, NaN)."""
    return values.astype(object).where(values.notna(), None)


def parse_instants(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """OneFile instants (text) -> (naive UTC ``datetime64[us]``, mask of values that are bad).

    Accepts ISO-8601 with or without milliseconds, with ``Z`` or an offset; text without a
    zone is taken as UTC, the only zone OneFile documents. Null, ``''`` and whitespace are
    "unset" (NaT, not bad). Anything else that is not a valid instant of the calendar
    (``2026-02-30T25:61:00Z``, ``yesterday``, a number) is bad, so the caller can reject
    the row instead of writing a wrong date.
    """
    values = values.astype(object)
    is_text = values.map(type, na_action="ignore").eq(str)
    text = values.where(is_text).astype("string").str.strip()
    unset = values.isna() | (is_text & text.eq("").fillna(False))
    stamps = pd.to_datetime(text.where(~unset), format="ISO8601", utc=True, errors="coerce")
    stamps = stamps.dt.tz_convert(None).astype("datetime64[us]")
    return stamps, (~unset & stamps.isna()).astype(bool)


def parse_instant(value: object) -> dt.datetime | None:
    """One OneFile instant -> naive UTC ``datetime`` (``None`` when unset).

    Raises ``ValueError`` for a value that is not an ISO-8601 instant.
    """
    stamps, bad = parse_instants(pd.Series([value], dtype=object))
    if bad.iloc[0]:
        raise ValueError(f"not an ISO-8601 instant: {value!r}")
    return None if pd.isna(stamps.iloc[0]) else stamps.iloc[0].to_pydatetime()


def uk_local(utc: pd.Series) -> pd.Series:
    """Naive UTC instants -> naive UK wall-clock datetimes (``datetime64[us]``)."""
    stamps = pd.to_datetime(utc).astype("datetime64[us]")
    return stamps.dt.tz_localize("UTC").dt.tz_convert(UK_ZONE).dt.tz_localize(None)


def uk_date(utc: pd.Series) -> pd.Series:
    """Naive UTC instants -> UK dates (object column of ``datetime.date``, ``None`` if unset)."""
    return _objects(uk_local(utc).dt.date)


def uk_time(utc: pd.Series) -> pd.Series:
    """Naive UTC instants -> UK wall-clock times (object column of ``datetime.time``)."""
    return _objects(uk_local(utc).dt.time)


def uk_local_to_utc(dates: pd.Series, times: pd.Series) -> pd.Series:
    """UK wall-clock date + time -> naive UTC instants (``datetime64[us]``).

    At the clock changes a wall-clock time can be missing (01:30 on the last Sunday of
    March) or happen twice (01:30 on the last Sunday of October). Both are resolved the
    same way every run: a missing time moves forward to 02:00 BST, a repeated time is the
    first one (BST), so an uploaded review never lands on a different instant on rerun.
    """
    dates = pd.Series(dates, dtype=object)
    times = pd.Series(times, dtype=object).set_axis(dates.index)
    days = pd.to_datetime(dates).astype("datetime64[us]")
    clock = pd.to_timedelta(times.astype("string"))
    local = days + clock
    summer_first = np.ones(len(local), dtype=bool)
    utc = local.dt.tz_localize(UK_ZONE, ambiguous=summer_first, nonexistent="shift_forward")
    return utc.dt.tz_convert(None).astype("datetime64[us]")


def _each(series_function: Callable[[pd.Series], pd.Series]) -> Callable:
    """Let a Series function take one value too (same code path, same result)."""

    def convert(values):
        if isinstance(values, pd.Series):
            return series_function(values)
        return series_function(pd.Series([values], dtype=object)).iloc[0]

    convert.__doc__ = series_function.__doc__
    convert.__name__ = series_function.__name__
    return convert


@_each
def date_to_onefile(dates: pd.Series) -> pd.Series:
    """UK dates -> OneFile's wire form, midnight UTC of that date (``YYYY-MM-DDT00:00:00Z``).

    Midnight UTC reads back as the same UK date in summer and winter alike (00:00 UTC is
    01:00 BST), so a date written to OneFile never comes back a day off. Unset -> ``None``.
    """
    return _objects(
        pd.to_datetime(pd.Series(dates, dtype=object)).dt.strftime(_ONEFILE_DATE_FORMAT)
    )


@_each
def format_instant(utc: pd.Series) -> pd.Series:
    """Naive UTC instants -> ``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds); unset -> ``None``."""
    return _objects(pd.to_datetime(pd.Series(utc)).dt.strftime(_INSTANT_FORMAT))


def uk_wall_clock(instant: dt.datetime) -> dt.datetime:
    """An aware instant as naive UK wall-clock time, the form PICSWeb shows datetimes in
    (``onefile_settings.last_synchronised``)."""
    if instant.tzinfo is None:
        raise ValueError("uk_wall_clock needs an aware datetime")
    stamp = pd.Timestamp(instant).tz_convert(UK_ZONE).tz_localize(None)
    return stamp.to_pydatetime()


def covered_day(
    start: dt.datetime | None, end: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime, float] | None:
    """The UK day a run covers: its data interval (naive or aware UTC) as UK wall-clock
    ``(begins, ends, hours)``; ``None`` without an end. A run covers the UK day ending at
    its logical date (02:00 to 02:00 UK time for a scheduled run: 23 or 25 hours on a day
    the clocks change); an interval of no length (a run triggered without one) is read as
    the 24 hours ending at its end. The mail and the sync page both name a run's day by it."""
    if end is None:
        return None
    end = end if end.tzinfo else end.replace(tzinfo=dt.UTC)
    start = None if start is None else (start if start.tzinfo else start.replace(tzinfo=dt.UTC))
    if start is None or start >= end:
        start = end - dt.timedelta(days=1)
    hours = (end - start) / dt.timedelta(hours=1)
    return uk_wall_clock(start), uk_wall_clock(end), hours
