"""The generated dataset: deterministic, shaped exactly as the contracts, holding every case.

The cases are recognised here from the rows themselves (not from labels the generator
keeps), so a generator change that loses a case fails these tests.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from onefile_simulator import generate_dataset
from onefile_simulator.generator import default_today

UK = ZoneInfo("Europe/London")
BST_STARTS = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)

PICSWEB_COLUMNS = {  # from shared/contract/picsweb-schema.md
    "officer": {"officer_id", "first_name", "surname", "email", "onefile_id"},
    "trainee": {
        "trainee_id",
        "first_name",
        "surname",
        "email",
        "uln",
        "main_officer_id",
        "onefile_learner_id",
    },
    "trainee_qualification": {
        "tq_id",
        "trainee_id",
        "qualification_code",
        "title",
        "onefile_learning_aim_id",
        "total_elements",
        "elements_done",
        "registration_number",
        "registration_date",
        "certificate_applied_date",
        "certificate_received_date",
    },
    "trainee_qualification_unit": {"tqu_id", "tq_id", "unit_code"},
    "review": {
        "review_id",
        "trainee_id",
        "review_type",
        "scheduled_date",
        "start_time",
        "end_time",
        "officer_id",
        "attended",
        "actual_date",
        "trainee_signed_date",
        "onefile_system_id",
    },
    "onefile_settings": {
        "settings_id",
        "integration_enabled",
        "environment",
        "organisation_ids",
        "upload_review_data",
        "download_review_data",
        "visit_type",
        "last_synchronised",
    },
}
ONEFILE_FIELDS = {  # from shared/contract/onefile-api.md
    "organisations": {"ID", "Name"},
    "users": {
        "ID",
        "FirstName",
        "LastName",
        "Email",
        "MISID",
        "Role",
        "OrganisationID",
        "DefaultAssessorID",
        "ULN",
        "StartOn",
        "PlannedEndDate",
        "Progress",
        "LastModified",
    },
    "learning_aims": {
        "ID",
        "UserID",
        "StandardID",
        "Code",
        "Title",
        "Progress",
        "RegistrationNumber",
        "RegistrationDate",
        "CertificateAppliedDate",
        "CertificateReceivedDate",
        "TotalElements",
        "ElementsDone",
    },
    "reviews": {
        "ID",
        "LearnerID",
        "AssessorID",
        "EmployerID",
        "ScheduledFor",
        "Status",
        "CreatedOn",
        "StartedOn",
        "AssessorSignedOn",
        "LearnerSignedOn",
        "EmployerSignedOn",
        "EndTime",
        "VisitID",
    },
}


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _uk_date(text: str) -> dt.date:
    return _instant(text).astimezone(UK).date()


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _pair_case(onefile: object, picsweb: object, same: bool) -> str:
    if _blank(onefile) and _blank(picsweb):
        return "both_blank"
    if _blank(picsweb):
        return "only_onefile"
    if _blank(onefile):
        return "only_picsweb"
    return "both_equal" if same else "both_differ"


def classify(dataset) -> Counter:
    """Count every case of the mix the sync rules must meet, from the rows alone."""
    of, pw = dataset.onefile, dataset.picsweb
    seen: Counter = Counter()
    trainees = {t["trainee_id"]: t for t in pw["trainee"]}
    trainee_of = {t["onefile_learner_id"]: t for t in pw["trainee"] if t["onefile_learner_id"]}
    officers = {o["officer_id"]: o for o in pw["officer"]}
    learners = [u for u in of.users if u["Role"] == 1]
    seen["learner_linked"] = sum(u["ID"] in trainee_of for u in learners)
    seen["learner_without_trainee"] = sum(u["ID"] not in trainee_of for u in learners)
    seen["trainee_not_in_onefile"] = sum(t["onefile_learner_id"] is None for t in pw["trainee"])

    # Officers against assessors.
    for assessor in (u for u in of.users if u["Role"] in (4, 5, 10)):
        by_id = [o for o in pw["officer"] if o["onefile_id"] == assessor["ID"]]
        by_email = [
            o
            for o in pw["officer"]
            if o["onefile_id"] is None
            and o["email"]
            and o["email"].lower() == assessor["Email"].lower()
        ]
        if by_id:
            seen["officer_by_onefile_id"] += 1
        elif len(by_email) == 1:
            seen["officer_by_email_only"] += 1
            seen["officer_email_case_differs"] += by_email[0]["email"] != assessor["Email"]
        elif len(by_email) > 1:
            seen["officers_sharing_email"] += 1
        else:
            seen["assessor_without_officer"] += 1

    # Learning aims against qualifications.
    tqs_of: dict[int, list[dict]] = {}
    for tq in pw["trainee_qualification"]:
        tqs_of.setdefault(tq["trainee_id"], []).append(tq)
    units = Counter(u["tq_id"] for u in pw["trainee_qualification_unit"])
    for aim in of.learning_aims:
        trainee = trainee_of.get(aim["UserID"])
        if trainee is None:
            continue
        tqs = tqs_of.get(trainee["trainee_id"], [])
        linked = [tq for tq in tqs if tq["onefile_learning_aim_id"] == aim["ID"]]
        by_code = [
            tq
            for tq in tqs
            if tq["onefile_learning_aim_id"] is None and tq["qualification_code"] == aim["Code"]
        ]
        if linked:
            seen["aim_linked"] += 1
            match = linked[0]
        elif len(by_code) == 1:
            seen["aim_code_matches_one"] += 1
            match = by_code[0]
        else:
            seen["aim_code_matches_two" if by_code else "aim_code_matches_none"] += 1
            continue
        seen[
            "elements_differ"
            if match["total_elements"] != aim["TotalElements"]
            or match["elements_done"] != aim["ElementsDone"]
            else "elements_equal"
        ] += 1
        seen["qualification_with_units"] += units[match["tq_id"]] > 0
        number, pw_number = aim["RegistrationNumber"], match["registration_number"]
        seen["registration_number_" + _pair_case(number, pw_number, number == pw_number)] += 1
        if pw_number is not None and _blank(pw_number):
            seen["picsweb_blank_" + ("empty" if pw_number == "" else "spaces")] += 1
        for onefile_field, picsweb_field in (
            ("RegistrationDate", "registration_date"),
            ("CertificateAppliedDate", "certificate_applied_date"),
            ("CertificateReceivedDate", "certificate_received_date"),
        ):
            text, day = aim[onefile_field], match[picsweb_field]
            same = text is not None and day == _uk_date(text)
            seen[f"{picsweb_field}_{_pair_case(text, day, same)}"] += 1
            if text is not None and _uk_date(text) != _instant(text).date():
                seen["date_on_next_uk_day"] += 1
                seen["date_on_next_uk_day_" + ("equal" if same else "differs")] += 1
            if text is not None and "." not in text:
                seen["date_without_millis"] += 1

    # OneFile reviews.
    linked_reviews = {r["onefile_system_id"] for r in pw["review"] if r["onefile_system_id"]}
    for review in of.reviews:
        if review["LearnerID"] in trainee_of:
            seen["review_linked" if review["ID"] in linked_reviews else "review_to_download"] += 1
        seen["review_started" if review["StartedOn"] else "review_not_started"] += 1
        seen["review_signed" if review["LearnerSignedOn"] else "review_unsigned"] += 1
        if _uk_date(review["ScheduledFor"]) != _instant(review["ScheduledFor"]).date():
            seen["review_on_next_uk_day"] += 1
        seen[
            "review_before_bst"
            if _instant(review["ScheduledFor"]) < BST_STARTS
            else "review_after_bst"
        ] += 1

    # PICSWeb reviews not in OneFile: eligible for upload, or not for exactly one reason.
    for review in (r for r in pw["review"] if r["onefile_system_id"] is None):
        trainee = trainees[review["trainee_id"]]
        candidates = (review["officer_id"], trainee["main_officer_id"])
        reasons = [
            reason
            for reason, applies in (
                ("not_normal", review["review_type"] != "Normal"),
                ("attended_set", review["attended"] is not None),
                ("actual_date_set", review["actual_date"] is not None),
                ("trainee_unlinked", trainee["onefile_learner_id"] is None),
                (
                    "no_linked_officer",
                    not any(
                        c is not None and officers[c]["onefile_id"] is not None for c in candidates
                    ),
                ),
            )
            if applies
        ]
        if not reasons:
            seen["upload_eligible"] += 1
        elif len(reasons) == 1:
            seen[f"upload_ineligible_{reasons[0]}"] += 1
    return seen


@pytest.fixture(scope="module")
def dataset():
    return generate_dataset(seed=7)


@pytest.fixture(scope="module")
def cases(dataset) -> Counter:
    return classify(dataset)


MIX_CASES = [
    "learner_linked",
    "learner_without_trainee",
    "trainee_not_in_onefile",
    "officer_by_onefile_id",
    "officer_by_email_only",
    "officer_email_case_differs",
    "officers_sharing_email",
    "assessor_without_officer",
    "aim_linked",
    "aim_code_matches_one",
    "aim_code_matches_two",
    "aim_code_matches_none",
    "elements_equal",
    "elements_differ",
    "qualification_with_units",
    *(
        f"registration_number_{c}"
        for c in ("both_blank", "only_onefile", "only_picsweb", "both_equal", "both_differ")
    ),
    "picsweb_blank_empty",
    "picsweb_blank_spaces",
    *(
        f"{field}_{c}"
        for field in ("registration_date", "certificate_applied_date", "certificate_received_date")
        for c in ("both_blank", "only_onefile", "only_picsweb", "both_equal", "both_differ")
    ),
    "date_on_next_uk_day_equal",
    "date_on_next_uk_day_differs",
    "date_without_millis",
    "review_linked",
    "review_to_download",
    "review_started",
    "review_not_started",
    "review_signed",
    "review_unsigned",
    "review_before_bst",
    "review_after_bst",
    "review_on_next_uk_day",
    "upload_eligible",
    "upload_ineligible_not_normal",
    "upload_ineligible_attended_set",
    "upload_ineligible_actual_date_set",
    "upload_ineligible_trainee_unlinked",
    "upload_ineligible_no_linked_officer",
]


@pytest.mark.parametrize("case", MIX_CASES, ids=MIX_CASES)
def test_default_dataset_holds_every_case(cases, case):
    assert cases[case] > 0, f"no {case} in the default dataset"


def test_most_learners_and_aims_are_linked(cases):
    assert cases["learner_linked"] > 4 * cases["learner_without_trainee"]
    assert cases["aim_linked"] > cases["aim_code_matches_two"] + cases["aim_code_matches_none"]


def test_same_seed_gives_identical_data_and_another_seed_differs():
    assert generate_dataset(seed=11) == generate_dataset(seed=11)
    assert generate_dataset(seed=11) != generate_dataset(seed=12)


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_cases_survive_other_seeds(seed):
    seen = classify(generate_dataset(seed=seed))
    assert [case for case in MIX_CASES if not seen[case]] == []


def test_onefile_rows_use_the_contract_field_names(dataset):
    for entity, fields in ONEFILE_FIELDS.items():
        assert {frozenset(row) for row in getattr(dataset.onefile, entity)} == {frozenset(fields)}


def test_picsweb_rows_have_exactly_the_schema_columns_and_types(dataset):
    assert set(dataset.picsweb) == set(PICSWEB_COLUMNS)
    for table, columns in PICSWEB_COLUMNS.items():
        assert {frozenset(row) for row in dataset.picsweb[table]} == {frozenset(columns)}
    for review in dataset.picsweb["review"]:
        assert type(review["scheduled_date"]) is dt.date
        assert review["start_time"] is None or isinstance(review["start_time"], dt.time)
    for tq in dataset.picsweb["trainee_qualification"]:
        assert all(
            tq[c] is None or type(tq[c]) is dt.date
            for c in ("registration_date", "certificate_applied_date", "certificate_received_date")
        )


def test_keys_are_unique_and_foreign_keys_resolve(dataset):
    pw = dataset.picsweb
    for table, key in (
        ("officer", "officer_id"),
        ("trainee", "trainee_id"),
        ("trainee_qualification", "tq_id"),
        ("review", "review_id"),
        ("trainee_qualification_unit", "tqu_id"),
    ):
        keys = [row[key] for row in pw[table]]
        assert len(keys) == len(set(keys)) and min(keys) >= 1
    officer_ids = {o["officer_id"] for o in pw["officer"]} | {None}
    trainee_ids = {t["trainee_id"] for t in pw["trainee"]}
    assert {t["main_officer_id"] for t in pw["trainee"]} <= officer_ids
    assert {r["officer_id"] for r in pw["review"]} <= officer_ids
    assert {r["trainee_id"] for r in pw["review"]} <= trainee_ids
    assert {q["tq_id"] for q in pw["trainee_qualification_unit"]} <= {
        q["tq_id"] for q in pw["trainee_qualification"]
    }
    system_ids = [r["onefile_system_id"] for r in pw["review"] if r["onefile_system_id"]]
    assert len(system_ids) == len(set(system_ids))
    assert set(system_ids) <= {r["ID"] for r in dataset.onefile.reviews}
    for rows, lowest in (
        (dataset.onefile.users, 100000),
        (dataset.onefile.learning_aims, 500000),
        (dataset.onefile.reviews, 900000),
    ):
        ids = [row["ID"] for row in rows]
        assert len(ids) == len(set(ids)) and min(ids) > lowest


def test_settings_row(dataset):
    assert dataset.picsweb["onefile_settings"] == [
        {
            "settings_id": 1,
            "integration_enabled": True,
            "environment": "Practice",
            "organisation_ids": "5740,5741",
            "upload_review_data": True,
            "download_review_data": True,
            "visit_type": "Face to Face",
            "last_synchronised": None,
        }
    ]
    assert [o["ID"] for o in dataset.onefile.organisations] == [5740, 5741]


def test_reviews_are_scheduled_within_30_days_of_a_fixed_today(dataset):
    assert dataset.today == generate_dataset(seed=7).today  # not the real clock
    days = [_uk_date(r["ScheduledFor"]) for r in dataset.onefile.reviews]
    days += [
        r["scheduled_date"] for r in dataset.picsweb["review"] if r["onefile_system_id"] is None
    ]
    assert all(abs((day - dataset.today).days) <= 31 for day in days)


def test_given_today_moves_the_schedule():
    later = generate_dataset(today=dt.date(2026, 9, 1))
    assert all(
        _uk_date(r["ScheduledFor"]).year == 2026
        and _uk_date(r["ScheduledFor"]).month in (7, 8, 9, 10)
        for r in later.onefile.reviews
    )


def test_same_seed_and_today_give_identical_data_and_another_today_differs():
    day = dt.date(2026, 11, 29)
    assert generate_dataset(seed=7, today=day) == generate_dataset(seed=7, today=day)
    assert generate_dataset(seed=7, today=day) != generate_dataset(
        seed=7, today=day + dt.timedelta(days=1)
    )
    # Without `today`, the seed's fixed day: never the real clock.
    assert generate_dataset(seed=7) == generate_dataset(seed=7, today=default_today(7))


# The cases a review window can hold only near the UK clock change: reviews on both sides of
# it (counted against March 2026's change by `classify`), and reviews just after midnight in
# summer time, whose instant falls on the previous UTC day (none in a window of winter days).
CLOCK_CHANGE_CASES = {"review_before_bst", "review_after_bst", "review_on_next_uk_day"}


def _window(today: dt.date) -> list[dt.date]:
    return [today + dt.timedelta(days=offset) for offset in range(-30, 31)]


def _clock_changes(days: list[dt.date]) -> list[dt.datetime]:
    """The UK clock changes between the first and the last of `days` (always 01:00 UTC)."""
    offset = [dt.datetime.combine(day, dt.time(12), tzinfo=UK).utcoffset() for day in days]
    return [
        dt.datetime.combine(days[i], dt.time(1), tzinfo=dt.UTC)
        for i in range(1, len(days))
        if offset[i] != offset[i - 1]
    ]


@pytest.mark.parametrize(
    "today",
    [
        dt.date(2026, 1, 15),  # winter: no summer-time day within 30 days
        dt.date(2026, 3, 17),  # the fixed default: the spring change inside the window
        dt.date(2026, 7, 15),  # summer: no change within 30 days
        dt.date(2026, 10, 20),  # the autumn change inside the window
        dt.date(2026, 11, 29),
        dt.date(2027, 3, 28),  # the spring change on the day itself
    ],
)
def test_any_today_holds_every_case_its_window_can(today):
    data = generate_dataset(seed=7, learners=25, today=today)
    seen = classify(data)
    assert [c for c in MIX_CASES if c not in CLOCK_CHANGE_CASES and not seen[c]] == []
    window = _window(today)
    summer = any(dt.datetime.combine(day, dt.time(12), tzinfo=UK).dst() for day in window)
    assert bool(seen["review_on_next_uk_day"]) == summer
    scheduled = [_instant(r["ScheduledFor"]) for r in data.onefile.reviews]
    for change in _clock_changes(window):
        assert any(at < change for at in scheduled) and any(at >= change for at in scheduled)
    days = [_uk_date(r["ScheduledFor"]) for r in data.onefile.reviews]
    days += [r["scheduled_date"] for r in data.picsweb["review"] if r["onefile_system_id"] is None]
    assert all(abs((day - today).days) <= 31 for day in days)


def test_sizes_follow_the_parameters():
    data = generate_dataset(
        organisations=3, learners=10, aims_per_learner=1, reviews_per_learner=2, assessors=2
    )
    roles = Counter(u["Role"] for u in data.onefile.users)
    assert roles[1] == 30
    assert roles[4] + roles[5] + roles[10] == 6
    assert roles[40] >= 3
    assert len(data.onefile.learning_aims) == 30
    assert len(data.onefile.reviews) == 60


def test_large_dataset_has_the_asked_size_and_unique_ids():
    data = generate_dataset(organisations=50, learners=400)
    assert sum(u["Role"] == 1 for u in data.onefile.users) == 20000
    assert len(data.onefile.organisations) == 50
    for rows in (data.onefile.users, data.onefile.learning_aims, data.onefile.reviews):
        ids = [row["ID"] for row in rows]
        assert len(ids) == len(set(ids))
