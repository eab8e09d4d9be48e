"""What rules 5 and 6 must leave behind, computed the slow, obvious way: plain loops over the
generator's rows, written from the contract, sharing no code with the pandas merge.

The decisions the contract leaves open follow ``picsweb_sync.rules.reviews``'s documented
choices: an officer matches an assessor by ``onefile_id`` (exactly one officer), else by
a trimmed, case-insensitive email (exactly one officer); an ``end_time`` not after the
start gives a one-hour visit; a review of a trainee not linked to OneFile is out of rule
5's scope (neither sent nor rejected).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")
ASSESSOR_ROLES = (4, 5, 10)
VISIT_TYPE_IDS = {"Not Specified": 1, "Remote Session": 2, "Face to Face": 3}
NO_OFFICER = "no officer with a OneFile ID"
NO_ORGANISATION = "is in no synced organisation"


def instant(text: str | None) -> datetime | None:
    """A OneFile instant as an aware UTC datetime."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def uk(text: str | None) -> datetime | None:
    """A OneFile instant as UK wall-clock time."""
    moment = instant(text)
    return None if moment is None else moment.astimezone(UK)


def wire(moment: datetime) -> str:
    """The instant form the sync sends: whole seconds, UTC, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def synced_organisations(picsweb: dict) -> set[int]:
    text = picsweb["onefile_settings"][0]["organisation_ids"]
    return {int(part) for part in text.split(",") if part.strip()}


def officer_for_assessor(assessor_id: int | None, users: list[dict], picsweb: dict) -> int | None:
    """The PICSWeb officer of a OneFile assessor of a synced organisation, or None."""
    orgs = synced_organisations(picsweb)
    assessor = next(
        (
            u
            for u in users
            if u["ID"] == assessor_id
            and u["Role"] in ASSESSOR_ROLES
            and u["OrganisationID"] in orgs
        ),
        None,
    )
    if assessor is None:
        return None
    by_id = [o["officer_id"] for o in picsweb["officer"] if o["onefile_id"] == assessor["ID"]]
    if by_id:
        return by_id[0] if len(by_id) == 1 else None
    email = (assessor["Email"] or "").strip().casefold()
    by_email = [
        o["officer_id"]
        for o in picsweb["officer"]
        if email and (o["email"] or "").strip().casefold() == email
    ]
    return by_email[0] if len(by_email) == 1 else None


def downloaded(
    review: dict, current: dict | None, trainee_id: int, users: list[dict], picsweb: dict
) -> dict:
    """Rule 6: the PICSWeb row a OneFile review leaves (``current`` None: a new row)."""
    row = (
        copy.deepcopy(current)
        if current is not None
        else {
            "trainee_id": trainee_id,
            "review_type": "Normal",
            "end_time": None,
            "officer_id": None,
            "trainee_signed_date": None,
            "onefile_system_id": review["ID"],
        }
    )
    started = uk(review["StartedOn"])
    row["attended"] = "Y" if started else "U"
    row["actual_date"] = started.date() if started else None
    officer = officer_for_assessor(review["AssessorID"], users, picsweb)
    if officer is not None:
        row["officer_id"] = officer
    signed = uk(review["LearnerSignedOn"])
    if signed is not None:
        row["trainee_signed_date"] = signed.date()
    scheduled = uk(review["ScheduledFor"])
    row["scheduled_date"] = scheduled.date()
    row["start_time"] = scheduled.time()
    return row


@dataclass(frozen=True)
class Upload:
    """The bodies rule 5 must send for one PICSWeb review (the Review's VisitID aside)."""

    review_id: int
    visit: dict
    review: dict


def _trainees_by_id(picsweb: dict) -> dict[int, dict]:
    return {t["trainee_id"]: t for t in picsweb["trainee"]}


def _uk_to_utc(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=UK).astimezone(UTC)


def plan_uploads(picsweb: dict, users: list[dict]) -> tuple[dict[int, Upload], dict[int, str]]:
    """Rule 5: (review_id -> what to send, review_id -> the reject reason's key phrase)."""
    trainees = _trainees_by_id(picsweb)
    onefile_id = {o["officer_id"]: o["onefile_id"] for o in picsweb["officer"]}
    orgs = synced_organisations(picsweb)
    learner_org = {
        u["ID"]: u["OrganisationID"]
        for u in users
        if u["Role"] == 1 and u["OrganisationID"] in orgs
    }
    visit_type = VISIT_TYPE_IDS[picsweb["onefile_settings"][0]["visit_type"]]
    uploads: dict[int, Upload] = {}
    rejects: dict[int, str] = {}
    for r in picsweb["review"]:
        trainee = trainees[r["trainee_id"]]
        learner = trainee["onefile_learner_id"]
        if (
            (r["review_type"] or "").strip().casefold() != "normal"
            or r["onefile_system_id"] is not None
            or (r["attended"] or "").strip()
            or r["actual_date"] is not None
            or learner is None
        ):
            continue
        assessor = onefile_id.get(r["officer_id"]) or onefile_id.get(trainee["main_officer_id"])
        if assessor is None:
            rejects[r["review_id"]] = NO_OFFICER
            continue
        if learner not in learner_org:
            rejects[r["review_id"]] = NO_ORGANISATION
            continue
        start = _uk_to_utc(r["scheduled_date"], r["start_time"] or time(9, 0))
        end = _uk_to_utc(r["scheduled_date"], r["end_time"]) if r["end_time"] else None
        if end is None or end <= start:
            end = start + timedelta(hours=1)
        uploads[r["review_id"]] = Upload(
            r["review_id"],
            visit={
                "LearnerID": learner,
                "OrganisationID": learner_org[learner],
                "DateFrom": wire(start),
                "DateTo": wire(end),
                "VisitTypeID": visit_type,
                "SMSReminder": False,
                "AssessorID": assessor,
            },
            review={
                "LearnerID": learner,
                "Status": 1,
                "ScheduledFor": wire(start),
                "AssessorID": assessor,
            },
        )
    return uploads, rejects


def reviews_in_window(
    onefile_reviews: Iterable[dict],
    users: list[dict],
    picsweb: dict,
    start: datetime,
    end: datetime,
) -> list[dict]:
    """OneFile reviews a run extracts: a synced organisation's learner, scheduled in
    ``[start, end]`` (both ends inclusive, as the simulator's search filter is)."""
    orgs = synced_organisations(picsweb)
    learner_org = {u["ID"]: u["OrganisationID"] for u in users if u["Role"] == 1}
    return [
        r
        for r in onefile_reviews
        if learner_org.get(r["LearnerID"]) in orgs and start <= instant(r["ScheduledFor"]) <= end
    ]


def expected_reviews(
    picsweb: dict,
    users: list[dict],
    downloads: Iterable[dict],
    created: dict[int, dict],
    download_on: bool = True,
) -> tuple[dict[int, dict], dict[int, dict]]:
    """(review_id -> row of each PICSWeb review that existed, onefile_system_id -> new row).

    ``downloads`` are the OneFile reviews the run extracted; ``created`` maps a PICSWeb
    review_id to the OneFile review uploaded for it. An upload writes its new ID and,
    with download on, what rule 6 would write from the created review.
    """
    rows = {r["review_id"]: copy.deepcopy(r) for r in picsweb["review"]}
    by_system_id = {r["onefile_system_id"]: r["review_id"] for r in picsweb["review"]}
    trainee_of = {
        t["onefile_learner_id"]: t["trainee_id"]
        for t in picsweb["trainee"]
        if t["onefile_learner_id"] is not None
    }
    new: dict[int, dict] = {}
    for review in downloads if download_on else ():
        trainee = trainee_of.get(review["LearnerID"])
        if trainee is None:
            continue
        existing = by_system_id.get(review["ID"])
        if existing is None:
            new[review["ID"]] = downloaded(review, None, trainee, users, picsweb)
        else:
            rows[existing] = downloaded(review, rows[existing], trainee, users, picsweb)
    for review_id, review in created.items():
        rows[review_id]["onefile_system_id"] = review["ID"]
        if download_on:
            rows[review_id] = downloaded(
                review, rows[review_id], rows[review_id]["trainee_id"], users, picsweb
            )
    return rows, new


def unlinked_count(downloads: Iterable[dict], picsweb: dict) -> int:
    """Extracted OneFile reviews whose learner no trainee is linked to."""
    linked = {t["onefile_learner_id"] for t in picsweb["trainee"]}
    return sum(1 for r in downloads if r["LearnerID"] not in linked)
