"""Issue 18, case 8: reads that cannot silently miss data (contract: Paging [risk]).

The contract only assumes OneFile has no page-size maximum. Against a simulator that
serves at most 10 rows a page while the hook asks for 100, under both ways a capping
server may place its pages (offsets by the size asked for, or by the capped size), every
search of the sync returns each of its rows exactly once, with a warning naming the cap
and the setting to change, and costs what a hook configured with the right page size
costs. Without a cap, a search costs one call more than before only when its last page
is short and not empty. Pages that contradict each other raise instead of returning part
of a search.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from onefile.errors import OneFileApiError, OneFilePagingError
from onefile.hook import OneFileHook
from onefile_simulator import OneFileSimulator, generate_dataset
from tests.hook.conftest import CUSTOMER_TOKEN

ORG = 5740  # the generator's first organisation
LEARNER = 1
CAP, ASKED = 10, 100

HookFor = Callable[..., OneFileHook]


@pytest.fixture
def sim_with(request) -> Iterator[Callable[..., OneFileSimulator]]:
    """Simulators over a dataset of one organisation with ``learners`` learners (2 aims
    and 3 reviews each), stopped after the test."""
    started: list[OneFileSimulator] = []

    def start(learners: int, **options: Any) -> OneFileSimulator:
        dataset = generate_dataset(seed=7, organisations=1, learners=learners)
        sim = OneFileSimulator(dataset.onefile, customer_token=CUSTOMER_TOKEN, **options)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


# (name, hook call, simulator search path, the rows the search must return)
SEARCHES: list[tuple[str, Callable[[OneFileHook], Iterator[dict]], str, Callable]] = [
    (
        "users",
        lambda hook: hook.search_users(ORG, LEARNER),
        "/User/Search",
        lambda sim: [u for u in sim.data.users if u.get("Role") == LEARNER],
    ),
    (
        "learning_aims",
        lambda hook: hook.search_learning_aims(organisation_id=ORG),
        "/LearningAim/Search",
        lambda sim: sim.data.learning_aims,
    ),
    (
        "reviews",
        lambda hook: hook.search_reviews(ORG),
        "/Review/Search",
        lambda sim: sim.data.reviews,
    ),
]


def warning_lines(capsys) -> list[str]:
    """The warnings the hook logged (Airflow's task logging writes them to stdout)."""
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    return [line for line in lines if "warning" in line.lower() and "OneFile" in line]


def search_paths(sim: OneFileSimulator, prefix: str) -> list[str]:
    return [c.path for c in sim.calls_to(prefix)]


@pytest.mark.parametrize("offset", ["asked", "capped"], ids=lambda o: f"offsets-by-{o}-size")
@pytest.mark.parametrize("learners", [23, 20], ids=["short-last-page", "full-last-page"])
@pytest.mark.parametrize("search", SEARCHES, ids=[s[0] for s in SEARCHES])
def test_a_capping_onefile_gives_every_row_once(
    sim_with, hook_for: HookFor, capsys, search, learners: int, offset: str
) -> None:
    name, read, prefix, expected_rows = search
    sim = sim_with(learners, page_size_cap=CAP, page_cap_offset=offset)
    hook = hook_for(sim, page_size=ASKED)
    expected = [row["ID"] for row in expected_rows(sim)]
    assert len(expected) >= 2 * CAP, "the dataset must span several capped pages"

    rows = list(read(hook))

    ids = [row["ID"] for row in rows]
    assert ids == expected  # every row, once, in OneFile's order
    # Page 1 asked for 100 and got 10; page 2 of 10 starts at row 10 whichever size the
    # server counts by, so it is read as the next page, and paging goes on by 10: the
    # calls of a hook configured with page_size 10 (pages, then the empty page after a
    # full last page or the one confirming a short last page).
    pages = math.ceil(len(expected) / CAP) + 1
    assert search_paths(sim, prefix) == [f"{prefix}/1/{ASKED}"] + [
        f"{prefix}/{page}/{CAP}" for page in range(2, pages + 1)
    ]
    warnings = warning_lines(capsys)
    assert len(warnings) == 1, warnings
    for part in (f"caps search pages at {CAP} rows", f'"page_size": {CAP}', "'onefile_api'"):
        assert part in warnings[0]


@pytest.mark.parametrize("offset", ["asked", "capped"])
def test_the_calls_under_a_cap_are_those_of_the_right_page_size(
    sim_with, hook_for: HookFor, offset: str
) -> None:
    """The cost of a cap found on the way: the same calls as a hook told the cap."""
    counts = {}
    for page_size in (ASKED, CAP):
        sim = sim_with(23, page_size_cap=CAP, page_cap_offset=offset)
        hook = hook_for(sim, page_size=page_size)
        for _, read, _, _ in SEARCHES:
            list(read(hook))
        counts[page_size] = hook.calls_made
    assert counts[ASKED] == counts[CAP] == 1 + (3 + 5 + 7) + 3  # auth, pages, confirmations


@pytest.mark.parametrize("learners", [23, 20], ids=["short-last-page", "full-last-page"])
@pytest.mark.parametrize("search", SEARCHES, ids=[s[0] for s in SEARCHES])
def test_without_a_cap_at_most_one_call_more_per_search(
    sim_with, hook_for: HookFor, capsys, search, learners: int
) -> None:
    """Pages of 10 with no cap: a short last page costs one confirming call; an exactly
    full last page costs nothing more than before (its empty next page always ended the
    search)."""
    name, read, prefix, expected_rows = search
    sim = sim_with(learners)
    hook = hook_for(sim, page_size=CAP)
    expected = [row["ID"] for row in expected_rows(sim)]

    assert [row["ID"] for row in read(hook)] == expected

    full_pages, rest = divmod(len(expected), CAP)
    before = full_pages + 1  # what the hook made before: the pages, or the full ones + empty
    paths = search_paths(sim, prefix)
    assert paths == [f"{prefix}/{page}/{CAP}" for page in range(1, full_pages + 2 + (rest > 0))]
    assert len(paths) - before == (1 if rest else 0)
    assert warning_lines(capsys) == []


@pytest.mark.parametrize("form", ["empty_list", "no_content"])
def test_a_short_page_is_confirmed_by_an_empty_page_or_a_204(
    sim_with, hook_for: HookFor, form: str
) -> None:
    sim = sim_with(23)
    sim.empty_page_form = form
    hook = hook_for(sim, page_size=CAP)
    assert len(list(hook.search_users(ORG, LEARNER))) == 23
    calls = sim.calls_to("/User/Search")
    assert [(c.path, c.status) for c in calls] == [
        ("/User/Search/1/10", 200),
        ("/User/Search/2/10", 200),
        ("/User/Search/3/10", 200),  # 3 rows: short, so probably the last ...
        ("/User/Search/4/10", 204 if form == "no_content" else 200),  # ... and it is
    ]
    assert sim.calls[-1].status == (204 if form == "no_content" else 200)


@pytest.mark.parametrize("form", ["empty_list", "no_content"])
def test_a_short_first_page_is_confirmed_by_the_page_of_its_own_size(
    sim_with, hook_for: HookFor, form: str
) -> None:
    """Page 2 of the short page's size starts right after its rows, whichever size a
    capping server counts by: without a cap it is past the end."""
    sim = sim_with(23)
    sim.empty_page_form = form
    hook = hook_for(sim, page_size=ASKED)
    assert len(list(hook.search_users(ORG, LEARNER))) == 23
    assert [(c.path, c.status) for c in sim.calls_to("/User/Search")] == [
        ("/User/Search/1/100", 200),
        ("/User/Search/2/23", 204 if form == "no_content" else 200),
    ]


def test_a_search_with_no_rows_costs_one_call(sim_with, hook_for: HookFor) -> None:
    sim = sim_with(5, page_size_cap=CAP)
    hook = hook_for(sim, page_size=ASKED)
    assert list(hook.search_reviews(ORG, learner_id=1)) == []
    assert [(c.path, c.status) for c in sim.calls_to("/Review/Search")] == [
        ("/Review/Search/1/100", 204)
    ]


def test_rows_after_a_confirmed_short_page_raise_rather_than_return_part(
    sim_with, hook_for: HookFor
) -> None:
    """A cap that appears in the middle of a search (pages of 10 full, then pages of 3):
    page 2 is short, page 3 still has rows, so the pages contradict each other."""
    sim = sim_with(23)
    hook = hook_for(sim, page_size=CAP)
    rows = hook.search_users(ORG, LEARNER)
    first_page = list(itertools.islice(rows, CAP))
    sim.cap_page_size(3, "asked")

    with pytest.raises(OneFilePagingError) as raised:
        list(rows)

    assert len(first_page) == CAP
    error = raised.value
    assert isinstance(error, OneFileApiError)  # what callers already catch and report
    assert (error.entity, error.path) == ("User", "/User/Search/3/10")
    assert "page 2 of 10 held 3 rows" in str(error)
    assert "abandoned rather than return part" in str(error)


def test_a_cap_found_then_contradicted_raises(sim_with, hook_for: HookFor) -> None:
    """Capped at 10, then the cap falls to 4 mid-search: page 3 of 10 answers 4 rows
    (short), yet page 4 of 10 has rows."""
    sim = sim_with(23, page_size_cap=CAP, page_cap_offset="capped")
    hook = hook_for(sim, page_size=ASKED)
    rows = hook.search_users(ORG, LEARNER)
    read = list(itertools.islice(rows, 2 * CAP))  # page 1 of 100 and page 2 of 10
    sim.cap_page_size(4, "capped")
    with pytest.raises(OneFilePagingError, match="page 3 of 10 held 4 rows"):
        list(rows)
    assert len(read) == 2 * CAP
