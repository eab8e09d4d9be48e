"""The benchmarks' shared timing: a timed variant's result, timing a step, and comparing
each variant with its baseline.

``benchmarks.run`` and ``benchmarks.sync_page`` both time with these, so they live apart
from either (the two had imported each other for them).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Result:
    """One timed variant: ``median_s`` of ``repeats`` runs over ``rows`` input rows."""

    benchmark: str
    size: str
    variant: str
    rows: int
    repeats: int
    median_s: float
    baseline: str | None = None  # variant this one is compared with
    ratio: float | None = None  # baseline median / this median: how many times faster
    note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.median_s if self.median_s else float("inf")


def timed(
    run: Callable[[], object],
    repeats: int,
    budget_s: float,
    setup: Callable[[], None] | None = None,
) -> tuple[dict[str, float | int], Any]:
    """Median seconds of up to ``repeats`` runs of ``run`` (``setup`` untimed before each),
    stopping early once ``budget_s`` is spent, so a slow baseline runs at least once but
    does not eat the whole benchmark's time; and what the last run returned, to check."""
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        if setup:
            setup()
        start = time.perf_counter()
        answer = run()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "repeats": len(times)}, answer


def compared(results: list[Result], baseline: str) -> list[Result]:
    """``results`` with each one's speed-up against the variant named ``baseline``."""
    base = next(r for r in results if r.variant == baseline).median_s
    return [
        r if r.variant == baseline else replace(r, baseline=baseline, ratio=base / r.median_s)
        for r in results
    ]
