"""What the contract calls *blank*: null, or an empty or whitespace-only string."""

from __future__ import annotations

import pandas as pd


def is_blank(values: pd.Series) -> pd.Series:
    """True where a value is null (None, NA, NaN, NaT), ``''`` or only whitespace.

    Works for any column: a non-text value (a date, a number) is blank only when null, since
    its text form is never empty.
    """
    empty = values.astype("string").str.strip().eq("").fillna(False).astype(bool)
    return values.isna().astype(bool) | empty
