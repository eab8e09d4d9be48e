"""tests/data/test_picsweb_writes.py on SQL Server (see conftest.py)."""

from tests.data.test_picsweb_writes import *  # noqa: F403
