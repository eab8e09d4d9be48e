"""What every page of the sync page's results shares: what a request may ask and what it
gets back.

A request's limit is :func:`bounded` by each query's maximum; pages go by key (keyset
paging, never OFFSET) through opaque cursors (:func:`encode_cursor`, :func:`decode_cursor`);
a parameter the page cannot use is a :class:`BadRequest` (answered 400). A page of rows is a
:class:`Page`; a change's direction is shown by the system it wrote (:data:`DIRECTIONS`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Which way a change went, by the system written.
DIRECTIONS = {"picsweb": "OneFile → PICSWeb", "onefile": "PICSWeb → OneFile"}


class BadRequest(ValueError):
    """A parameter the page cannot use (a malformed cursor, an unknown filter)."""


# ----- cursors: opaque keyset positions ------------------------------------------------------
def encode_cursor(*parts: Any) -> str:
    text = json.dumps([p.isoformat() if isinstance(p, dt.datetime) else p for p in parts])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The parts of a cursor made by :func:`encode_cursor`, checked against ``kinds``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("wrong shape")
        values = []
        for part, kind in zip(parts, kinds, strict=True):
            if kind is dt.datetime:
                values.append(dt.datetime.fromisoformat(part))
            elif isinstance(part, kind) and not isinstance(part, bool):
                values.append(part)
            else:
                raise ValueError(f"{part!r} is not a {kind.__name__}")
        return values
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"bad cursor: {exc}") from None


def bounded(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    return min(limit, maximum)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    extra: dict[str, Any] = field(default_factory=dict)
