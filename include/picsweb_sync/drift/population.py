"""OneFile's side of the on-demand drift report: the whole population, read now.

The same searches as the run's extracts (:mod:`picsweb_sync.stages.extract`), for every
organisation the settings name: learners (OneFile's learner role), assessors (its assessor
roles), learning aims, and the reviews scheduled in the window. Each is parsed as the
extract parses it (:mod:`picsweb_sync.onefile.fields`), so the frames are what a run would
stage, and a row the parser sets aside is a reject of this read (entity, source ID,
reason), the drift report's evidence for it.

Searches only (``POST /{Entity}/Search/{page}/{size}``, reads sent as POST, and the
authentication): never an update or a create. The hook counts its calls against its own
limiter (the connection's ``calls_per_minute``), as the preflight's does; nothing is written
to the shared call budget in the staging database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from onefile.hook import OneFileHook
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.names import ASSESSOR_ROLES, LEARNER_ROLE

ENTITIES = ("learners", "assessors", "learning_aims", "reviews")
REJECT_COLUMNS = ["entity", "source_id", "reason"]


@dataclass
class Population:
    """The parsed frames per entity (staging's columns, ``raw`` left out, as the per-run
    report reads them), the rows set aside, and the calls made."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejects: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({name: [] for name in REJECT_COLUMNS})
    )
    calls: int = 0

    def counts(self) -> dict[str, int]:
        return {entity: len(frame) for entity, frame in self.frames.items()}


def read_population(
    hook: OneFileHook,
    organisation_ids: Iterable[int],
    review_from: datetime,
    review_to: datetime,
) -> Population:
    """Every organisation's learners, assessors, aims and reviews (scheduled in
    ``[review_from, review_to)``), parsed; raises the hook's errors (a refused token, an
    unreachable OneFile)."""
    searches: dict[str, Callable[[int], list[Any]]] = {
        "learners": lambda org: list(hook.search_users(org, role=LEARNER_ROLE)),
        "assessors": lambda org: [
            row for role in ASSESSOR_ROLES for row in hook.search_users(org, role=role)
        ],
        "learning_aims": lambda org: list(hook.search_learning_aims(organisation_id=org)),
        "reviews": lambda org: list(
            hook.search_reviews(org, date_from=review_from, date_to=review_to)
        ),
    }
    parts = {entity: [onefile_fields.parse_rows(entity, [], 0).frame] for entity in ENTITIES}
    rejects = [Population().rejects]
    for organisation_id in organisation_ids:
        for entity in ENTITIES:
            rows = searches[entity](organisation_id)
            parsed = onefile_fields.parse_rows(entity, rows, organisation_id)
            parts[entity].append(parsed.frame)
            rejects.append(parsed.rejects[REJECT_COLUMNS])
    frames = {entity: _joined(parts[entity]).drop(columns="raw") for entity in ENTITIES}
    return Population(frames, _joined(rejects), hook.calls_made)


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one under the other; the empty ones only shape the answer when all are
    empty (pandas would otherwise let an empty frame's dtypes change the others')."""
    filled = [frame for frame in frames if len(frame)]
    return pd.concat(filled or frames[:1], ignore_index=True)
