"""What a first run would touch, counted by the rules' own functions over what the
preflight read (PICSWeb's tables as the merges read them, and OneFile's first pages).

Nothing here decides anything a rule decides: learners and qualifications are counted by
the columns the matching uses, the sample of OneFile aims goes through
``qualifications.match_learning_aims`` and PICSWeb's reviews through
``reviews.review_upload_eligibility`` / ``assessor_for_upload``. OneFile's counts come from
the first page of each search only, so they are a sample, and say so.
"""

from __future__ import annotations

import pandas as pd

from picsweb_sync.preflight.findings import Check, Level
from picsweb_sync.preflight.onefile_pages import Sample
from picsweb_sync.preflight.picsweb import PicswebFacts
from picsweb_sync.rules import qualifications
from picsweb_sync.rules import reviews as review_rules


def first_run_checks(facts: PicswebFacts, sample: Sample | None) -> list[Check]:
    frames = facts.frames
    checks: list[Check] = []
    if "trainee" in frames:
        checks.append(_learners(facts, sample))
    if {"trainee", "trainee_qualification"} <= set(frames):
        checks.append(_qualifications(facts, sample))
    counted = upload_counts(frames)
    if counted is not None:
        checks.append(_uploads(facts, counted))
    return checks


def upload_counts(frames: dict[str, pd.DataFrame]) -> dict[str, int] | None:
    """Rule 5 over PICSWeb as it is: how many reviews are eligible for upload, and how many
    of those have no officer with a OneFile ID (rejects every run until fixed), by the
    rule's own functions."""
    if not {"review", "trainee", "officer"} <= set(frames):
        return None
    candidates = frames["review"].merge(
        frames["trainee"][["trainee_id", "onefile_learner_id", "main_officer_id"]],
        on="trainee_id",
        how="left",
    )
    not_eligible = review_rules.review_upload_eligibility(candidates)
    eligible = candidates[not_eligible.isna()]
    assessors = review_rules.assessor_for_upload(eligible, frames["officer"])
    return {
        "reviews_eligible": len(eligible),
        "reviews_without_onefile_officer": int(assessors.isna().sum()),
    }


def _learners(facts: PicswebFacts, sample: Sample | None) -> Check:
    trainees = facts.frames["trainee"]
    linked_ids = trainees["onefile_learner_id"].dropna()
    finding = (
        f"{len(linked_ids)} of {len(trainees)} PICSWeb trainees are linked to a OneFile "
        "learner (onefile_learner_id)"
    )
    details = {"trainees": len(trainees), "linked": len(linked_ids)}
    if sample is not None and sample.rows.get("learners"):
        learners = sample.parsed("learners").frame
        found = learners["learner_id"].isin(linked_ids)
        finding += (
            f"; of the {len(learners)} OneFile learners on the first pages, "
            f"{int(found.sum())} have a linked trainee"
        )
        details |= {"sampled_learners": len(learners), "sampled_linked": int(found.sum())}
    if linked_ids.empty:
        return Check(
            "first_run.learners",
            Level.WARNING,
            "learners a first run would sync",
            finding + ": a run would change nothing",
            "link trainees first (PICSWeb's learner upload to OneFile sets "
            "onefile_learner_id); the sync never creates learners",
            details,
        )
    return Check(
        "first_run.learners", Level.OK, "learners a first run would sync", finding, details=details
    )


def _qualifications(facts: PicswebFacts, sample: Sample | None) -> Check:
    trainees = facts.frames["trainee"]
    quals = facts.frames["trainee_qualification"]
    by_id = int(quals["onefile_learning_aim_id"].notna().sum())
    linked_trainees = trainees.loc[trainees["onefile_learner_id"].notna(), "trainee_id"]
    linkable = quals["onefile_learning_aim_id"].isna() & quals["trainee_id"].isin(linked_trainees)
    finding = (
        f"{by_id} qualifications linked to a OneFile aim; {int(linkable.sum())} more of "
        "linked trainees could be linked by code (one OneFile aim of the learner with the "
        "same code)"
    )
    details = {"linked": by_id, "linkable_by_code": int(linkable.sum())}
    if sample is not None and sample.rows.get("learning_aims"):
        aims, _, _ = qualifications.distinct_copies(
            sample.parsed("learning_aims").frame, "learning_aim_id"
        )
        _, _, counts = qualifications.match_learning_aims(aims, trainees, quals)
        finding += (
            f"; of the {len(aims)} OneFile aims on the first pages: "
            f"{counts['aims_linked_by_id']} linked by ID, {counts['aims_linked_by_code']} "
            f"would link by code, {counts['aims_ambiguous_code']} ambiguous codes, "
            f"{counts['aims_unmatched']} no matching qualification, "
            f"{counts['aims_learner_unlinked']} of unlinked learners"
        )
        details |= {f"sample_{k}": v for k, v in counts.items()}
    return Check(
        "first_run.qualifications",
        Level.OK,
        "qualifications a first run would sync",
        finding,
        details=details,
    )


def _uploads(facts: PicswebFacts, counted: dict[str, int]) -> Check:
    eligible, orphans = counted["reviews_eligible"], counted["reviews_without_onefile_officer"]
    settings = facts.settings
    upload_on = settings is not None and settings.upload_review_data
    finding = (
        f"{eligible} PICSWeb reviews are eligible for upload (Normal, linked trainee, no "
        f"OneFile ID, attendance blank, no actual date); {orphans} of them have no officer "
        "with a OneFile ID"
    )
    if not upload_on:
        finding += "; Upload Review Data is off, so none would be uploaded"
    if upload_on and orphans:
        return Check(
            "first_run.reviews_upload",
            Level.WARNING,
            "reviews a first run would upload",
            finding,
            "set the OneFile ID (Other System ID) of those reviews' officers, or of their "
            "trainees' main officers: until then each run sets them aside as rejects",
            counted,
        )
    return Check(
        "first_run.reviews_upload",
        Level.OK,
        "reviews a first run would upload",
        finding,
        details=counted,
    )
