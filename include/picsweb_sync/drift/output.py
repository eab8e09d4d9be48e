"""The on-demand drift report as people and machines read it: a text (counts by reason,
unexplained first, with what each means and what to do; counts by field; then the first
rows of each reason), the JSON (the same counts and every row) and a CSV of every row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from picsweb_sync.drift.last_run import Found
from picsweb_sync.drift.reasons import REASONS
from picsweb_sync.rules import drift

EXIT_IN_STEP = 0
EXIT_UNEXPLAINED = 1
EXIT_CANNOT_RUN = 2
HEADING = "OneFile <-> PICSWeb: what still differs (read-only; nothing was changed)"
# The rows' table: fixed-width cells (cut to fit), then the detail whole.
_ROW_COLUMNS = (
    ("learner", 26),
    ("what", 22),
    ("field", 26),
    ("OneFile", 20),
    ("PICSWeb", 20),
)


@dataclass
class Result:
    """One report and what it was made from."""

    report: pd.DataFrame
    organisations: tuple[int, ...]
    window: tuple[datetime, datetime]
    onefile_rows: dict[str, int]
    onefile_rejects: int
    calls: int
    found: Found
    download: bool
    upload: bool
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = drift.counts_by_reason(self.report)

    @property
    def exit_code(self) -> int:
        return EXIT_UNEXPLAINED if self.counts[drift.UNEXPLAINED] else EXIT_IN_STEP

    @property
    def result(self) -> str:
        if self.counts[drift.UNEXPLAINED]:
            return "unexplained"
        return "explained" if len(self.report) else "in_step"

    def by_field(self) -> list[dict[str, Any]]:
        """Differences per entity, field and reason, in the report's order of reasons."""
        if self.report.empty:
            return []
        order = {reason: n for n, reason in enumerate(drift.REASONS)}
        grouped = self.report.groupby(["entity", "field", "reason"], dropna=False).size()
        rows = [
            {"entity": entity, "field": name, "reason": reason, "count": int(count)}
            for (entity, name, reason), count in grouped.items()
        ]
        return sorted(rows, key=lambda r: (r["entity"], r["field"], order.get(r["reason"], 99)))


def as_json(result: Result) -> str:
    found = result.found
    answer = {
        "result": result.result,
        "exit_code": result.exit_code,
        "counts": result.counts,
        "differences": len(result.report),
        "by_field": result.by_field(),
        "onefile": {
            "organisations": list(result.organisations),
            "window": {"from": _iso(result.window[0]), "to": _iso(result.window[1])},
            "rows": result.onefile_rows,
            "rejects": result.onefile_rejects,
            "calls": result.calls,
        },
        "evidence_run": found.run.as_json() if found.run else None,
        "running": found.running,
        "settings": {"download_review_data": result.download, "upload_review_data": result.upload},
        "rows": records(result.report),
    }
    return json.dumps(answer, indent=2)


def records(report: pd.DataFrame) -> list[dict[str, Any]]:
    """Every row, JSON-ready: NA as null, IDs as numbers."""
    frame = report[drift.COLUMNS].astype(object).where(report[drift.COLUMNS].notna(), None)
    return [
        {name: (int(v) if hasattr(v, "__index__") and not isinstance(v, bool) else v)
         for name, v in row.items()}
        for row in frame.to_dict("records")
    ]  # fmt: skip


def write_csv(report: pd.DataFrame, path: Path) -> None:
    report[drift.COLUMNS].to_csv(path, index=False)


def as_text(result: Result, limit: int) -> str:
    lines = [HEADING, _result_line(result), *_sources(result), ""]
    lines.append("Differences by reason (unexplained first)")
    for reason in drift.REASONS:
        meaning, what_to_do = REASONS[reason]
        lines.append(f"  {reason:<19} {result.counts[reason]:>7}  {meaning}")
        if result.counts[reason]:
            lines.append(f"  {'':<19} {'':>7}  what to do: {what_to_do}")
    fields = result.by_field()
    if fields:
        lines += ["", "Differences by field"]
        per_field: dict[tuple[str, str], list[str]] = {}
        for row in fields:
            per_field.setdefault((row["entity"], row["field"]), []).append(
                f"{row['reason']} {row['count']}"
            )
        for (entity, name), parts in per_field.items():
            lines.append(f"  {entity:<14} {name:<26} {', '.join(parts)}")
    for reason in drift.REASONS:
        rows = result.report[result.report["reason"].eq(reason)]
        if rows.empty:
            continue
        shown = rows.head(limit)
        more = f" (the first {len(shown)})" if len(shown) < len(rows) else ""
        header = _row(*(name for name, _ in _ROW_COLUMNS), "detail")
        lines += ["", f"{reason}: {len(rows)}{more}", "  " + header]
        for row in shown.to_dict("records"):
            cells = (_learner(row), _subject(row), row["field"], *_values(row), row["detail"])
            lines.append("  " + _row(*cells))
    return "\n".join(lines) + "\n"


