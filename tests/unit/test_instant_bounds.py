"""Instants every database holds (issue 18, case 7, found by tests/data/test_parse_fuzz.py):
an instant whose UTC or UK date falls outside years 1 to 9999 is a reject, never an error
(it was a ``ValueError: year 0 is out of range`` in the parse, or in the staging write)."""

from __future__ import annotations

import datetime as dt

import pytest

from picsweb_sync.onefile.fields import parse_learning_aims, parse_reviews

OUTSIDE = "outside 0001-01-02 to 9999-12-30 (UTC), the instants every database holds"


@pytest.mark.parametrize(
    "sent",
    [
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "0001-01-01T00:00:30Z",  # year 0 in UK time (UTC-0:01:15 then)
        "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
        "9999-12-31T12:00:00Z",
    ],
)
def test_an_instant_beyond_the_years_every_database_holds_is_a_reject(sent):
    reviews = parse_reviews([{"ID": 1, "ScheduledFor": sent}], 1)
    aims = parse_learning_aims([{"ID": 1, "RegistrationDate": sent}], 1)
    assert reviews.frame.empty and aims.frame.empty
    assert reviews.rejects["reason"].tolist() == [f'ScheduledFor: {OUTSIDE}: "{sent}"']
    assert aims.rejects["reason"].tolist() == [f'RegistrationDate: {OUTSIDE}: "{sent}"']


@pytest.mark.parametrize(
    ("sent", "instant", "uk_date"),
    [
        ("0001-01-02T00:00:00Z", dt.datetime(1, 1, 2, tzinfo=dt.UTC), dt.date(1, 1, 1)),
        (
            "9999-12-30T23:59:59Z",
            dt.datetime(9999, 12, 30, 23, 59, 59, tzinfo=dt.UTC),
            dt.date(9999, 12, 30),
        ),
    ],
)
def test_the_first_and_last_instants_parse(sent, instant, uk_date):
    reviews = parse_reviews([{"ID": 1, "ScheduledFor": sent}], 1)
    aims = parse_learning_aims([{"ID": 1, "RegistrationDate": sent}], 1)
    assert reviews.rejects.empty and aims.rejects.empty
    assert reviews.frame["scheduled_for"].dt.to_pydatetime().tolist() == [
        instant.replace(tzinfo=None)
    ]
    assert aims.frame["registration_date"].tolist() == [uk_date]
