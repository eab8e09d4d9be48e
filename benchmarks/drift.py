"""The drift report's benchmark (issue 22): ``rules.drift.drift_report`` timed beside the
merges it re-runs, on the same generated frames as the merge benchmark.

The report runs the rules again (rules 1-4 and 6, rule 5's eligibility) over both systems'
frames and classifies every difference, so its natural yardstick is the merges' own time on
the same data: ``merge_qualifications`` + ``merge_reviews`` (the baseline row). The frames
are the generator's OneFile rows parsed per organisation (learners, assessors, learning
aims, every review) and its PICSWeb tables as the stages read them, before any load: every
difference the merges would change is still there, the report's worst case. The evidence is
the merges' change sets as planned and nothing written, so each such difference goes
through the whole chain of reasons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import pandas as pd

from benchmarks.run import LEARNER_ROLE, table_frame
from benchmarks.timing import Result, compared, timed
from onefile_simulator import Dataset
from picsweb_sync.onefile.fields import parse_assessors, parse_reviews
from picsweb_sync.onefile.names import ASSESSOR_ROLES
from picsweb_sync.rules import drift
from picsweb_sync.rules.qualifications import merge_qualifications
from picsweb_sync.rules.reviews import merge_reviews
from picsweb_sync.storage import picsweb_tables as pw

BASELINE = "merge_qualifications + merge_reviews"
WINDOW = dt.timedelta(days=31)  # the run's day widened by 30 days each side


@dataclass(frozen=True)
class DriftInputs:
    onefile: dict[str, pd.DataFrame]
    picsweb: dict[str, pd.DataFrame]
    evidence: drift.RunEvidence


def drift_inputs(data: Dataset, learners: pd.DataFrame, aims: pd.DataFrame) -> DriftInputs:
    """The report's frames for ``data`` (``learners``, ``aims``: the merge benchmark's
    parsed frames) and the evidence of a run that planned the merges' changes."""
    org_of = {u["ID"]: u["OrganisationID"] for u in data.onefile.users if u["Role"] == LEARNER_ROLE}
    reviews: dict[int, list[dict]] = {}
    for review in data.onefile.reviews:
        reviews.setdefault(org_of.get(review["LearnerID"], 0), []).append(review)
    assessors: dict[int, list[dict]] = {}
    for user in data.onefile.users:
        if user["Role"] in ASSESSOR_ROLES:
            assessors.setdefault(user["OrganisationID"], []).append(user)
    onefile = {
        "learners": learners,
        "learning_aims": aims,
        "reviews": pd.concat(
            [parse_reviews(rows, org).frame for org, rows in reviews.items()], ignore_index=True
        ),
        "assessors": pd.concat(
            [parse_assessors(rows, org).frame for org, rows in assessors.items()],
            ignore_index=True,
        ),
    }
    tables = {
        "trainees": "trainee",
        "qualifications": "trainee_qualification",
        "units": "trainee_qualification_unit",
        "officers": "officer",
        "picsweb_reviews": "review",
    }
    picsweb = {
        name: table_frame(pw.metadata.tables[table], data.picsweb[table])
        for name, table in tables.items()
    }
    quals, reviews_merged = merges(onefile, picsweb)
    inserts = reviews_merged.picsweb_review_inserts
    planned = pd.concat(
        [
            quals.picsweb_updates[["table", "key", "field"]],
            reviews_merged.picsweb_updates[["table", "key", "field"]],
            pd.DataFrame(
                {
                    "table": "review",
                    "key": inserts["onefile_system_id"],
                    "field": "onefile_system_id",
                }
            ),
        ],
        ignore_index=True,
    ).astype({"key": "Int64", "table": "string", "field": "string"})
    today = dt.datetime.combine(data.today, dt.time(2))
    evidence = drift.RunEvidence(
        planned=planned,
        planned_onefile=quals.onefile_updates[["entity_id", "field"]],
        window=(today - WINDOW, today + WINDOW),
    )
    return DriftInputs(onefile, picsweb, evidence)


def merges(onefile: dict[str, pd.DataFrame], picsweb: dict[str, pd.DataFrame]):
    """Rules 1-4 and rule 6 as the merge stages call them."""
    quals = merge_qualifications(
        onefile["learners"],
        onefile["learning_aims"],
        picsweb["trainees"],
        picsweb["qualifications"],
        picsweb["units"],
    )
    reviews = picsweb["picsweb_reviews"]
    linked = reviews[reviews["onefile_system_id"].notna()]
    merged = merge_reviews(
        onefile["reviews"], picsweb["trainees"], picsweb["officers"], onefile["assessors"], linked
    )
    return quals, merged


def bench_drift(data: Dataset, size: str, inputs: DriftInputs, args) -> list[Result]:
    """The report beside the two merges, same frames; the note gives drift ÷ merge."""
    report = drift.drift_report(**inputs.onefile, **inputs.picsweb, evidence=inputs.evidence)
    variants = {
        BASELINE: lambda: merges(inputs.onefile, inputs.picsweb),
        "drift_report": lambda: drift.drift_report(
            **inputs.onefile, **inputs.picsweb, evidence=inputs.evidence
        ),
    }
    rows = len(inputs.onefile["learning_aims"]) + len(inputs.onefile["reviews"])
    results = []
    for name, run in variants.items():
        timing, _ = timed(run, args.repeats, args.budget)
        results.append(Result("drift", size, name, rows, **timing))
    merge_s, drift_s = (r.median_s for r in results)
    results[0] = replace(results[0], note="rows: aims + reviews")
    note = f"{len(report)} differences; drift ÷ merge = {drift_s / merge_s:.2f}x"
    results[1] = replace(results[1], note=note)
    return compared(results, BASELINE)
