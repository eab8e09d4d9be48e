"""The simulator's page size cap (contract: Paging [risk]): at most ``cap`` rows a search
page whatever size is asked for, with a capped page placed either by the size asked for
or by the capped size, switchable per test and from the command line."""

from __future__ import annotations

import pytest

from onefile_simulator.__main__ import build_parser
from onefile_simulator.server import OneFileSimulator

ORG = 5740  # the generator's first organisation
LEARNERS = {"OrganisationID": ORG, "Role": 1}


def learner_ids(sim: OneFileSimulator) -> list[int]:
    """The organisation's learners in the simulator's stored (and served) order."""
    return [
        u["ID"] for u in sim.data.users if u.get("Role") == 1 and u.get("OrganisationID") == ORG
    ]


def page(sim, api, number: int, size: int) -> tuple[int, list[int]]:
    answer = api.post(f"{sim.base_url}/User/Search/{number}/{size}", json=LEARNERS, timeout=5)
    return answer.status_code, [row["ID"] for row in answer.json()] if answer.content else []


def test_no_cap_by_default(sim, api):
    ids = learner_ids(sim)
    assert sim.page_size_cap is None
    assert page(sim, api, 1, 100) == (200, ids)


@pytest.mark.parametrize(
    ("offset", "second_page_of_100"),
    [("asked", slice(100, 110)), ("capped", slice(10, 20))],
)
def test_a_capped_page_starts_by_the_size_asked_for_or_by_the_cap(
    sim, api, offset, second_page_of_100
):
    ids = learner_ids(sim)
    assert len(ids) >= 20
    sim.cap_page_size(10, offset)
    assert page(sim, api, 1, 100) == (200, ids[:10])
    assert page(sim, api, 2, 100)[1] == ids[second_page_of_100]
    # A size at or below the cap is served as asked, either way.
    assert page(sim, api, 2, 10) == (200, ids[10:20])
    assert page(sim, api, 3, 7) == (200, ids[14:21])


def test_the_cap_is_switched_off_with_none(sim, api):
    sim.cap_page_size(10)
    assert len(page(sim, api, 1, 100)[1]) == 10
    sim.cap_page_size(None)
    assert page(sim, api, 1, 100) == (200, learner_ids(sim))


def test_the_cap_can_be_set_when_starting(start_sim, api):
    capped = start_sim(page_size_cap=3, page_cap_offset="capped")
    assert (capped.page_size_cap, capped.page_cap_offset) == (3, "capped")


@pytest.mark.parametrize(("cap", "offset"), [(0, "asked"), (10, "sideways")])
def test_a_bad_cap_is_refused(sim, cap, offset):
    with pytest.raises(ValueError):
        sim.cap_page_size(cap, offset)


def test_the_command_line_sets_the_cap():
    args = build_parser().parse_args(["--page-size-cap", "10", "--page-cap-offset", "capped"])
    assert (args.page_size_cap, args.page_cap_offset) == (10, "capped")
    defaults = build_parser().parse_args([])
    assert (defaults.page_size_cap, defaults.page_cap_offset) == (None, "asked")
