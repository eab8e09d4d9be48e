"""The run's threshold Params: which were crossed, said as text.

A run whose rejects or conflicts pass a threshold Param (a count, or a share of the rows it
extracted or of the PICSWeb changes it tried), or whose drift report found more differences
no reason explains than ``max_unexplained`` (a defect of the sync), fails loudly once its
data is synced (``stages.start_finish.check_thresholds``). :func:`crossed_thresholds` reads the run's
summary (``picsweb_sync.run.summary``) against the Params and names each threshold crossed
with its numbers; :func:`thresholds_failure` is the run record's failure text for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from picsweb_sync.run.summary import EXTRACTED, unexplained

# The threshold Params and their defaults (``None``: that threshold is off). A count
# threshold is crossed when the count is greater than it; a share threshold (a fraction:
# 0.10 is 10 %) when the share is greater than it. A run where one row in ten cannot be
# synced is broken; below that, the count thresholds catch volume. Any difference the
# drift report cannot explain is a defect of the sync: by default one fails the run.
THRESHOLD_DEFAULTS: dict[str, int | float | None] = {
    "max_rejects": 100,
    "max_reject_share": 0.10,
    "max_conflicts": 50,
    "max_conflict_share": 0.10,
    "max_unexplained": 0,
}


def threshold_settings(params: Mapping[str, Any]) -> dict[str, int | float | None]:
    """The run's thresholds: each Param as given (``None``: off), its default when absent."""
    return {name: params.get(name, default) for name, default in THRESHOLD_DEFAULTS.items()}


def rows_extracted(summary: Mapping[str, Any]) -> int:
    """Rows of all four entities the run extracted (the reject share's denominator)."""
    return sum(int(summary.get(key, 0)) for key in EXTRACTED)


def crossed_thresholds(summary: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """Each threshold the run crossed, as text naming the threshold and the numbers.

    Shares: rejects of the rows extracted (all four entities); conflicts of the PICSWeb
    changes the loads tried (fields changed + conflicts). A share of no rows is crossed
    only when there is something to share (rejects with nothing extracted at all).
    Unexplained differences: the drift report's (none without a report, e.g. a dry run).
    """
    limits = threshold_settings(params)
    rejects, conflicts = int(summary.get("rejects", 0)), int(summary.get("conflicts", 0))
    tried = int(summary.get("picsweb_fields_changed", 0)) + conflicts
    crossed = []
    if limits["max_rejects"] is not None and rejects > limits["max_rejects"]:
        crossed.append(f"rejects {rejects} > max_rejects {limits['max_rejects']}")
    share = _share_crossed(
        "rejects", rejects, rows_extracted(summary), "rows", limits["max_reject_share"]
    )
    crossed += share
    if limits["max_conflicts"] is not None and conflicts > limits["max_conflicts"]:
        crossed.append(f"conflicts {conflicts} > max_conflicts {limits['max_conflicts']}")
    crossed += _share_crossed(
        "conflicts", conflicts, tried, "PICSWeb changes tried", limits["max_conflict_share"]
    )
    left, most = unexplained(summary), limits["max_unexplained"]
    if most is not None and left > most:
        crossed.append(f"unexplained differences {left} > max_unexplained {most}")
    return crossed


def _share_crossed(
    name: str, part: int, whole: int, of_what: str, limit: float | None
) -> list[str]:
    param = "max_reject_share" if name == "rejects" else "max_conflict_share"
    if limit is None or part == 0:
        return []
    if whole == 0:
        return [f"{name} {part} of 0 {of_what} > {param} {_percent(limit)}"]
    if part / whole <= limit:
        return []
    digits = 1  # as many as it takes to show the share above the limit
    while digits < 6 and _percent(part / whole, digits) == _percent(limit, digits):
        digits += 1
    share = _percent(part / whole, digits)
    return [f"{name} {part} of {whole} {of_what} ({share}) > {param} {_percent(limit, digits)}"]


def _percent(fraction: float, digits: int = 1) -> str:
    """``0.0525`` -> ``5.3 %``; ``0.05`` -> ``5 %`` (rounded half up, no trailing zeros)."""
    value = (Decimal(str(fraction)) * 100).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    text = f"{value:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " %"


def thresholds_failure(crossed: list[str]) -> str:
    """The run record's failure text for crossed thresholds."""
    return "thresholds crossed: " + "; ".join(crossed) + " (the run's data was synced)"
