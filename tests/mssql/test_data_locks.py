"""tests/data/test_locks.py on SQL Server (see conftest.py)."""

from tests.data.test_locks import *  # noqa: F403
