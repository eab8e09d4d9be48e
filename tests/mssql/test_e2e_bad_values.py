"""tests/e2e/test_bad_values.py with the PICSWeb on SQL Server (see conftest.py)."""

from tests.e2e.test_bad_values import *  # noqa: F403
