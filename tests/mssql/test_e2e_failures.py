"""tests/e2e/test_failures.py with the PICSWeb on SQL Server (see conftest.py)."""

from tests.e2e.test_failures import *  # noqa: F403
