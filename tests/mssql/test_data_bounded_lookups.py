"""tests/data/test_bounded_lookups.py on SQL Server (see conftest.py)."""

from tests.data.test_bounded_lookups import *  # noqa: F403
