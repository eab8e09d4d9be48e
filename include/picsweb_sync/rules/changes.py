"""The change-set shapes of docs/architecture.md, built column-wise, and the null-aware
comparison every rule uses to decide whether a value really changes."""

from __future__ import annotations

import pandas as pd

PICSWEB_UPDATE_COLUMNS = ["table", "key", "field", "old", "new", "rule"]
ONEFILE_UPDATE_COLUMNS = ["entity", "entity_id", "field", "old", "new", "rule"]


def objects(values: pd.Series) -> pd.Series:
    """Plain Python values (int, str, date, time), ``None`` for every kind of missing."""
    return values.astype(object).where(values.notna(), None)


def differs(left: pd.Series, right: pd.Series) -> pd.Series:
    """Element-wise ``left != right`` where two nulls are equal and null vs value differs
    (pandas' own ``!=`` calls two nulls different)."""
    left_missing, right_missing = left.isna(), right.isna()
    both = ~left_missing & ~right_missing
    unequal = objects(left) != objects(right)
    return (left_missing != right_missing) | (both & unequal)


def picsweb_updates(
    table: str, keys: pd.Series, field: str, old: pd.Series, new: pd.Series, rule: str
) -> pd.DataFrame:
    """``picsweb_updates`` rows: set ``table.field`` of each key from ``old`` to ``new``."""
    return _field_changes(PICSWEB_UPDATE_COLUMNS, table, keys, field, old, new, rule)


def onefile_updates(
    entity: str, ids: pd.Series, field: str, old: pd.Series, new: pd.Series, rule: str
) -> pd.DataFrame:
    """``onefile_updates`` rows: send ``field`` = ``new`` (wire form) for each OneFile ID."""
    return _field_changes(ONEFILE_UPDATE_COLUMNS, entity, ids, field, old, new, rule)


def _field_changes(
    columns: list[str],
    target: str,
    keys: pd.Series,
    field: str,
    old: pd.Series,
    new: pd.Series,
    rule: str,
) -> pd.DataFrame:
    """One row per key; values as Python objects (``dtype=object`` keeps ``None`` from
    becoming NaN, which pandas would do inferring a text column)."""
    index = pd.RangeIndex(len(keys))
    values = [
        pd.Series(target, index=index, dtype="string"),
        pd.Series(keys.to_numpy(), index=index, dtype="Int64"),
        pd.Series(field, index=index, dtype="string"),
        pd.Series(objects(old).to_numpy(), index=index, dtype=object),
        pd.Series(objects(new).to_numpy(), index=index, dtype=object),
        pd.Series(rule, index=index, dtype="string"),
    ]
    return pd.DataFrame(dict(zip(columns, values, strict=True)))


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack change rows of one shape (at least one frame, maybe empty, gives the columns)."""
    rows = [frame for frame in frames if not frame.empty]
    return pd.concat(rows, ignore_index=True) if rows else frames[0]


def rule_counts(rules: list[str], changes: pd.DataFrame, prefix: str) -> dict[str, int]:
    """Rows per rule, every rule named (zero included) so reports line up run to run."""
    made = changes["rule"].value_counts()
    return {f"{prefix}{rule}": int(made.get(rule, 0)) for rule in rules}
