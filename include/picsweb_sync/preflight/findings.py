"""What a preflight found: one :class:`Check` per thing checked, each with a level and what
to do about it, and the whole :class:`Report` as a table for people or JSON for machines.

Levels, and why a deployment pipeline can act on them:
- ``ok``: fits; nothing to do (the finding says what was seen, e.g. a column's type);
- ``warning``: the sync runs, but something deserves a look (rows OneFile sends that the
  sync would set aside, a case-insensitive collation, settings that switch work off);
- ``blocking``: the sync would fail, or would silently do the wrong thing (a missing or
  too-short column, a permission missing, a OneFile field absent, settings it cannot read).

Exit codes: 0 when nothing is blocking (warnings allowed), 1 when anything is, and 2 when
the preflight could not run at all (bad arguments, a connection that cannot be read).
"""

from __future__ import annotations

import enum
import json
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

EXIT_OK = 0
EXIT_BLOCKING = 1
EXIT_CANNOT_RUN = 2


class Level(enum.IntEnum):
    """Ordered, so the worst of several is ``max``."""

    OK = 0
    WARNING = 1
    BLOCKING = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Check:
    """One thing checked.

    ``id`` is stable and dotted (``picsweb.column.review.attended``), for machines and tests;
    ``title`` names it for people; ``finding`` is what was seen and ``advice`` what to do
    (for ``ok`` too: usually "nothing"); ``details`` holds the numbers behind the finding.
    """

    id: str
    level: Level
    title: str
    finding: str
    advice: str = "nothing to do"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


class Redactor:
    """Blanks out secrets (connection passwords, the customer token) wherever a finding
    might quote them, e.g. a driver's error message. The last line of defence: findings
    are built from names, hosts and counts, never from secrets."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= 3 and secret not in self._secrets:
                self._secrets.append(secret)
                try:  # Airflow's own masker too, for anything logged on the way
                    from airflow.sdk.log import mask_secret

                    mask_secret(secret)
                except ImportError:
                    pass
        self._secrets.sort(key=len, reverse=True)  # a longer secret containing a shorter one

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


@dataclass
class Report:
    """Every check of one preflight, in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    def add(self, checks: Iterable[Check]) -> None:
        self.checks.extend(checks)

    @property
    def level(self) -> Level:
        return max((c.level for c in self.checks), default=Level.OK)

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKING if self.level is Level.BLOCKING else EXIT_OK

    def counts(self) -> dict[str, int]:
        return {str(level): sum(c.level is level for c in self.checks) for level in Level}

    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.level is Level.BLOCKING]

    def by_id(self) -> dict[str, Check]:
        return {c.id: c for c in self.checks}

    def redacted(self, redact: Redactor) -> Report:
        """The same report with every text passed through ``redact``."""
        return Report(
            [
                Check(
                    c.id,
                    c.level,
                    redact(c.title),
                    redact(c.finding),
                    redact(c.advice),
                    json.loads(redact(json.dumps(c.details, default=str))),
                )
                for c in self.checks
            ]
        )

    def as_json(self) -> str:
        return json.dumps(
            {
                "result": str(self.level),
                "exit_code": self.exit_code,
                "counts": self.counts(),
                "checks": [
                    {**asdict(c), "level": str(c.level), "area": c.area} for c in self.checks
                ],
            },
            indent=2,
            default=str,
        )

    def as_table(self, width: int = 100, heading: Sequence[str] = ()) -> str:
        """Level, check, finding and what to do, one block per check, worst first within
        each area so a blocking item is never lost among the ok ones."""
        counts = self.counts()
        lines = [*heading]
        lines.append(
            f"Result: {str(self.level).upper()} ({counts['blocking']} blocking, "
            f"{counts['warning']} warning, {counts['ok']} ok); exit code {self.exit_code}"
        )
        lines.append("")
        lines.append(f"{'LEVEL':<9} CHECK / FINDING / WHAT TO DO")
        lines.append("-" * width)
        indent = " " * 10
        areas = list(dict.fromkeys(c.area for c in self.checks))
        for area in areas:
            in_area = [c for c in self.checks if c.area == area]
            in_area.sort(key=lambda c: -c.level)
            for check in in_area:
                lines.append(f"{str(check.level).upper():<9} {check.title}")
                for label, text in (("", check.finding), ("what to do: ", check.advice)):
                    if check.level is Level.OK and label and text == "nothing to do":
                        continue
                    lines += textwrap.wrap(
                        label + text,
                        width=width,
                        initial_indent=indent,
                        subsequent_indent=indent + "  ",
                        break_long_words=False,
                        break_on_hyphens=False,
                    )
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def worst(levels: Iterable[Level]) -> Level:
    return max(levels, default=Level.OK)
