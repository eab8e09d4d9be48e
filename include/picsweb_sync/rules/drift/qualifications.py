"""What still differs between OneFile's learners and aims and PICSWeb's trainees and
qualifications, field by field, and why (rules 1-4 and the links).

Differences are found as rules 1-4 compare (text trimmed, blank and null alike, dates as UK
dates); which of them the rules would still change is the rules' own answer
(:func:`~picsweb_sync.rules.qualifications.elements_from_onefile`,
:func:`~picsweb_sync.rules.qualifications.fill_blank_then_onefile_wins`,
:func:`~picsweb_sync.rules.qualifications.aim_link_outcomes`), never a copy of it.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from picsweb_sync.onefile.names import ONEFILE_ENTITY, ONEFILE_NAMES
from picsweb_sync.rules import changes
from picsweb_sync.rules import qualifications as q
from picsweb_sync.rules.blank import is_blank
from picsweb_sync.rules.drift import evidence as ev

ENTITY = "qualification"
_AIM = ONEFILE_ENTITY["learning_aims"]
_COLUMN_OF = {name: column for column, name in ONEFILE_NAMES["learning_aims"].items()}
_LINK_DETAIL = {
    q.CLAIMED_TWICE: "two PICSWeb qualifications are linked to this aim",
    q.AMBIGUOUS_CODE: "ambiguous code: more than one qualification or aim shares it",
    q.UNMATCHED: "the trainee has no unlinked qualification with this code",
}


def learner_links(learners: pd.DataFrame, trainees: pd.DataFrame) -> pd.DataFrame:
    """One ``not_linked`` row per staged OneFile learner no PICSWeb trainee claims (their
    aims and reviews are not compared: nothing in PICSWeb is theirs)."""
    staged = learners.drop_duplicates("learner_id")
    unlinked = staged[~staged["learner_id"].isin(trainees["onefile_learner_id"].dropna())]
    mis = unlinked["mis_id"].astype("string").str.strip()
    detail = ("MIS reference " + mis + ": no PICSWeb trainee has this OneFile learner").fillna(
        "no MIS reference: no PICSWeb trainee has this OneFile learner"
    )
    return ev.frame(
        {
            "entity": "learner",
            "learner_id": unlinked["learner_id"],
            "field": "link",
            "onefile_value": unlinked["learner_id"].astype("string"),
            "reason": ev.NOT_LINKED,
            "detail": detail,
        },
        unlinked.index,
    )


def onefile_view(learning_aims: pd.DataFrame, audited: pd.DataFrame) -> pd.DataFrame:
    """The staged aims with what the run sent to OneFile since applied (its OneFile-side
    audit), so a value filled in OneFile by this run's push is not a difference."""
    sent = audited[audited["system"].eq("onefile") & audited["entity"].eq(_AIM)]
    view = learning_aims.copy()
    if sent.empty or view.empty:
        return view
    position = pd.Series(view.index, index=view["learning_aim_id"].astype("Int64").to_numpy())
    position = position[~position.index.duplicated()]
    for name, rows in sent.groupby("field", sort=False):
        column = _COLUMN_OF.get(str(name))
        if column is None or column not in view.columns:
            continue
        targets = rows["entity_key"].astype("Int64")
        known = targets.isin(position.index).to_numpy()
        where = position.loc[targets[known].to_numpy()].to_numpy()
        values = rows.loc[known, "new_value"]
        if pd.api.types.is_object_dtype(view[column]) and column.endswith("_date"):
            values = values.map(lambda v: None if v is None else dt.date.fromisoformat(str(v)[:10]))
        view.loc[where, column] = values.to_numpy()
    return view


def qualification_drift(
    learning_aims: pd.DataFrame,
    trainees: pd.DataFrame,
    qualifications: pd.DataFrame,
    units: pd.DataFrame,
    evidence: ev.RunEvidence,
) -> pd.DataFrame:
    """Every difference of the aim links and linked qualifications, with its
    reason (:data:`~picsweb_sync.rules.drift.evidence.REASONS`)."""
    if not evidence.qualifications:
        return ev.empty()
    rows = []
    kept, _, _ = q.distinct_copies(learning_aims, "learning_aim_id")
    dropped = learning_aims[~learning_aims["learning_aim_id"].isin(kept["learning_aim_id"])]
    dropped = dropped.drop_duplicates("learning_aim_id")
    rows.append(
        ev.frame(
            {
                "entity": ENTITY,
                "learner_id": dropped["learner_id"],
                "onefile_id": dropped["learning_aim_id"],
                "field": "copies",
                "reason": ev.CHANGED_SINCE,
                "detail": "OneFile changed this aim during the extract (its copies differ): "
                "the next run syncs it",
            },
            dropped.index,
        )
    )
    view = onefile_view(kept, evidence.audited)
    outcomes = q.aim_link_outcomes(view, trainees, qualifications)
    rows.append(_unlinked_aims(view, outcomes))
    linked = outcomes[outcomes["tq_id"].notna()][["learning_aim_id", "tq_id"]]
    pairs = q.linked_pairs(linked, view, qualifications)
    with_units = pairs["tq_id"].isin(units["tq_id"])
    rows.append(_elements(pairs, with_units, evidence))
    for column, rule, is_date in q.FILL_RULES:
        rows.append(_filled(pairs, column, rule, is_date, evidence))
    return pd.concat(rows, ignore_index=True)


