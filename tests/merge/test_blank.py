"""What counts as blank (docs/architecture.md): null, empty or whitespace-only."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from picsweb_sync.rules.blank import is_blank


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        pytest.param(None, True, id="none"),
        pytest.param(pd.NA, True, id="pd-na"),
        pytest.param(np.nan, True, id="nan"),
        pytest.param(pd.NaT, True, id="nat"),
        pytest.param("", True, id="empty"),
        pytest.param("   ", True, id="spaces"),
        pytest.param("\t\n", True, id="tab-newline"),
        pytest.param(" x ", False, id="padded-text"),
        pytest.param("0", False, id="zero-text"),
        pytest.param(0, False, id="zero"),
        pytest.param(dt.date(2026, 1, 1), False, id="date"),
    ],
)
def test_is_blank_object_column(value, blank):
    assert is_blank(pd.Series([value, "set"], dtype=object)).tolist() == [blank, False]


def test_is_blank_typed_columns():
    assert is_blank(pd.Series(["", None, "a"], dtype="string")).tolist() == [True, True, False]
    assert is_blank(pd.Series([1, None], dtype="Int64")).tolist() == [False, True]
    assert is_blank(pd.Series([], dtype="string")).tolist() == []
