"""The learning-aim push's re-check just before sending (``push.aim_fields_still_to_fill``):
each queued update keeps only the fields OneFile still has blank and PICSWeb still holds, and
says why when nothing is left. Checked a column at a time over every update; each case here
is one queued update, with its expected payload and reason written by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.stages import push

AIM, OTHER_AIM, UNLINKED_AIM, GONE_AIM = 500001, 500002, 500003, 500099


def onefile_now() -> pd.DataFrame:
    """OneFile's learning aims now, parsed as the push parses its searches."""
    rows = [
        {
            "ID": AIM,
            "UserID": 100001,
            "RegistrationNumber": None,
            "RegistrationDate": "   ",  # whitespace only: blank
            "CertificateAppliedDate": "2026-01-31T00:00:00Z",  # filled meanwhile
            "Title": "",
        },
        {"ID": OTHER_AIM, "UserID": 100002, "RegistrationNumber": "", "Title": None},
        {"ID": UNLINKED_AIM, "UserID": 100003, "RegistrationNumber": None},
    ]
    return onefile_fields.parse_learning_aims(rows, organisation_id=11).frame


def picsweb_now() -> pd.DataFrame:
    """PICSWeb's qualifications linked to those aims, typed as ``read_frame`` reads them."""
    return pd.DataFrame(
        {
            "tq_id": pd.array([1, 2, 3], dtype="Int64"),
            "onefile_learning_aim_id": pd.array([AIM, OTHER_AIM, None], dtype="Int64"),
            "registration_number": pd.array(["REG-1", " REG-2 ", "REG-3"], dtype="string"),
            "registration_date": [dt.date(2025, 9, 1), None, None],
            "certificate_applied_date": [dt.date(2026, 1, 31), None, None],
            "title": pd.array(["Level 3 Diploma", None, None], dtype="string"),
        }
    )


CASES = [
    (
        "every field still applies",
        AIM,
        {"RegistrationNumber": "REG-1", "RegistrationDate": "2025-09-01T00:00:00Z"},
        {"RegistrationNumber": "REG-1", "RegistrationDate": "2025-09-01T00:00:00Z"},
        None,
    ),
    (
        "a field OneFile filled meanwhile is dropped, the rest sent",
        AIM,
        {"RegistrationNumber": "REG-1", "CertificateAppliedDate": "2026-01-31T00:00:00Z"},
        {"RegistrationNumber": "REG-1"},
        None,
    ),
    (
        "PICSWeb changed since the merge",
        AIM,
        {"RegistrationNumber": "REG-OLD"},
        {},
        "RegistrationNumber changed in PICSWeb since the merge",
    ),
    (
        "PICSWeb text is compared trimmed",
        OTHER_AIM,
        {"RegistrationNumber": "REG-2"},
        {"RegistrationNumber": "REG-2"},
        None,
    ),
    (
        "PICSWeb emptied the value",
        OTHER_AIM,
        {"Title": "Level 2 Certificate"},
        {},
        "Title changed in PICSWeb since the merge",
    ),
    (
        "two reasons, in the payload's order, each once",
        AIM,
        {
            "CertificateAppliedDate": "2026-01-31T00:00:00Z",
            "RegistrationNumber": "REG-OLD",
            "Title": "Level 2 Certificate",
        },
        {},
        "CertificateAppliedDate is no longer blank in OneFile; "
        "RegistrationNumber changed in PICSWeb since the merge; "
        "Title changed in PICSWeb since the merge",
    ),
    (
        "the aim left OneFile's search",
        GONE_AIM,
        {"RegistrationNumber": "REG-1", "Title": "x"},
        {},
        "the learning aim is no longer in OneFile's search",
    ),
    (
        "no PICSWeb qualification links to it any more",
        UNLINKED_AIM,
        {"RegistrationNumber": "REG-3"},
        {},
        "no PICSWeb qualification is linked to it any more",
    ),
    ("an empty update", AIM, {}, {}, "nothing to send"),
]


@pytest.mark.parametrize(
    ("case", "aim", "queued", "kept", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_each_update_keeps_only_what_still_applies(case, aim, queued, kept, reason):
    pending = pd.DataFrame({"outbox_id": [7], "target_id": [aim], "payload": [queued]})
    checked = push.aim_fields_still_to_fill(pending, onefile_now(), picsweb_now())
    assert checked["payload"].tolist() == [kept]
    found = checked["reason"].iloc[0]
    assert (None if pd.isna(found) else found) == reason
    assert checked["outbox_id"].tolist() == [7]


def test_all_updates_at_once_give_each_its_own_answer_in_order():
    pending = pd.DataFrame(
        {
            "outbox_id": range(len(CASES)),
            "target_id": [c[1] for c in CASES],
            "payload": [c[2] for c in CASES],
        }
    )
    checked = push.aim_fields_still_to_fill(pending, onefile_now(), picsweb_now())
    assert checked["payload"].tolist() == [c[3] for c in CASES]
    reasons = [None if pd.isna(r) else r for r in checked["reason"]]
    assert reasons == [c[4] for c in CASES]


def test_nothing_pending_gives_an_empty_answer():
    pending = pd.DataFrame({"outbox_id": [], "target_id": [], "payload": []})
    checked = push.aim_fields_still_to_fill(pending, onefile_now(), picsweb_now())
    assert checked.empty
    assert {"payload", "reason"} <= set(checked.columns)
