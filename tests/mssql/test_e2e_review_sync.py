"""tests/e2e/test_review_sync.py with the PICSWeb on SQL Server (see conftest.py)."""

from tests.e2e.test_review_sync import *  # noqa: F403
