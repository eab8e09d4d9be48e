"""One run's drift report on the run page ("What still differs"), on its own page, as CSV,
for whom, and for an unknown run, through the app on PostgreSQL (the rows, counts and
filters themselves: test_drift.py)."""

from __future__ import annotations

import csv
import html
import io
import re
from urllib.parse import quote

import pytest
from sync_page import drift_view
from sync_page.drift_labels import WHAT_TO_DO, reason_label

from tests.sync_page import drift_client as client
from tests.sync_page.conftest import DENIED
from tests.sync_page.drift_client import HTML, api, every_page, key, run_url
from tests.sync_page.drift_data import CLEAN, DRIFTED, DRY, FORMULAS, NO_REPORT

# The fixtures these tests share (pytest finds them by these names).
world, anonymous, viewer = client.world, client.anonymous, client.viewer


# ----- the run page --------------------------------------------------------------------------
def test_the_run_page_says_what_still_differs_and_links_to_the_rows(viewer, world):
    rows = world[2].rows
    text = viewer.get(run_url(DRIFTED), headers=HTML).text
    section = text[text.index('id="drift"') : text.index("Counts per stage")]
    reasons = re.findall(r'<tr class="drift-reason reason-(\w+)', section)
    assert reasons[0] == "unexplained" and len(reasons) == len(set(reasons)) == 10
    alarm = re.search(
        r'<tr class="drift-reason reason-unexplained drift-alarm">(.*?)</tr>', section, re.S
    )
    unexplained = sum(1 for r in rows if r["reason"] == "unexplained")
    assert alarm and f"<td>{unexplained}</td>" in alarm.group(1)
    assert WHAT_TO_DO["unexplained"] in html.unescape(alarm.group(1))
    assert f"{len(rows)} differences left" in section
    quoted = quote(DRIFTED, safe="")
    assert f'id="drift-rows" href="../runs/{quoted}/drift"' in section
    assert f'href="../runs/{quoted}/drift?reason=not_linked"' in section
    assert 'id="drift-fields"' in section and "Elements done" in section
    assert f'href="../runs/{quoted}/drift?entity=qualification&amp;field=elements_done"' in section


@pytest.mark.parametrize(
    ("run_id", "says"),
    [
        (CLEAN, "Nothing differs"),
        (NO_REPORT, "No drift report for this run"),
        (DRY, "A dry run writes nothing"),
    ],
)
def test_a_run_without_differences_says_so_on_both_pages(viewer, run_id, says):
    for url in (run_url(run_id), run_url(run_id) + "/drift"):
        text = viewer.get(url, headers=HTML).text
        none = re.search(r'<p id="drift-none" class="muted">(.*?)</p>', text, re.S)
        assert none and says in html.unescape(none.group(1)), url
        assert 'class="drift-row' not in text


def test_a_clean_run_shows_no_alarm(viewer):
    text = viewer.get(run_url(CLEAN), headers=HTML).text
    assert "drift-alarm" not in text


# ----- the drift page ------------------------------------------------------------------------
def test_the_drift_page_lists_rows_pages_on_and_keeps_its_filters(viewer, world):
    expected = [r for r in world[2].rows if r["entity"] == "review"]
    first = viewer.get(run_url(DRIFTED) + "/drift", params={"entity": "review"}, headers=HTML)
    assert first.status_code == 200
    text = first.text
    assert text.count('class="drift-row') == drift_view.DEFAULT_DRIFT
    assert 'id="drift-first"' not in text
    assert '<option value="review" selected>' in text
    quoted = quote(DRIFTED, safe="")
    assert f'id="back-to-run" href="../../runs/{quoted}"' in text
    assert f'href="../../runs/{quoted}/drift.csv?entity=review"' in text
    assert f'href="../../api/runs/{quoted}/drift?entity=review"' in text
    link = html.unescape(re.search(r'id="drift-next" href="([^"]+)"', text).group(1))
    assert link.startswith(f"../../runs/{quoted}/drift?") and "entity=review" in link
    second = viewer.get("/onefile-sync/" + link[len("../../") :].split("#")[0], headers=HTML).text
    assert 'id="drift-first"' in second
    values = re.findall(r'<td class="onefile">(.*?)</td>', second)
    page = expected[drift_view.DEFAULT_DRIFT : 2 * drift_view.DEFAULT_DRIFT]
    assert [html.unescape(v) for v in values] == [r["onefile_value"] or "(blank)" for r in page]
    reasons = re.findall(r'<td class="reason">(.*?)</td>', second)
    assert [html.unescape(v) for v in reasons] == [reason_label(r["reason"]) for r in page]


