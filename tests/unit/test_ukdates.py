"""UK dates and times <-> UTC instants, around both 2026 clock changes
(BST from 01:00 UTC on 29 March, GMT again from 01:00 UTC on 25 October)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from picsweb_sync.onefile.ukdates import (
    date_to_onefile,
    format_instant,
    parse_instant,
    parse_instants,
    uk_date,
    uk_local,
    uk_local_to_utc,
    uk_time,
)

D, T, DT = dt.date, dt.time, dt.datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-03-28T14:23:29.195Z", DT(2026, 3, 28, 14, 23, 29, 195000), id="millis"),
        pytest.param("2026-03-28T14:23:29Z", DT(2026, 3, 28, 14, 23, 29), id="no-millis"),
        pytest.param("2026-06-01T09:00:00+01:00", DT(2026, 6, 1, 8, 0), id="plus-offset"),
        pytest.param("2026-06-01T21:00:00-05:00", DT(2026, 6, 2, 2, 0), id="minus-offset"),
        pytest.param("2026-06-01T09:00:00", DT(2026, 6, 1, 9, 0), id="no-zone-is-utc"),
        pytest.param(" 2026-06-01T09:00:00Z ", DT(2026, 6, 1, 9, 0), id="padded"),
        pytest.param(None, None, id="null"),
        pytest.param("", None, id="empty-is-unset"),
        pytest.param("   ", None, id="spaces-are-unset"),
    ],
)
def test_parse_instant(text, expected):
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-02-30T25:61:00Z", id="impossible"),
        pytest.param("2026-13-01T00:00:00Z", id="month-13"),
        pytest.param("yesterday", id="words"),
        pytest.param(1774000000, id="number"),
        pytest.param(True, id="bool"),
    ],
)
def test_parse_instant_rejects_garbage(text):
    with pytest.raises(ValueError, match="not an ISO-8601 instant"):
        parse_instant(text)


def test_parse_instants_types_and_bad_mask():
    values = pd.Series(["2026-03-29T23:30:00Z", None, "nope", "", "2026-03-29T23:30:00.5Z"])
    stamps, bad = parse_instants(values)
    assert str(stamps.dtype) == "datetime64[us]"
    assert bad.tolist() == [False, False, True, False, False]
    assert stamps.tolist()[0] == pd.Timestamp(2026, 3, 29, 23, 30)
    assert stamps.tolist()[4] == pd.Timestamp(2026, 3, 29, 23, 30, 0, 500000)
    assert stamps.isna().tolist() == [False, True, True, True, False]


@pytest.mark.parametrize(
    ("utc", "date", "time"),
    [
        pytest.param(DT(2026, 1, 15, 23, 30), D(2026, 1, 15), T(23, 30), id="winter-late"),
        pytest.param(DT(2026, 6, 10, 23, 30), D(2026, 6, 11), T(0, 30), id="summer-late-next-day"),
        pytest.param(DT(2026, 3, 29, 0, 30), D(2026, 3, 29), T(0, 30), id="spring-before-change"),
        pytest.param(DT(2026, 3, 29, 1, 0), D(2026, 3, 29), T(2, 0), id="spring-at-change"),
        pytest.param(
            DT(2026, 3, 29, 23, 30), D(2026, 3, 30), T(0, 30), id="spring-contract-example"
        ),
        pytest.param(DT(2026, 10, 24, 23, 30), D(2026, 10, 25), T(0, 30), id="autumn-eve-bst"),
        pytest.param(DT(2026, 10, 25, 0, 30), D(2026, 10, 25), T(1, 30), id="autumn-first-0130"),
        pytest.param(DT(2026, 10, 25, 1, 30), D(2026, 10, 25), T(1, 30), id="autumn-second-0130"),
        pytest.param(DT(2026, 10, 25, 23, 30), D(2026, 10, 25), T(23, 30), id="autumn-after-gmt"),
    ],
)
def test_uk_date_and_time(utc, date, time):
    series = pd.Series([utc], dtype="datetime64[us]")
    assert uk_date(series).tolist() == [date]
    assert uk_time(series).tolist() == [time]
    assert uk_local(series).tolist() == [pd.Timestamp(DT.combine(date, time))]


def test_uk_date_of_missing_is_none():
    series = pd.Series([pd.NaT, DT(2026, 6, 1, 12)], dtype="datetime64[us]")
    assert uk_date(series).tolist() == [None, D(2026, 6, 1)]
    assert uk_time(series).tolist() == [None, T(13, 0)]
    assert uk_date(series).dtype == object


@pytest.mark.parametrize(
    ("date", "time", "utc"),
    [
        pytest.param(D(2026, 2, 10), T(10, 30), DT(2026, 2, 10, 10, 30), id="winter"),
        pytest.param(D(2026, 6, 10), T(10, 30), DT(2026, 6, 10, 9, 30), id="summer"),
        pytest.param(D(2026, 6, 10), T(0, 30), DT(2026, 6, 9, 23, 30), id="summer-after-midnight"),
        pytest.param(D(2026, 3, 28), T(9, 0), DT(2026, 3, 28, 9, 0), id="day-before-spring"),
        pytest.param(D(2026, 3, 29), T(9, 0), DT(2026, 3, 29, 8, 0), id="spring-change-day"),
        pytest.param(
            D(2026, 3, 29), T(1, 30), DT(2026, 3, 29, 1, 0), id="nonexistent-shifts-forward"
        ),
        pytest.param(D(2026, 10, 24), T(9, 0), DT(2026, 10, 24, 8, 0), id="day-before-autumn"),
        pytest.param(D(2026, 10, 25), T(9, 0), DT(2026, 10, 25, 9, 0), id="autumn-change-day"),
        pytest.param(D(2026, 10, 25), T(1, 30), DT(2026, 10, 25, 0, 30), id="ambiguous-takes-bst"),
    ],
)
def test_uk_local_to_utc(date, time, utc):
    result = uk_local_to_utc(pd.Series([date], dtype=object), pd.Series([time], dtype=object))
    assert result.tolist() == [pd.Timestamp(utc)]
    assert str(result.dtype) == "datetime64[us]"


def test_uk_local_to_utc_missing_time_is_missing():
    result = uk_local_to_utc(pd.Series([D(2026, 2, 10)] * 2), pd.Series([None, T(8, 0)]))
    assert result.isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("date", "wire"),
    [
        pytest.param(D(2026, 6, 1), "2026-06-01T00:00:00Z", id="summer"),
        pytest.param(D(2026, 1, 15), "2026-01-15T00:00:00Z", id="winter"),
        pytest.param(D(2026, 3, 29), "2026-03-29T00:00:00Z", id="spring-change-day"),
        pytest.param(None, None, id="null"),
    ],
)
def test_date_to_onefile(date, wire):
    assert date_to_onefile(date) == wire
    assert date_to_onefile(pd.Series([date], dtype=object)).tolist() == [wire]


@pytest.mark.parametrize(
    "date",
    [D(2026, 6, 1), D(2026, 1, 15), D(2026, 3, 29), D(2026, 3, 30), D(2026, 10, 25)],
    ids=str,
)
def test_date_sent_to_onefile_reads_back_as_same_uk_date(date):
    stamps, _ = parse_instants(pd.Series([date_to_onefile(date)]))
    assert uk_date(stamps).tolist() == [date]


@pytest.mark.parametrize(
    ("utc", "text"),
    [
        pytest.param(DT(2026, 6, 1, 8, 0, 5, 999999), "2026-06-01T08:00:05Z", id="drops-micros"),
        pytest.param(DT(2026, 12, 31, 23, 59, 59), "2026-12-31T23:59:59Z", id="year-end"),
        pytest.param(None, None, id="null"),
    ],
)
def test_format_instant(utc, text):
    assert format_instant(utc) == text
    assert format_instant(pd.Series([utc], dtype="datetime64[us]")).tolist() == [text]
