"""Issue 18, case 8: the preflight's "how paging ends" reports a OneFile that caps the page
size below the sync's ``page_size`` as blocking, naming the cap and what to set (contract:
Paging [risk]), whichever size the capping OneFile counts its page offsets by. Before, a
short page 1 was called "the last" and the preflight said ok."""

from __future__ import annotations

import pytest

from tests.preflight.conftest import Pair, onefile_writes, run_preflight

CAP = 4  # below the 6 learners (and 12 learning aims) of each organisation


@pytest.mark.parametrize("offset", ["asked", "capped"])
def test_a_page_size_cap_is_blocking_with_the_setting_to_change(pair: Pair, offset: str):
    pair.sim.cap_page_size(CAP, offset)

    outcome = run_preflight(pair.env, "--json")

    assert outcome.code == 1, outcome.stdout + outcome.stderr
    blocking = {c for c, level in outcome.levels.items() if level == "blocking"}
    assert {"onefile.paging.learners", "onefile.paging.learning_aims"} <= blocking
    assert all(check.startswith("onefile.paging.") for check in blocking), blocking
    learners = outcome.check("onefile.paging.learners")
    assert f"at most {CAP} rows a page" in learners["finding"]
    assert f"CAPS pages at {CAP} rows" in learners["finding"]
    assert f'"page_size": {CAP}' in learners["advice"]
    assert "'onefile_api' connection" in learners["advice"]
    assert learners["details"]["cap"] == CAP
    assert learners["details"]["setting"] == "page_size"
    # The probe is page 2 of the short page's size, which starts right after page 1
    # whichever way the server counts: 2 calls a search, reads only.
    probes = [c.path for c in pair.sim.calls if "/Search/2/" in c.path]
    assert f"/User/Search/2/{CAP}" in probes
    assert onefile_writes(pair.sim) == []


def test_a_cap_above_every_search_is_not_reported(pair: Pair):
    """A cap no search reaches changes nothing the sync reads: ok, as without a cap."""
    pair.sim.cap_page_size(1000)
    outcome = run_preflight(pair.env, "--json")
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    learners = outcome.check("onefile.paging.learners")
    assert learners["level"] == "ok"
    assert "a short page, so the last: page 2 of 6 answers" in learners["finding"]
