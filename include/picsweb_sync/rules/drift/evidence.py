"""The drift report's shape, its closed list of reasons, and the evidence of a run.

A difference the rules would still change now (the merge run again over the same OneFile
data and PICSWeb as it is) is a change some run should have made. It is explained only by
what the run itself recorded: the change is waiting in the outbox, was set aside as a reject
or a conflict, was written and then edited in PICSWeb, or was never in the run's change set
because PICSWeb (or OneFile) changed after the merge read it. A change the run planned and
then neither wrote, rejected nor conflicted on is a defect: **unexplained**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

# The closed list, in the order the report shows them (unexplained first: a defect).
UNEXPLAINED = "unexplained"
REJECT = "reject"
CONFLICT = "conflict"
NOT_LINKED = "not_linked"
UNITS_ATTACHED = "units_attached"
RULE_KEEPS_PICSWEB = "rule_keeps_picsweb"
SWITCHED_OFF = "switched_off"
OUTSIDE_WINDOW = "outside_window"
CHANGED_SINCE = "changed_since"
PENDING_OUTBOX = "pending_outbox"
REASONS = (
    UNEXPLAINED,
    REJECT,
    CONFLICT,
    NOT_LINKED,
    UNITS_ATTACHED,
    RULE_KEEPS_PICSWEB,
    SWITCHED_OFF,
    OUTSIDE_WINDOW,
    CHANGED_SINCE,
    PENDING_OUTBOX,
)

# One row per difference.
COLUMNS = [
    "entity",  # learner, qualification, review
    "learner_id",  # OneFile User.ID
    "trainee_id",  # PICSWeb trainee
    "onefile_id",  # LearningAim.ID / Review.ID
    "picsweb_key",  # tq_id / review_id
    "field",
    "onefile_value",  # as PICSWeb would hold it, text
    "picsweb_value",  # text
    "reason",
    "detail",
]
_INTS = ("learner_id", "trainee_id", "onefile_id", "picsweb_key")


def empty() -> pd.DataFrame:
    return frame({})


def frame(columns: dict[str, object], index: pd.Index | None = None) -> pd.DataFrame:
    """A drift frame: every column of :data:`COLUMNS`, IDs ``Int64``, the rest text."""
    length = len(index) if index is not None else 0
    if index is None:
        index = pd.RangeIndex(length)
    out = {}
    for name in COLUMNS:
        value = columns.get(name, pd.NA)
        dtype = "Int64" if name in _INTS else "string"
        if isinstance(value, pd.Series):
            out[name] = pd.Series(value.to_numpy(), index=index).astype(dtype)
        else:
            out[name] = pd.Series(value, index=index, dtype=dtype)
    return pd.DataFrame(out).reset_index(drop=True)


def text(values: pd.Series) -> pd.Series:
    """Values as the report shows them: ISO dates and times, ``str`` otherwise, NA unset."""

    def one(value: object) -> object:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return pd.NA
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return str(value)

    return pd.Series([one(v) for v in values], index=values.index, dtype="string")


@dataclass(frozen=True)
class RunEvidence:
    """What one run recorded, the drift report's only evidence for a wanted change.

    - ``rejects``: the run's rejects (``entity``, ``source_id``, ``reason``); a load's
      conflict is a reject whose reason starts ``conflict: <field> ``.
    - ``planned``: the run's PICSWeb field changes (``table``, ``key``, ``field``) and review
      inserts (``table`` ``review``, ``key`` = the OneFile review ID, ``field``
      ``onefile_system_id``); ``planned_onefile``: its OneFile aim updates (``entity_id``,
      ``field``: OneFile's name); ``planned_uploads``: PICSWeb review IDs rule 5 planned.
    - ``audited``: what the run wrote (``system``, ``entity``, ``entity_key``, ``field``,
      ``new_value``): PICSWeb fields, and OneFile fields sent.
    - ``pending_aims``, ``pending_reviews``: targets of outbox rows not final (aim IDs,
      PICSWeb review IDs); ``created_reviews``: PICSWeb review IDs OneFile now holds through
      an outbox create (``review_id``, ``onefile_id``); ``awaiting_link``: VisitIDs of creates
      whose outcome is not known yet.
    - ``refused``: the PICSWeb tables whose load the run refused, with the refusal's reason;
    - ``download``, ``upload``: the settings; ``qualifications``: the run did learner and
      qualification work; ``window``: the review window (UTC, naive, ``[from, to)``).
    """

    rejects: pd.DataFrame = field(default_factory=lambda: _frame("entity source_id reason"))
    planned: pd.DataFrame = field(default_factory=lambda: _frame("table key field"))
    planned_onefile: pd.DataFrame = field(default_factory=lambda: _frame("entity_id field"))
    planned_uploads: pd.Series = field(default_factory=lambda: pd.Series([], dtype="Int64"))
    audited: pd.DataFrame = field(
        default_factory=lambda: _frame("system entity entity_key field new_value")
    )
    pending_aims: pd.Series = field(default_factory=lambda: pd.Series([], dtype="Int64"))
    pending_reviews: pd.Series = field(default_factory=lambda: pd.Series([], dtype="Int64"))
    created_reviews: pd.DataFrame = field(default_factory=lambda: _frame("review_id onefile_id"))
    awaiting_link: pd.Series = field(default_factory=lambda: pd.Series([], dtype="Int64"))
    # OneFile aim fields the push's re-check found changed just before sending, and so did
    # not send (``entity_id``, ``field``: OneFile's name, ``reason``).
    recheck_dropped: pd.DataFrame = field(default_factory=lambda: _frame("entity_id field reason"))
    # PICSWeb table -> why the run's load of it was refused (stale or no basis: a newer
    # run loaded newer OneFile data; nothing of that change set was written).
    refused: dict[str, str] = field(default_factory=dict)
    download: bool = True
    upload: bool = True
    # Why download/upload is off, for the rows it explains (a backfill run does not upload).
    download_off: str = "Download Review Data is off in PICSWeb's OneFile Settings"
    upload_off: str = "Upload Review Data is off in PICSWeb's OneFile Settings"
    qualifications: bool = True
    window: tuple[datetime, datetime] | None = None


def _frame(names: str) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in names.split()})


def _keys(entity: pd.Series, key: pd.Series, field: pd.Series | None = None) -> pd.Series:
    parts = entity.astype("string") + "\x1f" + key.astype("string")
    if field is not None:
        parts = parts + "\x1f" + field.astype("string")
    return parts


def rejected(
    diffs: pd.DataFrame, names: tuple[tuple[str, str], ...], evidence: RunEvidence
) -> pd.Series:
    """The reason of the run's (non-conflict) reject naming each row, NA where none does:
    ``names`` are (reject entity, drift column) pairs, tried in order."""
    rejects = evidence.rejects
    plain = rejects[~rejects["reason"].astype("string").str.startswith("conflict: ").fillna(False)]
    by_row = pd.Series(
        plain["reason"].astype("string").to_numpy(),
        index=_keys(plain["entity"], plain["source_id"]).to_numpy(),
        dtype="string",
    )
    by_row = by_row[~by_row.index.duplicated()]
    found = pd.Series(pd.NA, index=diffs.index, dtype="string")
    for entity, column in names:
        keys = _keys(pd.Series(entity, index=diffs.index), diffs[column])
        found = found.fillna(keys.map(by_row).astype("string"))
    return found


def explain_wanted(
    diffs: pd.DataFrame,
    table: str,
    evidence: RunEvidence,
    *,
    pending: pd.Series | None = None,
    reject_entities: tuple[tuple[str, str], ...] = (),
    planned: pd.Series | None = None,
    changed: pd.Series | None = None,
) -> pd.DataFrame:
    """Reasons for differences the rules would still change (``diffs`` in the drift shape,
    ``reason`` NA), in order: pending in the outbox; a reject of the run naming the row
    (its reason as detail) or a conflict on the field; written by the run and edited since;
    the run's load of the table refused (a newer run loaded newer data); not in the run's
    change set (changed after the merge read it); else unexplained.

    ``table`` is the PICSWeb table of ``picsweb_key``; ``pending`` marks rows whose target
    has an outbox row not final; ``reject_entities`` are further (reject entity, drift
    column) pairs naming the row (a staged OneFile row by its ID); ``planned`` marks rows the
    run's change set held (default: ``evidence.planned`` by table, key and field);
    ``changed`` gives, per row, why it was found changed just before its write (NA: not).
    """
    if diffs.empty:
        return diffs
    out = diffs.copy()
    reason = out["reason"].astype("string")
    detail = out["detail"].astype("string")

    def settle(mask: pd.Series, why: str, how: pd.Series | str | None = None) -> None:
        nonlocal reason, detail
        mask = mask & reason.isna()
        reason = reason.mask(mask, why)
        if how is not None:
            detail = detail.mask(mask, how)

    if pending is not None:
        settle(pending.fillna(False).astype(bool), PENDING_OUTBOX, "an outbox row will send it")
    if changed is not None:  # the reason of each, NA where the row did not change
        settle(changed.notna(), CHANGED_SINCE, changed)
    rejects = evidence.rejects
    reason_text = rejects["reason"].astype("string")
    is_conflict = reason_text.str.startswith("conflict: ").fillna(False).astype(bool)
    conflicts = rejects[is_conflict]
    conflict_field = conflicts["reason"].astype("string").str.slice(10).str.split(" ").str[0]
    conflict_keys = _keys(conflicts["entity"], conflicts["source_id"], conflict_field)
    row_keys = _keys(pd.Series(table, index=out.index), out["picsweb_key"], out["field"])
    conflict_reason = pd.Series(
        conflicts["reason"].astype("string").to_numpy(), index=conflict_keys.to_numpy()
    )
    conflict_reason = conflict_reason[~conflict_reason.index.duplicated()]
    settle(row_keys.isin(conflict_keys), CONFLICT, row_keys.map(conflict_reason))
    why = rejected(out, ((table, "picsweb_key"), *reject_entities), evidence)
    settle(why.notna(), REJECT, why)
    written = evidence.audited[evidence.audited["system"].eq("picsweb")]
    written_keys = _keys(written["entity"], written["entity_key"], written["field"])
    settle(row_keys.isin(written_keys), CHANGED_SINCE, "written by this run, edited since")
    if table in evidence.refused:
        refusal = f"this run's load was refused, nothing written: {evidence.refused[table]}"
        settle(pd.Series(True, index=out.index), CHANGED_SINCE, refusal)
    if planned is None:
        planned_keys = _keys(
            evidence.planned["table"], evidence.planned["key"], evidence.planned["field"]
        )
        planned = row_keys.isin(planned_keys)
    settle(
        ~planned.fillna(False).astype(bool),
        CHANGED_SINCE,
        "changed after this run's merge read it: the next run syncs it",
    )
    settle(pd.Series(True, index=out.index), UNEXPLAINED, "planned by this run, never written")
    out["reason"] = reason
    out["detail"] = detail
    return out
