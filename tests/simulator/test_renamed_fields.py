"""The ``rename_field`` fault: a OneFile that spells a field otherwise than the contract."""

from __future__ import annotations

import copy

import pytest

ORG = 5740  # the generator's first organisation


def _page(sim, api, entity: str = "LearningAim", size: int = 5) -> list:
    url = f"{sim.base_url}/{entity}/Search/1/{size}"
    return api.post(url, json={"OrganisationID": ORG}, timeout=5).json()


def test_a_renamed_field_is_served_under_its_new_name_until_cleared(sim, api):
    clean = _page(sim, api)
    stored = copy.deepcopy(sim.data.learning_aims)
    sim.faults.rename_field("LearningAim", "CertificateReceivedDate", "CertificateReceivedOn")
    for _ in range(2):  # every page, not once
        renamed = _page(sim, api)
        assert [list(row) for row in renamed] == [
            ["CertificateReceivedOn" if key == "CertificateReceivedDate" else key for key in row]
            for row in clean
        ]
        assert [row["CertificateReceivedOn"] for row in renamed] == [
            row["CertificateReceivedDate"] for row in clean
        ]
    assert sim.data.learning_aims == stored
    sim.faults.clear()
    assert _page(sim, api) == clean


def test_a_rename_applies_to_its_entity_only_and_keeps_malformed_rows_working(sim, api):
    users = _page(sim, api, "User")
    sim.faults.rename_field("LearningAim", "Code", "AimCode")
    sim.faults.malformed_rows("LearningAim", ["bad_date"])
    aims = _page(sim, api)
    assert _page(sim, api, "User") == users
    assert "Code" not in aims[0] and "AimCode" in aims[0]
    assert aims[0]["RegistrationDate"] == "2026-02-30T25:61:00Z"


def test_renaming_in_an_unknown_entity_is_refused(sim):
    with pytest.raises(ValueError, match="unknown searchable entity"):
        sim.faults.rename_field("Visit", "DateFrom", "From")
