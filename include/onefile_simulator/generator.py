"""Deterministic OneFile + PICSWeb test data with every case the sync rules must meet.

One seed gives identical output every time (one `random.Random`, no clock, no set
iteration). The mix is built by cycling through named cases, so even the default small
dataset holds each case several times, and a large one (benchmarks) holds them in the
same proportions.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from onefile_simulator.data import OneFileData, format_instant

UK = ZoneInfo("Europe/London")

_FIRST_NAMES = (
    "Amelia",
    "Oliver",
    "Isla",
    "George",
    "Ava",
    "Noah",
    "Mia",
    "Leo",
    "Ruby",
    "Arthur",
    "Grace",
    "Harry",
    "Freya",
    "Jack",
    "Evie",
    "Oscar",
    "Sophie",
    "Theo",
    "Poppy",
    "Alfie",
)
_LAST_NAMES = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Clarke",
)
_STANDARDS = (
    (196, "Hair Professional"),
    (203, "Team Leader"),
    (118, "Adult Care Worker"),
    (301, "Customer Service Practitioner"),
    (412, "Business Administrator"),
    (77, "Early Years Educator"),
    (254, "Data Technician"),
    (139, "Property Maintenance Operative"),
)
_AIM_SUFFIXES = ("AS", "OP", "GW", "EP")
_CENTRE_NAMES = ("North", "South", "East", "West", "Central", "Coastal", "Valley", "City")

# Officer cases per OneFile assessor: linked by onefile_id; only by email (case differs);
# two officers sharing the email (ambiguous); no officer at all. The first assessor of
# each organisation is always linked so every organisation can upload reviews.
_ASSESSOR_CASES = ("email_only", "shared_email", "no_officer", "linked", "linked")
_ASSESSOR_ROLES = (5, 4, 10)
# How a OneFile learning aim relates to the trainee's qualifications.
_AIM_CASES = (
    "linked",
    "linked",
    "code_match",
    "linked",
    "ambiguous",
    "linked",
    "no_match",
    "linked",
)
_ELEMENT_CASES = ("equal", "differ", "picsweb_null", "done_differs")
_TEXT_CASES = (
    "both_blank",
    "only_onefile",
    "only_picsweb",
    "both_equal",
    "both_differ",
    "picsweb_empty",
    "picsweb_spaces",
    "onefile_empty",
    "blank_mixed",
)
_DATE_CASES = (
    "both_blank",
    "only_onefile",
    "only_picsweb",
    "both_equal",
    "both_differ",
    "bst_late_same_uk_day",
    "bst_late_utc_day_in_picsweb",
    "gmt_late",
    "no_millis",
)
_DATE_FIELDS = (
    ("RegistrationDate", "registration_date"),
    ("CertificateAppliedDate", "certificate_applied_date"),
    ("CertificateReceivedDate", "certificate_received_date"),
)
# PICSWeb-only reviews of linked trainees: eligible for upload, or not for one reason.
_UPLOAD_CASES = (
    "eligible",
    "not_normal",
    "eligible",
    "attended_set",
    "eligible",
    "actual_date_set",
)
_UK_TIMES = (dt.time(9, 0), dt.time(10, 30), dt.time(13, 0), dt.time(14, 30), dt.time(16, 0))


@dataclass
class Dataset:
    """A OneFile customer's data and the PICSWeb tables that go with it."""

    onefile: OneFileData
    picsweb: dict[str, list[dict]]
    today: dt.date


def default_today(seed: int) -> dt.date:
    """A fixed 'today' from the seed, 17-23 March 2026, so ±30 days spans the BST change."""
    return dt.date(2026, 3, 17) + dt.timedelta(days=seed % 7)


def generate_dataset(
    seed: int = 7,
    organisations: int = 2,
    learners: int = 20,
    aims_per_learner: int = 2,
    reviews_per_learner: int = 3,
    assessors: int = 4,
    today: dt.date | None = None,
) -> Dataset:
    """Build a dataset; `learners` and `assessors` are per organisation."""
    builder = _Builder(random.Random(seed), today or default_today(seed))
    for org_index in range(organisations):
        builder.organisation(org_index, learners, aims_per_learner, reviews_per_learner, assessors)
    return builder.dataset()


