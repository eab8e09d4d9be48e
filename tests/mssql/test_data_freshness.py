"""tests/data/test_freshness.py on SQL Server (see conftest.py)."""

from tests.data.test_freshness import *  # noqa: F403
