"""tests/e2e/test_review_exactly_once_across_runs.py with the PICSWeb on SQL Server (see conftest.py)."""

from tests.e2e.test_review_exactly_once_across_runs import *  # noqa: F403
