"""tests/data/test_sqlframes.py on SQL Server (see conftest.py)."""

from tests.data.test_sqlframes import *  # noqa: F403
