"""tests/data/test_dry_run.py on SQL Server (see conftest.py)."""

from tests.data.test_dry_run import *  # noqa: F403