def _unlinked_aims(view: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Aims of linked learners that no qualification is linked to, and why."""
    why = outcomes.set_index("learning_aim_id")["outcome"]
    outcome = view["learning_aim_id"].map(why)
    shown = outcome.isin(tuple(_LINK_DETAIL))
    aims = view[shown]
    return ev.frame(
        {
            "entity": ENTITY,
            "learner_id": aims["learner_id"],
            "onefile_id": aims["learning_aim_id"],
            "field": "link",
            "onefile_value": aims["code"].astype("string"),
            "reason": ev.NOT_LINKED,
            "detail": outcome[shown].map(_LINK_DETAIL),
        },
        aims.index,
    )


def _base(pairs: pd.DataFrame, mask: pd.Series, field: str, of: pd.Series, pw: pd.Series):
    chosen = pairs[mask]
    return {
        "entity": ENTITY,
        "learner_id": chosen["learner_id"],
        "trainee_id": chosen["trainee_id"],
        "onefile_id": chosen["learning_aim_id"],
        "picsweb_key": chosen["tq_id"],
        "field": field,
        "onefile_value": ev.text(of[mask]),
        "picsweb_value": ev.text(pw[mask]),
    }, chosen.index


def _elements(pairs: pd.DataFrame, with_units: pd.Series, evidence: ev.RunEvidence):
    """Rule 1: OneFile's counts, except where units drive progress or OneFile has none."""
    wanted = q.elements_from_onefile(pairs[~with_units])
    rows = []
    for field in q.ELEMENT_FIELDS:
        of, pw = pairs[field + "_onefile"], pairs[field + "_picsweb"]
        differs = changes.differs(pw, of)
        changing = pairs["tq_id"].isin(wanted.loc[wanted["field"].eq(field), "key"])
        keeps = [
            (differs & with_units, ev.UNITS_ATTACHED, "units drive progress in PICSWeb (rule 1)"),
            (differs & ~with_units & of.isna(), ev.RULE_KEEPS_PICSWEB, "OneFile has no count"),
        ]
        for mask, reason, detail in keeps:
            columns, index = _base(pairs, mask, field, of, pw)
            rows.append(ev.frame({**columns, "reason": reason, "detail": detail}, index))
        rows.append(_wanted_or_not(pairs, differs, changing, field, of, pw, evidence, keeps))
    return pd.concat(rows, ignore_index=True)


def _filled(pairs, column: str, rule: str, is_date: bool, evidence: ev.RunEvidence):
    """Rules 2-4: the blank side filled, else OneFile wins; both ways are wanted changes."""
    to_picsweb, to_onefile = q.fill_blank_then_onefile_wins(pairs, column, rule, is_date)
    of, pw = pairs[column + "_onefile"], pairs[column + "_picsweb"]
    of_blank, pw_blank = is_blank(of), is_blank(pw)
    if is_date:
        same = changes.differs(pw, of).eq(False)
    else:
        same = ~changes.differs(pw.astype("string").str.strip(), of.astype("string").str.strip())
    differs = ~(of_blank & pw_blank) & ((of_blank != pw_blank) | ~same)
    into_picsweb = pairs["tq_id"].isin(to_picsweb["key"])
    into_onefile = pairs["learning_aim_id"].isin(to_onefile["entity_id"])
    picsweb_rows = _wanted_or_not(
        pairs, differs & ~into_onefile, into_picsweb, column, of, pw, evidence, []
    )
    name = ONEFILE_NAMES["learning_aims"][column]
    columns, index = _base(pairs, differs & into_onefile, column, of, pw)
    to_send = ev.frame({**columns}, index)
    planned = evidence.planned_onefile
    planned_ids = planned.loc[planned["field"].eq(name), "entity_id"].astype("Int64")
    onefile_rows = ev.explain_wanted(
        to_send,
        q.TABLE,
        evidence,
        pending=to_send["onefile_id"].isin(evidence.pending_aims.astype("Int64")),
        reject_entities=((_AIM, "onefile_id"), ("learning_aims", "onefile_id")),
        planned=to_send["onefile_id"].isin(planned_ids),
        changed=_dropped(to_send, name, evidence.recheck_dropped),
    )
    return pd.concat([picsweb_rows, onefile_rows], ignore_index=True)


def _dropped(rows: pd.DataFrame, name: str, dropped: pd.DataFrame) -> pd.Series:
    """Why the push's re-check did not send ``name`` of each row's aim (NA: it did not drop it)."""
    of_field = dropped[dropped["field"].eq(name)]
    why = pd.Series(
        (
            "the push's re-check found it changed before sending: "
            + of_field["reason"].astype("string")
        ).to_numpy(),
        index=of_field["entity_id"].astype("Int64").to_numpy(),
        dtype="string",
    )
    why = why[~why.index.duplicated()]
    return rows["onefile_id"].map(why).astype("string")


def _wanted_or_not(pairs, differs, changing, field, of, pw, evidence, keeps) -> pd.DataFrame:
    """Differences the rules would change, explained by the run's evidence; any other
    difference the rules leave for no reason of theirs is unexplained too."""
    settled = pd.Series(False, index=pairs.index)
    for mask, _, _ in keeps:
        settled |= mask
    columns, index = _base(pairs, differs & changing & ~settled, field, of, pw)
    wanted = ev.explain_wanted(
        ev.frame(columns, index),
        q.TABLE,
        evidence,
        reject_entities=(("learning_aims", "onefile_id"),),
    )
    columns, index = _base(pairs, differs & ~changing & ~settled, field, of, pw)
    left = ev.frame(
        {
            **columns,
            "reason": ev.UNEXPLAINED,
            "detail": "differs, and the rules leave it for no reason on the list",
        },
        index,
    )
    return pd.concat([wanted, left], ignore_index=True)
