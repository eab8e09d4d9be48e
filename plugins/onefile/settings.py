"""The tuning of one OneFile hook: page size, rate limit, retries, backoff and timeout.

Defaults follow the contract; a connection's extras and the hook's constructor arguments
override them (:meth:`OneFileSettings.merged`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class OneFileSettings:
    """Tuning of one hook; defaults follow the contract (300 calls a minute, pages of 100)."""

    page_size: int = 100
    calls_per_minute: int = 300
    rate_period_seconds: float = 60.0
    max_retries: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    timeout_seconds: float = 30.0

    @classmethod
    def merged(cls, extras: dict[str, Any], overrides: dict[str, Any]) -> OneFileSettings:
        """Defaults, then connection extras, then constructor arguments that are not None.

        Extras from a URI-form connection arrive as strings, so each value is coerced to the
        field's type.
        """
        settings = cls()
        for source in (extras, overrides):
            chosen = {
                f.name: type(getattr(settings, f.name))(source[f.name])
                for f in fields(cls)
                if source.get(f.name) is not None
            }
            settings = replace(settings, **chosen)
        return settings
