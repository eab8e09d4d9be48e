"""Fixtures for the data-layer tests: an engine per database with the PICSWeb tables
(filled with a small, hand-built PICSWeb) and the project's tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from picsweb_sync.storage.engines import engine_for_url
from picsweb_sync.storage.project_tables import ensure_project_tables
from sync_demo.picsweb_db import create_picsweb_tables, load_picsweb_rows

LONG_TITLE = "Level 3 Diploma in " + "Advanced Manufacturing Engineering " * 6
LONG_TITLE = LONG_TITLE[:200]


def settings_row(**overrides: object) -> dict:
    row = {
        "settings_id": 1,
        "integration_enabled": True,
        "environment": "Practice",
        "organisation_ids": "11, 12",
        "upload_review_data": True,
        "download_review_data": False,
        "visit_type": "Face to Face",
        "last_synchronised": None,
    }
    return row | overrides


def tq_row(tq_id: int, trainee_id: int = 1, **overrides: object) -> dict:
    row = {
        "tq_id": tq_id,
        "trainee_id": trainee_id,
        "qualification_code": f"Q{tq_id}",
        "title": None,
        "onefile_learning_aim_id": None,
        "total_elements": None,
        "elements_done": None,
        "registration_number": None,
        "registration_date": None,
        "certificate_applied_date": None,
        "certificate_received_date": None,
    }
    return row | overrides


def review_row(review_id: int, trainee_id: int = 1, **overrides: object) -> dict:
    row = {
        "review_id": review_id,
        "trainee_id": trainee_id,
        "review_type": "Normal",
        "scheduled_date": dt.date(2026, 3, 20),
        "start_time": None,
        "end_time": None,
        "officer_id": None,
        "attended": None,
        "actual_date": None,
        "trainee_signed_date": None,
        "onefile_system_id": None,
    }
    return row | overrides


def picsweb_rows() -> dict[str, list[dict]]:
    """A small PICSWeb: two officers, two trainees, qualifications, a unit, reviews, settings."""
    return {
        "officer": [
            {
                "officer_id": 1,
                "first_name": "Siân",
                "surname": "Ó Briain",
                "email": "sian@example.org",
                "onefile_id": 5001,
            },
            {
                "officer_id": 2,
                "first_name": "Zoë",
                "surname": "Łukasz",
                "email": None,
                "onefile_id": None,
            },
        ],
        "trainee": [
            {
                "trainee_id": 1,
                "first_name": "Ana",
                "surname": "Núñez",
                "email": None,
                "uln": "1234567890",
                "main_officer_id": 1,
                "onefile_learner_id": 100001,
            },
            {
                "trainee_id": 2,
                "first_name": "Bo",
                "surname": "Li",
                "email": "bo@example.org",
                "uln": None,
                "main_officer_id": None,
                "onefile_learner_id": None,
            },
        ],
        "trainee_qualification": [
            tq_row(
                1,
                onefile_learning_aim_id=500001,
                total_elements=40,
                elements_done=10,
                title=LONG_TITLE,
                registration_number="REG-1",
                registration_date=dt.date(2025, 9, 1),
            ),
            tq_row(2, elements_done=None, certificate_applied_date=dt.date(2026, 1, 31)),
            tq_row(3, trainee_id=2),
        ],
        "trainee_qualification_unit": [{"tqu_id": 1, "tq_id": 3, "unit_code": "U1"}],
        "review": [
            review_row(
                1,
                start_time=dt.time(9, 0),
                end_time=dt.time(10, 30),
                officer_id=1,
                onefile_system_id=900001,
            ),
            review_row(2, scheduled_date=dt.date(2026, 3, 29), start_time=dt.time(23, 30)),
        ],
        "onefile_settings": [settings_row()],
    }


def _engine(url: str) -> Iterator[Engine]:
    engine = engine_for_url(url)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_engine(db_url: str) -> Iterator[Engine]:
    """An empty database (SQLite and PostgreSQL)."""
    yield from _engine(db_url)


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """PICSWeb tables holding :func:`picsweb_rows`, plus the project's tables."""
    create_picsweb_tables(empty_engine)
    load_picsweb_rows(empty_engine, picsweb_rows())
    ensure_project_tables(empty_engine)
    return empty_engine