def test_an_unexplained_row_is_marked(viewer):
    text = viewer.get(run_url(DRIFTED) + "/drift", headers=HTML).text
    assert '<tr class="drift-row reason-unexplained drift-alarm">' in text


def test_a_filter_matching_nothing_says_so(viewer):
    text = viewer.get(run_url(DRIFTED) + "/drift", params={"field": "nothing"}, headers=HTML).text
    assert 'id="drift-no-match"' in text and 'class="drift-row' not in text


# ----- CSV -----------------------------------------------------------------------------------
def test_the_csv_holds_every_filtered_row_with_a_header_and_formulas_quoted(viewer, world):
    expected = world[2].rows
    answer = viewer.get(run_url(DRIFTED) + "/drift.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        'attachment; filename="drift-scheduled__2026-03-01T03_00_00_00_00.csv"'
    )
    table = list(csv.reader(io.StringIO(answer.text)))
    assert tuple(table[0]) == drift_view.CSV_COLUMNS
    assert len(table) - 1 == len(expected) > drift_view.MAX_DRIFT  # several chunks
    rows, _ = every_page(viewer, DRIFTED, limit=500)

    def cell(value):
        text = "" if value is None else str(value)
        return "'" + text if text[:1] in ("=", "+", "@") else text

    assert table[1:] == [[cell(r[c]) for c in drift_view.CSV_COLUMNS] for r in rows]
    quoted = [c for line in table[1:] for c in line if c.startswith("'")]
    assert {c[1] for c in quoted} == {f[0] for f in FORMULAS}
    only = viewer.get(run_url(DRIFTED) + "/drift.csv", params={"reason": "pending_outbox"})
    body = list(csv.DictReader(io.StringIO(only.text)))
    assert len(body) == sum(1 for r in expected if r["reason"] == "pending_outbox") > 0
    assert {r["reason_label"] for r in body} == {reason_label("pending_outbox")}


def test_the_csv_of_a_run_without_differences_is_its_header(viewer):
    answer = viewer.get(run_url(DRY) + "/drift.csv")
    assert list(csv.reader(io.StringIO(answer.text))) == [list(drift_view.CSV_COLUMNS)]


# ----- access and unknown runs -------------------------------------------------------------
@pytest.mark.parametrize(
    "path", [api(DRIFTED), run_url(DRIFTED) + "/drift.csv", run_url(DRIFTED) + "/drift"]
)
def test_drift_needs_a_reader(anonymous, token, path):
    assert anonymous.get(path).status_code == 401
    denied = anonymous.get(path, headers={"Authorization": f"Bearer {token(DENIED)}"})
    assert denied.status_code == 403
    assert "of-1" not in denied.text


UNKNOWN = "manual__1999-01-01T00:00:00+00:00"


@pytest.mark.parametrize("suffix", ["/drift", "/drift.csv"])
def test_an_unknown_run_is_a_page_for_a_person_and_json_for_the_api(viewer, suffix):
    path = run_url(UNKNOWN) + suffix
    page = viewer.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No such run" in page.text and UNKNOWN in html.unescape(page.text)
    as_json = viewer.get(path, headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and "No sync run" in as_json.json()["detail"]
    answer = viewer.get(api(UNKNOWN), headers=HTML)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"


def test_the_json_rows_are_the_pages_rows(viewer, world):
    data = client.get(viewer, DRIFTED, limit=3)
    assert data["run_id"] == DRIFTED and data["dry_run"] is False
    assert [key(r) for r in data["drift"]] == [key(r) for r in world[2].rows[:3]]
    assert data["next"] and data["filters"] == {}
    assert set(data["drift"][0]) >= {
        "reason",
        "entity",
        "learner",
        "trainee_id",
        "learner_id",
        "field",
        "onefile_value",
        "picsweb_value",
        "detail",
    }
