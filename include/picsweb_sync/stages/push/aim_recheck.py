"""What a learning-aim update still has to send: its fields checked against both systems as
they are now (:func:`aim_fields_still_to_fill`), and OneFile read for it the cheapest way
(:func:`reads_by_learner`, :func:`current_learning_aims`).

Apart from the sending loop (:mod:`~picsweb_sync.stages.push.aims`) because it is the rule a
reader checks: a field goes only where OneFile is still blank and PICSWeb still holds the
value the merge planned, in OneFile's wire form; anything else is a reason to skip, kept in
``last_error``. Set-based: a run's aim updates are thousands of rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.onefile.ukdates import date_to_onefile
from picsweb_sync.rules.blank import is_blank


def reads_by_learner(learners: int, organisation_rows: int, page: int) -> bool:
    """Whether re-reading ``learners`` learners' aims one search each costs no more calls than
    the organisation's ``organisation_rows`` aims a ``page`` at a time. A learner's search is
    one short page and the call that confirms it ends there (``OneFileHook.search``): two
    calls; the organisation's pages cost one each, and one more when the last is short."""
    pages = -(-organisation_rows // page)
    return 2 * learners <= pages + (1 if organisation_rows % page else 0)


def current_learning_aims(hook: Any, staged: pd.DataFrame, aim_ids: list[int]) -> pd.DataFrame:
    """The learning aims ``aim_ids`` as OneFile holds them now (parsed), read with as few
    calls as the run's staged aims allow: per learner when few learners are concerned,
    else the organisation's pages."""
    wanted = staged[staged["learning_aim_id"].isin(aim_ids)]
    rows: list[dict[str, Any]] = []
    page = getattr(getattr(hook, "settings", None), "page_size", 100) or 100
    for organisation_id, group in wanted.groupby("organisation_id"):
        learners = group["learner_id"].dropna().unique()
        organisation_rows = int((staged["organisation_id"] == organisation_id).sum())
        if reads_by_learner(len(learners), organisation_rows, page):
            for learner_id in learners:
                rows.extend(hook.search_learning_aims(user_id=int(learner_id)))
        else:
            rows.extend(hook.search_learning_aims(organisation_id=int(organisation_id)))
    parsed = onefile_fields.parse_learning_aims(rows, organisation_id=0).frame
    return parsed[parsed["learning_aim_id"].isin(aim_ids)]


def aim_fields_still_to_fill(
    pending: pd.DataFrame, onefile_now: pd.DataFrame, picsweb_now: pd.DataFrame
) -> pd.DataFrame:
    """Each pending aim update reduced to the fields that still apply: OneFile's value is
    still blank and PICSWeb still holds the value to send (in OneFile's wire form).

    Returns ``pending`` with ``payload`` reduced and ``reason`` (NA when something is
    left to send, else why nothing is). Checked a column at a time (one field of every
    update at once), not a value at a time: a run's aim updates are thousands of rows.
    """
    columns = {v: k for k, v in onefile_fields.ONEFILE_NAMES["learning_aims"].items()}
    onefile = onefile_now.drop_duplicates("learning_aim_id").set_index("learning_aim_id")
    linked = picsweb_now.dropna(subset=["onefile_learning_aim_id"])
    picsweb = linked.drop_duplicates("onefile_learning_aim_id").set_index("onefile_learning_aim_id")
    fields = pd.DataFrame(
        [
            (position, int(target), name, columns[name], value)
            for position, (target, payload) in enumerate(
                zip(pending["target_id"], pending["payload"], strict=True)
            )
            for name, value in payload.items()
        ],
        columns=["position", "aim", "field", "column", "value"],
    )
    in_onefile = fields["aim"].isin(onefile.index).to_numpy()
    in_picsweb = fields["aim"].isin(picsweb.index).to_numpy()
    onefile_blank = np.ones(len(fields), dtype=bool)
    picsweb_wire = np.full(len(fields), None, dtype=object)
    for column, rows in fields.groupby("column", sort=False).groups.items():
        aims = fields.loc[rows, "aim"]
        now_onefile = onefile[column].reindex(aims).astype(object)
        onefile_blank[rows] = is_blank(now_onefile).to_numpy()
        picsweb_wire[rows] = _wire_values(picsweb[column].reindex(aims), column)
    payloads: list[dict[str, Any]] = [{} for _ in range(len(pending))]
    why: list[list[str]] = [[] for _ in range(len(pending))]
    for i, (position, name, value) in enumerate(
        zip(fields["position"], fields["field"], fields["value"], strict=True)
    ):
        if not in_onefile[i]:
            why[position].append("the learning aim is no longer in OneFile's search")
        elif not in_picsweb[i]:
            why[position].append("no PICSWeb qualification is linked to it any more")
        elif not onefile_blank[i]:
            why[position].append(f"{name} is no longer blank in OneFile")
        elif picsweb_wire[i] != value:
            why[position].append(f"{name} changed in PICSWeb since the merge")
        else:
            payloads[position][name] = value
    reasons = [
        pd.NA if kept else "; ".join(dict.fromkeys(reason)) or "nothing to send"
        for kept, reason in zip(payloads, why, strict=True)
    ]
    return pending.assign(payload=payloads, reason=pd.Series(reasons, dtype="string").to_numpy())


def _wire_values(values: pd.Series, column: str) -> np.ndarray:
    """PICSWeb values as the merge sends them to OneFile (dates midnight UTC, text
    trimmed), ``None`` for missing."""
    values = values.astype(object).where(values.notna(), None)
    if column.endswith("_date"):
        wire = date_to_onefile(values)
    else:
        wire = values.map(lambda v: str(v).strip(), na_action="ignore")
    return wire.astype(object).where(values.notna(), None).to_numpy()
