"""What still differs between OneFile's reviews and PICSWeb's, field by field, and why
(rules 5 and 6).

Compared: each OneFile review of a linked learner beside the PICSWeb review with its ID
(attended, actual date, officer, signed date, scheduled date and time), OneFile reviews
PICSWeb lacks, PICSWeb reviews with an ID OneFile's window lacks, and PICSWeb reviews with
no ID (rule 5's candidates). What the rules would still change is their own answer:
:func:`~picsweb_sync.rules.reviews.merge_reviews` for rule 6 and
:func:`~picsweb_sync.rules.reviews.review_upload_eligibility` for rule 5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from picsweb_sync.onefile.ukdates import uk_local_to_utc
from picsweb_sync.rules import changes
from picsweb_sync.rules import reviews as r
from picsweb_sync.rules.drift import evidence as ev
from picsweb_sync.rules.qualifications import distinct_copies

ENTITY = "review"
LINK = "onefile_system_id"
_KEEPS = {
    "officer_id": "the OneFile assessor matches no PICSWeb officer: PICSWeb's is kept",
    "trainee_signed_date": "OneFile has no signature date: PICSWeb's is kept",
}
_NOT_UPLOADED = {
    "not_normal": "not a Normal review: rule 5 uploads Normal reviews only",
    "attended_set": "attended already set: rule 5 uploads reviews yet to happen",
    "actual_date_set": "actual date already set: rule 5 uploads reviews yet to happen",
}


def review_drift(
    reviews: pd.DataFrame,
    assessors: pd.DataFrame,
    learners: pd.DataFrame,
    trainees: pd.DataFrame,
    officers: pd.DataFrame,
    picsweb_reviews: pd.DataFrame,
    evidence: ev.RunEvidence,
) -> pd.DataFrame:
    """Every difference of the reviews, with its reason. ``learners`` are the staged
    learners (the organisations the run synced); ``picsweb_reviews`` is PICSWeb's ``review``
    table (every row: linked, and rule 5's candidates)."""
    kept, _, _ = distinct_copies(reviews, "review_id")
    dropped = reviews[~reviews["review_id"].isin(kept["review_id"])].drop_duplicates("review_id")
    ours = kept["visit_id"].isin(evidence.awaiting_link.astype("Int64"))
    rows = [
        _onefile_only(dropped, "copies", ev.CHANGED_SINCE, "OneFile changed this review during "
                      "the extract (its copies differ): the next run syncs it"),
        _onefile_only(kept[ours], LINK, ev.PENDING_OUTBOX, "created in OneFile by this sync; "
                      "the next push links it to its PICSWeb review"),
    ]  # fmt: skip
    staged = kept[~ours]
    linked_trainees = trainees[["trainee_id", "onefile_learner_id"]].dropna()
    staged = staged[staged["learner_id"].isin(linked_trainees["onefile_learner_id"])]
    linked = picsweb_reviews[picsweb_reviews[LINK].notna()]
    wanted = r.wanted_reviews(staged, trainees, officers, assessors)
    merged = r.merge_reviews(staged, trainees, officers, assessors, linked)
    wanted = wanted.merge(staged[["review_id", "learner_id"]], on="review_id", how="left")
    rows.append(_fields(wanted, linked, merged.picsweb_updates, evidence))
    rows.append(_missing_in_picsweb(wanted, linked, merged.picsweb_review_inserts, evidence))
    known = pd.concat([kept["review_id"], evidence.created_reviews["onefile_id"]]).astype("Int64")
    rows.append(
        _missing_in_onefile(
            linked, known, dropped, trainees, learners, reviews["learner_id"], evidence
        )
    )
    rows.append(_not_uploaded(picsweb_reviews[picsweb_reviews[LINK].isna()], trainees, evidence))
    return pd.concat(rows, ignore_index=True)


def _onefile_only(staged: pd.DataFrame, field: str, reason: str, detail: str) -> pd.DataFrame:
    return ev.frame(
        {
            "entity": ENTITY,
            "learner_id": staged["learner_id"],
            "onefile_id": staged["review_id"],
            "field": field,
            "reason": reason,
            "detail": detail,
        },
        staged.index,
    )


def _fields(wanted, linked, updates, evidence: ev.RunEvidence) -> pd.DataFrame:
    """Rule 6 over each review both sides hold."""
    pairs = wanted.merge(linked, left_on="review_id", right_on=LINK, suffixes=("_of", "_pw"))
    rows = []
    for field, _, leave_when_missing in r.RULE6_FIELDS:
        of, pw = pairs[field + "_of"], pairs[field + "_pw"]
        differs = changes.differs(pw, of)
        changing = pairs["review_id_pw"].isin(updates.loc[updates["field"].eq(field), "key"])
        keeps = differs & ~changing & of.isna() if leave_when_missing else differs & False

        def base(mask: pd.Series, field: str = field, of=of, pw=pw) -> tuple[dict, pd.Index]:
            chosen = pairs[mask]
            return {
                "entity": ENTITY,
                "learner_id": chosen["learner_id"],
                "trainee_id": chosen["trainee_id_pw"],
                "onefile_id": chosen["review_id_of"],
                "picsweb_key": chosen["review_id_pw"],
                "field": field,
                "onefile_value": ev.text(of[mask]),
                "picsweb_value": ev.text(pw[mask]),
            }, chosen.index

        columns, index = base(keeps)
        detail = _KEEPS.get(field, "OneFile has no value: PICSWeb's is kept")
        rows.append(ev.frame({**columns, "reason": ev.RULE_KEEPS_PICSWEB, "detail": detail}, index))
        columns, index = base(differs & ~keeps)
        found = ev.frame(columns, index)
        if not evidence.download:
            rows.append(_switched_off(found, evidence.download_off))
            continue
        changing_rows = found["picsweb_key"].isin(updates.loc[updates["field"].eq(field), "key"])
        rows.append(
            ev.explain_wanted(found[changing_rows.to_numpy()], r.TABLE, evidence,
                              reject_entities=(("reviews", "onefile_id"),))
        )  # fmt: skip
        left = found[~changing_rows.to_numpy()].assign(
            reason=ev.UNEXPLAINED,
            detail="differs, and the rules leave it for no reason on the list",
        )
        rows.append(left)
    return pd.concat(rows, ignore_index=True)


def _missing_in_picsweb(wanted, linked, inserts, evidence: ev.RunEvidence) -> pd.DataFrame:
    """OneFile reviews of linked learners that no PICSWeb review holds: rule 6 creates them."""
    new = wanted[~wanted["review_id"].isin(linked[LINK])]
    found = ev.frame(
        {
            "entity": ENTITY,
            "learner_id": new["learner_id"],
            "trainee_id": new["trainee_id"],
            "onefile_id": new["review_id"],
            "field": LINK,
            "onefile_value": new["review_id"].astype("string"),
        },
        new.index,
    )
    if not evidence.download:
        return _switched_off(found, evidence.download_off)
    planned = evidence.planned
    inserts_planned = planned.loc[planned["table"].eq("review") & planned["field"].eq(LINK), "key"]
    changing = found["onefile_id"].isin(inserts[LINK])
    explained = ev.explain_wanted(
        found[changing.to_numpy()],
        r.TABLE,
        evidence,
        reject_entities=(("reviews", "onefile_id"),),
        planned=found.loc[changing.to_numpy(), "onefile_id"].isin(inserts_planned.astype("Int64")),
    )
    left = found[~changing.to_numpy()].assign(
        reason=ev.UNEXPLAINED,
        detail="not in PICSWeb, and the rules leave it for no reason on the list",
    )
    return pd.concat([explained, left], ignore_index=True)


def _missing_in_onefile(
    linked, known, dropped, trainees, learners, staged_learners, evidence
) -> pd.DataFrame:
    """PICSWeb reviews with an ID that this run's OneFile data lacks. Only those PICSWeb
    schedules inside the window are compared (a run sees OneFile's window only)."""
    gone = linked[
        ~linked[LINK].astype("Int64").isin(known) & ~linked[LINK].isin(dropped["review_id"])
    ]
    if evidence.window is not None:
        start, end = evidence.window
        gone = gone[_in_window(gone, evidence.window)]
    learner = gone["trainee_id"].map(trainees.set_index("trainee_id")["onefile_learner_id"])
    found = ev.frame(
        {
            "entity": ENTITY,
            "learner_id": learner,
            "trainee_id": gone["trainee_id"],
            "onefile_id": gone[LINK],
            "picsweb_key": gone["review_id"],
            "field": LINK,
            "picsweb_value": gone[LINK].astype("Int64").astype("string"),
        },
        gone.index,
    )
    if not evidence.download:
        return _switched_off(found, evidence.download_off)
    seen = pd.concat([learners["learner_id"], staged_learners]).astype("Int64")
    # Learners not extracted (a backfill run): every learner counts as synced.
    synced = found["learner_id"].isin(seen).to_numpy() | learners.empty
    if evidence.window is not None:
        reason, detail = (
            ev.OUTSIDE_WINDOW,
            (
                "not in OneFile's review window of this run (rescheduled outside it, or deleted "
                "in OneFile): a run whose window covers it syncs it"
            ),
        )
    else:
        reason, detail = ev.UNEXPLAINED, "OneFile has no review with this ID"
    out = found.assign(reason=reason, detail=detail)
    out.loc[~synced, "reason"] = ev.NOT_LINKED
    out.loc[~synced, "detail"] = "the learner is in no organisation this run synced"
    why = ev.rejected(out, (("reviews", "onefile_id"),), evidence)
    out["reason"] = out["reason"].mask(why.notna(), ev.REJECT)
    out["detail"] = out["detail"].mask(why.notna(), why)
    return out


def _not_uploaded(unlinked: pd.DataFrame, trainees: pd.DataFrame, evidence) -> pd.DataFrame:
    """PICSWeb reviews with no OneFile ID: rule 5's candidates, and those it leaves."""
    joined = unlinked.merge(
        trainees[["trainee_id", "onefile_learner_id"]], on="trainee_id", how="left"
    )
    why = r.review_upload_eligibility(joined)
    created = joined["review_id"].isin(evidence.created_reviews["review_id"].astype("Int64"))
    found = ev.frame(
        {
            "entity": ENTITY,
            "learner_id": joined["onefile_learner_id"],
            "trainee_id": joined["trainee_id"],
            "picsweb_key": joined["review_id"],
            "field": LINK,
            "picsweb_value": ev.text(joined["scheduled_date"]),
        },
        joined.index,
    )
    eligible = (why.isna() & ~created).to_numpy()
    candidates = found[eligible]
    if not evidence.upload:
        uploads = _switched_off(candidates, evidence.upload_off)
    else:
        uploads = ev.explain_wanted(
            candidates,
            r.TABLE,
            evidence,
            pending=candidates["picsweb_key"].isin(evidence.pending_reviews.astype("Int64")),
            planned=candidates["picsweb_key"].isin(evidence.planned_uploads.astype("Int64")),
        )
    left = why.notna().to_numpy(dtype=bool, copy=True)
    if evidence.window is not None:
        left &= _in_window(joined, evidence.window)
    kept = found[left].assign(
        reason=why[left]
        .map(lambda w: ev.NOT_LINKED if w == "trainee_unlinked" else ev.RULE_KEEPS_PICSWEB)
        .to_numpy(),
        detail=why[left]
        .map(lambda w: _NOT_UPLOADED.get(w, "the trainee is not linked to a OneFile learner"))
        .to_numpy(),
    )
    return pd.concat([uploads, kept], ignore_index=True)


def _in_window(reviews: pd.DataFrame, window) -> np.ndarray:
    """Whether each PICSWeb review's schedule (UK date and start time, rule 5's 09:00 when
    it has none) falls in the run's review window ``[from, to)`` (naive UTC)."""
    if reviews.empty:
        return np.zeros(0, dtype=bool)
    times = (
        reviews["start_time"].astype(object).where(reviews["start_time"].notna(), r.DEFAULT_START)
    )
    when = uk_local_to_utc(reviews["scheduled_date"], times)
    start, end = window
    return ((when >= start) & (when < end)).fillna(False).to_numpy(dtype=bool)


def _switched_off(found: pd.DataFrame, why: str) -> pd.DataFrame:
    return found.assign(reason=ev.SWITCHED_OFF, detail=why)
