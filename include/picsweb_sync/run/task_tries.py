"""A run's counts per try, for its summary (``picsweb_sync.run.summary``): a task cleared and
rerun records its counts again as its next try (``sync_run_try_count``), and the summary
says what the run did in all and what its latest tries did. Kept apart from the summary
so that module stays readable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

Counts = dict[str, Counter[str]]


def added(tries: list[dict[str, int]]) -> dict[str, int]:
    """A stage's counts over all its tries, added up."""
    total: Counter[str] = Counter()
    for values in tries:
        total.update(values)
    return dict(total)


def by_task(stages: Mapping[str, Mapping[str, int]]) -> Counts:
    """Counts per task: the stages of a mapped task (``extract_learners[123]``) added up."""
    by_task: Counts = {}
    for stage, values in stages.items():
        by_task.setdefault(stage.split("[", 1)[0], Counter()).update(values)
    return by_task


def count(counts: Counts, task: str, name: str) -> int:
    return int(counts.get(task, Counter()).get(name, 0))


def reruns(tries: Mapping[str, list[dict[str, int]]]) -> dict[str, int]:
    """Each task with more than one try (its stages' most tries), by name."""
    reruns: dict[str, int] = {}
    for stage, values in tries.items():
        if len(values) > 1:
            task = stage.split("[", 1)[0]
            reruns[task] = max(reruns.get(task, 0), len(values))
    return dict(sorted(reruns.items()))
