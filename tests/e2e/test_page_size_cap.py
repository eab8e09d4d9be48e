"""Issue 18, case 8: a whole run of the real DAG against a OneFile that serves at most 10
rows a search page while the sync asks for 100 (contract: Paging [risk]). Every extract
task stages every row its searches match: exactly what the same searches answer in one
page from an uncapped OneFile holding the same data, parsed as the extract parses. Before,
each search stopped after its first, short, page and the run went on with 10 rows of each.
"""

from __future__ import annotations

import json
from collections import defaultdict

import requests

from onefile_simulator import OneFileSimulator
from picsweb_sync.onefile import fields as onefile_fields
from picsweb_sync.storage import project_tables as pt

CAP = 10
EXTRACTS = ("extract_learners", "extract_assessors", "extract_learning_aims", "extract_reviews")
ID_COLUMN = {
    "learners": "learner_id",
    "assessors": "assessor_id",
    "learning_aims": "learning_aim_id",
    "reviews": "review_id",
}
PARSE = {
    "learners": onefile_fields.parse_learners,
    "assessors": onefile_fields.parse_assessors,
    "learning_aims": onefile_fields.parse_learning_aims,
    "reviews": onefile_fields.parse_reviews,
}


def staging_entity(entity: str, body: dict) -> str | None:
    """Which extract makes a search with this body (push's re-reads filter otherwise)."""
    keys = set(body)
    if entity == "User" and keys == {"OrganisationID", "Role"}:
        return "learners" if body["Role"] == 1 else "assessors"
    if entity == "LearningAim" and keys == {"OrganisationID"}:
        return "learning_aims"
    if entity == "Review" and keys == {"OrganisationID", "DateFrom", "DateTo"}:
        return "reviews"
    return None


def uncapped_rows(sim: OneFileSimulator, entity: str, body: dict) -> list:
    """The whole answer of one search from ``sim`` (no cap), in one page."""
    token = requests.post(
        f"{sim.base_url}/Authentication",
        headers={"X-CustomerToken": sim.customer_token},
        timeout=5,
    ).text.strip()
    answer = requests.post(
        f"{sim.base_url}/{entity}/Search/1/100000",
        json=body,
        headers={"X-TokenID": token},
        timeout=10,
    )
    return answer.json() if answer.status_code == 200 else []


def test_every_extract_stages_every_row_from_a_capping_onefile(world, capsys):
    world.sim.cap_page_size(CAP, "asked")

    run = world.run()

    states: dict[str, set[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(str(ti.state))
    assert {task: states[task] for task in EXTRACTS} == {task: {"success"} for task in EXTRACTS}

    # The extracts' searches (their page 1), by staging entity and organisation.
    searches: dict[str, dict[int, list[tuple[str, dict]]]] = defaultdict(lambda: defaultdict(list))
    for call in world.sim.calls:
        parts = call.path.strip("/").split("/")
        if call.method != "POST" or len(parts) != 4 or parts[1:3] != ["Search", "1"]:
            continue
        entity, size = parts[0], parts[3]
        staged_as = staging_entity(entity, call.body)
        found = searches[staged_as][call.body.get("OrganisationID")] if staged_as else None
        if found is not None and (entity, call.body) not in found:
            assert size == "100"
            found.append((entity, call.body))
    assert set(searches) == set(ID_COLUMN)

    reference = OneFileSimulator(world.original.onefile, customer_token=world.sim.customer_token)
    beyond_cap = 0
    with reference, world.picsweb.connect() as conn:
        for staged_as, by_organisation in searches.items():
            column = ID_COLUMN[staged_as]
            for organisation_id, made in by_organisation.items():
                answers = [uncapped_rows(reference, entity, body) for entity, body in made]
                beyond_cap += sum(max(0, len(rows) - CAP) for rows in answers)
                rows = [row for answer in answers for row in answer]
                expected = PARSE[staged_as](rows, organisation_id).frame[column]
                staged = pt.read_staging(conn, run.run_id, staged_as, organisation_id)[column]
                assert sorted(staged) == sorted(expected), (staged_as, organisation_id)
                assert staged.is_unique
    assert beyond_cap > 0, "the dataset must hold searches longer than the cap"

    # Each search found the cap and said what to set.
    output = capsys.readouterr()
    assert f"caps search pages at {CAP} rows" in output.out + output.err
    assert json.dumps({"page_size": CAP}) in output.out + output.err