def _result_line(result: Result) -> str:
    n, unexplained = len(result.report), result.counts[drift.UNEXPLAINED]
    if unexplained:
        said = f"UNEXPLAINED ({unexplained} of {n} differences explained by no reason)"
    elif n:
        said = f"EXPLAINED ({n} differences, each with a reason)"
    else:
        said = "IN STEP (no difference)"
    return f"Result: {said}; exit code {result.exit_code}"


def _sources(result: Result) -> list[str]:
    rows = result.onefile_rows
    start, end = (_utc(when) for when in result.window)
    lines = [
        f"OneFile, read now: organisations {', '.join(map(str, result.organisations))}: "
        f"{rows.get('learners', 0)} learners, {rows.get('assessors', 0)} assessors, "
        f"{rows.get('learning_aims', 0)} learning aims, {rows.get('reviews', 0)} reviews "
        f"scheduled {start} to {end}; {result.onefile_rejects} rows set aside; "
        f"{result.calls} calls, all reads",
    ]
    found = result.found
    if found.run is not None:
        ended = _utc(found.run.ended_at) if found.run.ended_at else "?"
        lines.append(
            f"Evidence: the latest real run {found.run.run_id} ({found.run.outcome}, ended {ended})"
        )
    elif found.tables:
        lines.append("Evidence: no real run ended yet (the outbox only)")
    else:
        lines.append("Evidence: none (the sync's tables are not there: it never ran)")
    if found.running:
        lines.append(f"Note: run {found.running} is going now; its changes may move under this")
    on = {True: "on", False: "off"}
    lines.append(
        f"Settings: Download Review Data {on[result.download]}, "
        f"Upload Review Data {on[result.upload]}"
    )
    return lines


def _learner(row: dict[str, Any]) -> str:
    learner, trainee = row["learner_id"], row["trainee_id"]
    parts = [
        f"OneFile {learner}" if _set(learner) else "",
        f"trainee {trainee}" if _set(trainee) else "",
    ]
    return " / ".join(p for p in parts if p) or "-"


def _subject(row: dict[str, Any]) -> str:
    """The qualification or review: PICSWeb's key when it has one, else OneFile's ID."""
    if _set(row["picsweb_key"]):
        return f"{row['entity']} {row['picsweb_key']}"
    if _set(row["onefile_id"]):
        named = "aim" if row["entity"] == "qualification" else f"OneFile {row['entity']}"
        return f"{named} {row['onefile_id']}"
    return str(row["entity"])


def _values(row: dict[str, Any]) -> tuple[str, str]:
    return tuple(
        "-" if not _set(row[c]) else str(row[c]) for c in ("onefile_value", "picsweb_value")
    )


def _row(*cells: Any) -> str:
    """One line of the rows' table: the fixed-width cells cut to fit, the detail whole."""
    out = []
    for (_, width), cell in zip(_ROW_COLUMNS, cells, strict=False):
        text = str(cell) if _set(cell) else ""
        text = text if len(text) <= width else text[: width - 1] + "…"
        out.append(f"{text:<{width}}")
    detail = cells[len(_ROW_COLUMNS)]
    out.append(str(detail) if _set(detail) else "")
    return " ".join(out).rstrip()


def _set(value: Any) -> bool:
    return (
        value is not None
        and value is not pd.NA
        and not (isinstance(value, float) and value != value)
    )


def _iso(when: datetime) -> str:
    """A naive UTC time as ISO 8601 with its ``Z``."""
    return when.replace(tzinfo=None).isoformat() + "Z"


def _utc(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")
