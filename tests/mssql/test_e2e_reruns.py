"""tests/e2e/test_reruns.py with the PICSWeb on SQL Server (see conftest.py)."""

from tests.e2e.test_reruns import *  # noqa: F403