def _uk_instant(day: dt.date, at: dt.time) -> dt.datetime:
    """The UTC instant of a UK wall-clock date and time."""
    return dt.datetime.combine(day, at, tzinfo=UK).astimezone(dt.UTC)


def _utc(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=dt.UTC)


class _Builder:
    """Accumulates rows; one method per kind of thing generated."""

    def __init__(self, rng: random.Random, today: dt.date) -> None:
        self.rng = rng
        self.today = today
        self.of = OneFileData()
        self.pw: dict[str, list[dict]] = {
            name: []
            for name in (
                "officer",
                "trainee",
                "trainee_qualification",
                "trainee_qualification_unit",
                "review",
                "onefile_settings",
            )
        }
        self._user_ids = itertools.count(100001)
        self._aim_ids = itertools.count(500001)
        self._review_ids = itertools.count(900001)
        self._visit_ids = itertools.count(700001)
        self._keys = {name: itertools.count(1) for name in self.pw}
        self._assessor_counter = itertools.count()
        self._aim_counter = itertools.count()
        self._review_counter = itertools.count()
        self._upload_counter = itertools.count()
        window = (today + dt.timedelta(days=offset) for offset in range(-30, 31))
        self._summer_days = [
            day for day in window if _uk_instant(day, dt.time(12)).astimezone(UK).dst()
        ]

    # ----- helpers ---------------------------------------------------------------------
    def _key(self, table: str) -> int:
        return next(self._keys[table])

    def _name(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)

    def _recent_instant(self, days: int) -> str:
        """A OneFile instant within `days` before today; one in five without milliseconds."""
        moment = _utc(self.today, 0) - dt.timedelta(
            seconds=self.rng.randrange(days * 86400), milliseconds=self.rng.randrange(1000)
        )
        return format_instant(moment, millis=self.rng.random() >= 0.2)

    def _add_officer(self, first: str, last: str, email: str | None, onefile_id: int | None) -> int:
        officer_id = self._key("officer")
        self.pw["officer"].append(
            {
                "officer_id": officer_id,
                "first_name": first,
                "surname": last,
                "email": email,
                "onefile_id": onefile_id,
            }
        )
        return officer_id

    # ----- organisation ----------------------------------------------------------------
    def organisation(
        self, org_index: int, learners: int, aims: int, reviews: int, assessors: int
    ) -> None:
        org_id = 5740 + org_index
        name = _CENTRE_NAMES[org_index % len(_CENTRE_NAMES)]
        self.of.organisations.append(
            {"ID": org_id, "Name": f"{name} Training Centre {org_index + 1}"}
        )
        staff = [self._assessor(org_id, i) for i in range(assessors)]
        # An officer with no OneFile account at all (office staff).
        self._add_officer(*self._name(), None, None)
        employers = [self._employer(org_id, i) for i in range(max(1, learners // 10))]
        linked_staff = [s for s in staff if s["linked_officer"]]
        for index in range(learners):
            self._learner(org_id, index, staff, linked_staff, employers, aims, reviews)
        for _ in range(max(1, learners // 10)):
            self._unlinked_trainee(linked_staff)

    def _assessor(self, org_id: int, index: int) -> dict:
        counter = next(self._assessor_counter)
        case = "linked" if index == 0 else _ASSESSOR_CASES[counter % len(_ASSESSOR_CASES)]
        first, last = self._name()
        user_id = next(self._user_ids)
        email = f"{first}.{last}{user_id}@provider.example".lower()
        self.of.users.append(
            {
                "ID": user_id,
                "FirstName": first,
                "LastName": last,
                "Email": email,
                "MISID": None,
                "Role": _ASSESSOR_ROLES[counter % len(_ASSESSOR_ROLES)],
                "OrganisationID": org_id,
                "DefaultAssessorID": None,
                "ULN": None,
                "StartOn": None,
                "PlannedEndDate": None,
                "Progress": None,
                "LastModified": self._recent_instant(90),
            }
        )
        officer_id = None
        if case == "linked":
            officer_id = self._add_officer(first, last, email, user_id)
        elif case == "email_only":
            officer_id = self._add_officer(first, last, email.upper(), None)
        elif case == "shared_email":
            officer_id = self._add_officer(first, last, email.capitalize(), None)
            self._add_officer(*self._name(), email, None)
        return {"id": user_id, "officer_id": officer_id, "linked_officer": case == "linked"}

    def _employer(self, org_id: int, index: int) -> int:
        user_id = next(self._user_ids)
        self.of.users.append(
            {
                "ID": user_id,
                "FirstName": "Manager",
                "LastName": f"Employer {index + 1}",
                "Email": f"manager{user_id}@employer.example",
                "MISID": None,
                "Role": 40,
                "OrganisationID": org_id,
                "DefaultAssessorID": None,
                "ULN": None,
                "StartOn": None,
                "PlannedEndDate": None,
                "Progress": None,
                "LastModified": self._recent_instant(90),
            }
        )
        return user_id

    # ----- learners and trainees -------------------------------------------------------
    def _learner(
        self,
        org_id: int,
        index: int,
        staff: list[dict],
        linked_staff: list[dict],
        employers: list[int],
        aims: int,
        reviews: int,
    ) -> None:
        rng = self.rng
        first, last = self._name()
        user_id = next(self._user_ids)
        # Most learners have a linked assessor as default; some any assessor.
        pool = linked_staff if linked_staff and rng.random() < 0.7 else staff
        assessor = rng.choice(pool) if pool else None
        has_trainee = index % 10 != 9
        trainee_id = self._key("trainee") if has_trainee else None
        start = self.today - dt.timedelta(days=rng.randint(30, 700))
        uln = None if rng.random() < 0.125 else str(rng.randrange(10**9, 10**10))
        email = f"{first}.{last}{user_id}@learner.example".lower()
        self.of.users.append(
            {
                "ID": user_id,
                "FirstName": first,
                "LastName": last,
                "Email": email,
                "MISID": str(trainee_id) if trainee_id else None,
                "Role": 1,
                "OrganisationID": org_id,
                "DefaultAssessorID": assessor["id"] if assessor else None,
                "ULN": uln,
                "StartOn": format_instant(_utc(start, 0)),
                "PlannedEndDate": format_instant(
                    _utc(start + dt.timedelta(days=rng.randint(365, 730)), 0)
                ),
                "Progress": round(rng.uniform(0, 100), 1),
                "LastModified": self._recent_instant(60),
            }
        )
        main_officer = assessor["officer_id"] if assessor else None
        if has_trainee:
            self.pw["trainee"].append(
                {
                    "trainee_id": trainee_id,
                    "first_name": first,
                    "surname": last,
                    "email": email,
                    "uln": uln,
                    "main_officer_id": main_officer,
                    "onefile_learner_id": user_id,
                }
            )
        codes = self._codes(aims)
        for code, title, standard_id in codes:
            self._aim(user_id, trainee_id, code, title, standard_id)
        for _ in range(reviews):
            self._onefile_review(user_id, trainee_id, staff, assessor, employers, org_id)
        if has_trainee:
            main_linked = bool(assessor and assessor["linked_officer"])
            self._picsweb_only_reviews(trainee_id, main_linked, linked_staff, staff)

    def _codes(self, count: int) -> list[tuple[str, str, int]]:
        """Distinct aim codes for one learner, e.g. '196AS'."""
        chosen = []
        start = self.rng.randrange(len(_STANDARDS) * len(_AIM_SUFFIXES))
        for offset in range(count):
            n = (start + offset) % (len(_STANDARDS) * len(_AIM_SUFFIXES))
            number, title = _STANDARDS[n % len(_STANDARDS)]
            suffix = _AIM_SUFFIXES[n // len(_STANDARDS) % len(_AIM_SUFFIXES)]
            chosen.append((f"{number}{suffix}", title, number))
        return chosen

    def _unlinked_trainee(self, linked_staff: list[dict]) -> None:
        """A PICSWeb trainee never uploaded to OneFile, with a review that must not upload."""
        first, last = self._name()
        trainee_id = self._key("trainee")
        main = linked_staff[0]["officer_id"] if linked_staff else None
        self.pw["trainee"].append(
            {
                "trainee_id": trainee_id,
                "first_name": first,
                "surname": last,
                "email": f"{first}.{last}.t{trainee_id}@learner.example".lower(),
                "uln": None,
                "main_officer_id": main,
                "onefile_learner_id": None,
            }
        )
        number, title = self.rng.choice(_STANDARDS)
        self._tq(trainee_id, f"{number}AS", title, None, {})
        self._picsweb_review(trainee_id, officer_id=main)

    # ----- learning aims and qualifications --------------------------------------------
    def _aim(
        self, user_id: int, trainee_id: int | None, code: str, title: str, standard_id: int
    ) -> None:
        rng = self.rng
        counter = next(self._aim_counter)
        aim_id = next(self._aim_ids)
        total = rng.randint(8, 40)
        done = rng.randint(0, total)
        aim = {
            "ID": aim_id,
            "UserID": user_id,
            "StandardID": standard_id,
            "Code": code,
            "Title": title,
            "Progress": round(100 * done / total, 1),
            "TotalElements": total,
            "ElementsDone": done,
        }
        tq: dict = {}
        self._registration_number(counter, aim, tq)
        for field_index, (onefile_field, picsweb_field) in enumerate(_DATE_FIELDS):
            case = _DATE_CASES[(counter + 2 * field_index + 1) % len(_DATE_CASES)]
            aim[onefile_field], tq[picsweb_field] = self._date_pair(case)
        self.of.learning_aims.append(aim)
        if trainee_id is None:
            return
        case = _AIM_CASES[counter % len(_AIM_CASES)]
        tq.update(self._elements(counter, total, done))
        if case in ("linked", "code_match"):
            tq_id = self._tq(trainee_id, code, title, aim_id if case == "linked" else None, tq)
            if case == "linked" and counter % 5 == 0:
                for unit in range(rng.randint(1, 3)):
                    self.pw["trainee_qualification_unit"].append(
                        {
                            "tqu_id": self._key("trainee_qualification_unit"),
                            "tq_id": tq_id,
                            "unit_code": f"U{standard_id:03d}-{unit + 1:02d}",
                        }
                    )
        elif case == "ambiguous":
            self._tq(trainee_id, code, title, None, tq)
            self._tq(trainee_id, code, title, None, {})

    def _tq(self, trainee_id: int, code: str, title: str, aim_id: int | None, values: dict) -> int:
        tq_id = self._key("trainee_qualification")
        self.pw["trainee_qualification"].append(
            {
                "tq_id": tq_id,
                "trainee_id": trainee_id,
                "qualification_code": code,
                "title": title,
                "onefile_learning_aim_id": aim_id,
                "total_elements": values.get("total_elements"),
                "elements_done": values.get("elements_done"),
                "registration_number": values.get("registration_number"),
                "registration_date": values.get("registration_date"),
                "certificate_applied_date": values.get("certificate_applied_date"),
                "certificate_received_date": values.get("certificate_received_date"),
            }
        )
        return tq_id

    def _elements(self, counter: int, total: int, done: int) -> dict:
        case = _ELEMENT_CASES[counter % len(_ELEMENT_CASES)]
        if case == "equal":
            return {"total_elements": total, "elements_done": done}
        if case == "differ":
            return {"total_elements": total + 2, "elements_done": max(0, done - 1)}
        if case == "done_differs":
            return {"total_elements": total, "elements_done": max(0, done - 3)}
        return {"total_elements": None, "elements_done": None}

    def _registration_number(self, counter: int, aim: dict, tq: dict) -> None:
        case = _TEXT_CASES[counter % len(_TEXT_CASES)]
        onefile_value = f"REG{aim['ID']}"
        pairs = {
            "both_blank": (None, None),
            "only_onefile": (onefile_value, None),
            "only_picsweb": (None, f"PW{aim['ID']}"),
            "both_equal": (onefile_value, onefile_value),
            "both_differ": (onefile_value, f"PW{aim['ID']}"),
            "picsweb_empty": (onefile_value, ""),
            "picsweb_spaces": (onefile_value, "  "),
            "onefile_empty": ("", f"PW{aim['ID']}"),
            "blank_mixed": ("", "  "),
        }
        aim["RegistrationNumber"], tq["registration_number"] = pairs[case]

    def _date_pair(self, case: str) -> tuple[str | None, dt.date | None]:
        """(OneFile instant text, PICSWeb UK date) for one date-field case."""
        rng = self.rng
        day = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(800))
        summer = dt.date(2025, 6, 1) + dt.timedelta(days=rng.randrange(90))
        winter = dt.date(2025, 11, 3) + dt.timedelta(days=rng.randrange(90))
        daytime = _utc(day, rng.randint(8, 17), rng.randrange(60), rng.randrange(60))
        if case == "both_blank":
            return None, None
        if case == "only_onefile":
            return format_instant(daytime), None
        if case == "only_picsweb":
            return None, day
        if case == "both_equal":
            return format_instant(_utc(day, 0)), day
        if case == "both_differ":
            return format_instant(daytime), day - dt.timedelta(days=rng.randint(1, 40))
        if case == "bst_late_same_uk_day":  # 23:30Z in summer is the next UK day
            return format_instant(_utc(summer, 23, 30)), summer + dt.timedelta(days=1)
        if case == "bst_late_utc_day_in_picsweb":  # equal only if compared as UTC dates
            return format_instant(_utc(summer, 23, 30)), summer
        if case == "gmt_late":  # 23:30Z in winter is still the same UK day
            return format_instant(_utc(winter, 23, 30)), winter
        return format_instant(daytime, millis=False), day  # no_millis

    # ----- reviews ---------------------------------------------------------------------
    def _onefile_review(
        self,
        learner_id: int,
        trainee_id: int | None,
        staff: list[dict],
        assessor: dict | None,
        employers: list[int],
        org_id: int,
    ) -> None:
        rng = self.rng
        counter = next(self._review_counter)
        day = self.today + dt.timedelta(days=rng.randint(-30, 30))
        at = rng.choice(_UK_TIMES)
        if counter % 12 == 5 and self._summer_days:
            # Just after UK midnight in summer time: the instant is on the previous UTC day.
            day, at = rng.choice(self._summer_days), dt.time(0, 30)
        scheduled = _uk_instant(day, at)
        started = day < self.today and rng.random() < 0.7
        started_on = scheduled + dt.timedelta(minutes=rng.randint(0, 20)) if started else None
        signed = started and rng.random() < 0.6
        roll = rng.random()
        who = assessor if roll < 0.8 else (rng.choice(staff) if roll < 0.95 and staff else None)
        visit_id = None
        if rng.random() < 0.5:
            visit_id = next(self._visit_ids)
            self.of.visits.append(
                {
                    "ID": visit_id,
                    "LearnerID": learner_id,
                    "OrganisationID": org_id,
                    "DateFrom": format_instant(scheduled),
                    "DateTo": format_instant(scheduled + dt.timedelta(hours=1)),
                    "VisitTypeID": rng.choice((1, 2, 3)),
                    "SMSReminder": False,
                    "AssessorID": who["id"] if who else None,
                    "CreatedOn": format_instant(scheduled - dt.timedelta(days=rng.randint(5, 40))),
                }
            )
        review_id = next(self._review_ids)
        self.of.reviews.append(
            {
                "ID": review_id,
                "LearnerID": learner_id,
                "AssessorID": who["id"] if who else None,
                "EmployerID": rng.choice(employers) if rng.random() < 0.6 else None,
                "ScheduledFor": format_instant(scheduled, millis=counter % 4 != 0),
                "Status": 2 if started else 1,
                "CreatedOn": format_instant(
                    scheduled - dt.timedelta(days=rng.randint(5, 40), seconds=rng.randrange(86400))
                ),
                "StartedOn": format_instant(started_on) if started_on else None,
                "AssessorSignedOn": format_instant(started_on + dt.timedelta(hours=1))
                if signed
                else None,
                "LearnerSignedOn": format_instant(started_on + dt.timedelta(hours=2))
                if signed
                else None,
                "EmployerSignedOn": (
                    format_instant(started_on + dt.timedelta(days=1))
                    if signed and rng.random() < 0.5
                    else None
                ),
                "EndTime": format_instant(started_on + dt.timedelta(hours=1))
                if started_on
                else None,
                "VisitID": visit_id,
            }
        )
        # Two in three reviews of a linked learner are already in PICSWeb; the rest download.
        if trainee_id is not None and counter % 3 != 2:
            local = scheduled.astimezone(UK)
            stale = counter % 5 == 0  # PICSWeb still has an older schedule
            self.pw["review"].append(
                {
                    "review_id": self._key("review"),
                    "trainee_id": trainee_id,
                    "review_type": "Normal",
                    "scheduled_date": local.date() - dt.timedelta(days=1 if stale else 0),
                    "start_time": local.time(),
                    "end_time": None,
                    "officer_id": who["officer_id"] if who else None,
                    "attended": rng.choice((None, "U")),
                    "actual_date": None,
                    "trainee_signed_date": None,
                    "onefile_system_id": review_id,
                }
            )

    def _picsweb_only_reviews(
        self, trainee_id: int, main_linked: bool, linked_staff: list[dict], staff: list[dict]
    ) -> None:
        """PICSWeb reviews not yet in OneFile: mostly uploadable, some not for one reason."""
        case = _UPLOAD_CASES[next(self._upload_counter) % len(_UPLOAD_CASES)]
        linked_officer = self.rng.choice(linked_staff)["officer_id"] if linked_staff else None
        unlinked = [s["officer_id"] for s in staff if s["officer_id"] and not s["linked_officer"]]
        if main_linked:  # the main officer suffices; the review's own officer varies
            officer = self.rng.choice([None, linked_officer, *unlinked[:1]])
        else:
            officer = linked_officer
            self._picsweb_review(  # nobody with a onefile_id: cannot upload
                trainee_id, officer_id=self.rng.choice([None, *unlinked[:1]])
            )
        self._picsweb_review(
            trainee_id,
            officer_id=officer,
            review_type=self.rng.choice(("Initial", "Exit")) if case == "not_normal" else "Normal",
            attended=self.rng.choice(("Y", "N", "U")) if case == "attended_set" else None,
            actual_date_set=case == "actual_date_set",
        )

    def _picsweb_review(
        self,
        trainee_id: int,
        officer_id: int | None,
        review_type: str = "Normal",
        attended: str | None = None,
        actual_date_set: bool = False,
    ) -> None:
        rng = self.rng
        day = self.today + dt.timedelta(days=rng.randint(-30, 30))
        start = rng.choice((*_UK_TIMES, None))
        end = None
        if start is not None and rng.random() < 0.5:
            end = (dt.datetime.combine(day, start) + dt.timedelta(minutes=90)).time()
        self.pw["review"].append(
            {
                "review_id": self._key("review"),
                "trainee_id": trainee_id,
                "review_type": review_type,
                "scheduled_date": day,
                "start_time": start,
                "end_time": end,
                "officer_id": officer_id,
                "attended": attended,
                "actual_date": day if actual_date_set else None,
                "trainee_signed_date": None,
                "onefile_system_id": None,
            }
        )

    # ----- result ----------------------------------------------------------------------
    def dataset(self) -> Dataset:
        self.pw["onefile_settings"].append(
            {
                "settings_id": 1,
                "integration_enabled": True,
                "environment": "Practice",
                "organisation_ids": ",".join(str(o["ID"]) for o in self.of.organisations),
                "upload_review_data": True,
                "download_review_data": True,
                "visit_type": "Face to Face",
                "last_synchronised": None,
            }
        )
        return Dataset(onefile=self.of, picsweb=self.pw, today=self.today)
