"""What a person reads on the sync page's drift view: each reason's label and what to do
about it, and each entity's and field's plain name. The words are the sync's own
(:mod:`picsweb_sync.run.drift_labels`), so the page, the note, the alert mail and
``make drift`` say the same; this module only names them for the page.
"""

from __future__ import annotations

from picsweb_sync.rules.drift.evidence import REASONS
from picsweb_sync.run.drift_labels import (
    WHAT_TO_DO,
    entity_label,
    field_label,
    what_to_do,
)
from picsweb_sync.run.drift_labels import drift_label as reason_label

__all__ = ["REASONS", "WHAT_TO_DO", "entity_label", "field_label", "reason_label", "what_to_do"]
