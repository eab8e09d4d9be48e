"""The OneFile Settings row: parsed strictly, with errors that say what to fix."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, insert, select

from picsweb_sync.run.settings import (
    SettingsError,
    mark_synchronised,
    parse_organisation_ids,
    parse_settings,
    read_settings,
)
from picsweb_sync.storage.picsweb_tables import onefile_settings

from .conftest import settings_row


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11", (11,)),
        (" 11 ,12,  13 ", (11, 12, 13)),
        ("12,11,12", (12, 11)),
        ("", ()),
        (None, ()),
        ("   ", ()),
    ],
    ids=["one", "spaces", "duplicates-dropped-order-kept", "empty", "null", "blank"],
)
def test_organisation_ids_parse(text, expected):
    assert parse_organisation_ids(text) == expected


@pytest.mark.parametrize(
    "text",
    ["11;12", "11,,12", "11,", "abc", "-5", "0", "1.5"],
    ids=["semicolon", "empty-item", "trailing-comma", "word", "negative", "zero", "decimal"],
)
def test_malformed_organisation_ids_are_refused(text):
    with pytest.raises(SettingsError, match="organisation_ids"):
        parse_organisation_ids(text)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"environment": "Practice", "organisation_ids": (11, 12), "visit_type_id": 3}),
        ({"environment": " live "}, {"environment": "Live"}),
        ({"visit_type": "Not Specified"}, {"visit_type": "Not Specified", "visit_type_id": 1}),
        ({"visit_type": "remote session"}, {"visit_type": "Remote Session", "visit_type_id": 2}),
        ({"integration_enabled": 0, "organisation_ids": ""}, {"integration_enabled": False}),
        ({"upload_review_data": 1}, {"upload_review_data": True}),
    ],
    ids=["defaults", "environment-case", "visit-1", "visit-2", "disabled-without-orgs", "bit"],
)
def test_settings_row_parses(overrides, expected):
    settings = parse_settings(settings_row(**overrides))
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        ({"environment": "Test"}, ["environment 'Test'"]),
        ({"visit_type": "Phone"}, ["visit_type 'Phone'"]),
        ({"organisation_ids": "11,x"}, ["organisation_ids"]),
        ({"organisation_ids": " "}, ["organisation_ids is blank"]),
        ({"download_review_data": None}, ["download_review_data must be yes or no"]),
        (
            {"environment": None, "integration_enabled": "yes"},
            ["integration_enabled must be yes or no", "environment None"],
        ),
    ],
    ids=["environment", "visit-type", "org-ids", "no-orgs-while-enabled", "null-flag", "several"],
)
def test_malformed_settings_name_every_problem(overrides, messages):
    with pytest.raises(SettingsError) as raised:
        parse_settings(settings_row(**overrides))
    for message in messages:
        assert message in str(raised.value)


def test_read_settings_from_the_database(engine):
    with engine.connect() as conn:
        settings = read_settings(conn)
    assert (settings.organisation_ids, settings.download_review_data) == ((11, 12), False)


@pytest.mark.parametrize("rows", [0, 2], ids=["missing", "duplicated"])
def test_read_settings_needs_exactly_one_row(engine, rows):
    with engine.begin() as conn:
        conn.execute(delete(onefile_settings))
        for n in range(rows):
            conn.execute(insert(onefile_settings).values(settings_row(settings_id=n + 1)))
    with (
        pytest.raises(SettingsError, match=f"exactly one row, found {rows}"),
        engine.connect() as c,
    ):
        read_settings(c)


def test_mark_synchronised_sets_the_naive_datetime(engine):
    when = dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        mark_synchronised(conn, when)
    with engine.connect() as conn:
        assert read_settings(conn).last_synchronised == when
        assert conn.execute(select(onefile_settings.c.last_synchronised)).scalar_one() == when


def test_mark_synchronised_refuses_an_aware_datetime(engine):
    with pytest.raises(ValueError, match="naive"), engine.begin() as conn:
        mark_synchronised(conn, dt.datetime.now(dt.UTC))
