"""tests/data/test_settings.py on SQL Server (see conftest.py)."""

from tests.data.test_settings import *  # noqa: F403
