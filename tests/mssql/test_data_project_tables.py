"""tests/data/test_project_tables.py on SQL Server (see conftest.py)."""

from tests.data.test_project_tables import *  # noqa: F403
