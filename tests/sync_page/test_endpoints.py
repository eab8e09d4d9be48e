"""The sync page's JSON API and pages over 400 generated daily runs on PostgreSQL:
keyset paging, ordering, filters, one run's details, and the audit search by each key,
each answer compared with plain Python over the rows that were written."""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import quote

import pytest
from sync_page import queries

from tests.sync_page.history import UNIQUE


def _runs(reader, **params):
    answer = reader.get("/onefile-sync/api/runs", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _all_pages(reader, **params):
    rows, cursor, pages = [], None, 0
    while True:
        data = _runs(reader, **params, **({"before": cursor} if cursor else {}))
        rows.extend(data["runs"])
        pages += 1
        cursor = data["next"]
        if cursor is None:
            return rows, pages


def _type_of(history, run):
    summary = history.summaries.get(run["run_id"])
    if summary is None:
        return run["run_id"].split("__")[0]
    return "dry run" if summary["dry_run"] else summary["run_type"]


# ----- run history -------------------------------------------------------------------------
def test_history_pages_through_every_run_newest_first(reader, history):
    rows, pages = _all_pages(reader, limit=75)
    expected = sorted(history.runs, key=lambda r: (r["started_at"], r["run_id"]), reverse=True)
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in expected]
    assert pages == 6  # 404 runs, 75 a page: 5 full pages and a last one of 29


def test_history_default_and_maximum_page_sizes(reader):
    assert len(_runs(reader)["runs"]) == queries.DEFAULT_RUNS
    assert len(_runs(reader, limit=10_000)["runs"]) == queries.MAX_RUNS
    assert reader.get("/onefile-sync/api/runs", params={"limit": 0}).status_code == 422


def test_history_row_holds_the_summary(reader, history):
    run = next(r for r in _runs(reader, limit=5)["runs"] if r["has_summary"])
    summary = json.loads(history.summaries[run["run_id"]]["summary"])
    assert run["counts"] == {k: summary[k] for k in queries.SUMMARY_COUNTS}
    source = history.run(run["run_id"])
    assert run["duration_s"] == (source["ended_at"] - source["started_at"]).total_seconds()
    assert run["type"] == _type_of(history, source)


def test_a_run_without_a_summary_row_is_listed_with_its_type_from_the_run_id(reader, history):
    missing = [r for r in history.runs if r["run_id"] not in history.summaries]
    assert missing
    rows, _ = _all_pages(reader, limit=200)
    by_id = {r["run_id"]: r for r in rows}
    for run in missing:
        shown = by_id[run["run_id"]]
        assert not shown["has_summary"]
        assert shown["type"] == run["run_id"].split("__")[0]
        assert shown["counts"] == dict.fromkeys(queries.SUMMARY_COUNTS, 0)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        (
            {"type": "dry_run"},
            lambda h, r: _type_of(h, r) == "dry run" and r["run_id"] in h.summaries,
        ),
        (
            {"type": "manual"},
            lambda h, r: _type_of(h, r) == "manual" and r["run_id"] in h.summaries,
        ),
        (
            {"type": "backfill"},
            lambda h, r: _type_of(h, r) == "backfill" and r["run_id"] in h.summaries,
        ),
        ({"outcome": "failed"}, lambda h, r: r["outcome"] == "failed"),
        (
            {"type": "scheduled", "outcome": "failed"},
            lambda h, r: (
                r["outcome"] == "failed"
                and _type_of(h, r) == "scheduled"
                and r["run_id"] in h.summaries
            ),
        ),
        ({"outcome": "integration_off"}, lambda h, r: False),
    ],
    ids=["dry-run", "manual", "backfill", "failed", "scheduled-failed", "none"],
)
def test_history_filters(reader, history, params, keep):
    rows, _ = _all_pages(reader, limit=40, **params)
    expected = sorted(
        (r for r in history.runs if keep(history, r)),
        key=lambda r: (r["started_at"], r["run_id"]),
        reverse=True,
    )
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in expected]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"before": "not-a-cursor"}, "bad cursor"),
        ({"before": queries.encode_cursor("x", 1)}, "bad cursor"),
        ({"type": "weekly"}, "unknown run type"),
    ],
)
def test_history_bad_parameters_are_400(reader, params, message):
    answer = reader.get("/onefile-sync/api/runs", params=params)
    assert answer.status_code == 400
    assert message in answer.json()["detail"]


def test_runs_started_at_the_same_instant_are_paged_without_loss(reader, history):
    """The cursor is (started_at, run_id): a page that ends between two runs started at the
    same instant continues with the other one, neither repeated nor lost."""
    twins = [r for r in history.runs if "__twin_" in r["run_id"]]
    assert twins
    for twin in twins:
        pair = sorted(
            (r for r in history.runs if r["started_at"] == twin["started_at"]),
            key=lambda r: r["run_id"],
            reverse=True,
        )
        assert len(pair) == 2
        cursor = queries.encode_cursor(pair[0]["started_at"], pair[0]["run_id"])
        page = _runs(reader, limit=1, before=cursor)["runs"]
        assert [r["run_id"] for r in page] == [pair[1]["run_id"]]


def test_chart_points_cover_the_days_asked_oldest_first(reader, history):
    # The history ends in February 2026 and "now" is later: ask for enough days.
    days = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - history.runs[0]["started_at"]).days + 2
    points = reader.get("/onefile-sync/api/chart", params={"days": days}).json()["points"]
    oldest_first = sorted(history.runs, key=lambda r: (r["started_at"], r["run_id"]))
    assert [p["run_id"] for p in points] == [r["run_id"] for r in oldest_first]
    first = json.loads(history.summaries[history.runs[0]["run_id"]]["summary"])
    assert points[0]["picsweb_changes"] == first["picsweb_fields_changed"]
    assert points[0]["rejects"] == first["rejects"]
    assert reader.get("/onefile-sync/api/chart", params={"days": 0}).status_code == 422


# ----- one run -----------------------------------------------------------------------------
def _busy_run(history):
    """A real (not dry) run with rejects, a conflict and pending outbox rows."""
    for run in history.runs:
        rid = run["run_id"]
        summary = history.summaries.get(rid)
        if (
            summary
            and not summary["dry_run"]
            and any(o["run_id"] == rid for o in history.outbox)
            and any(
                r["run_id"] == rid and r["reason"].startswith("conflict") for r in history.rejects
            )
        ):
            return run
    raise AssertionError("the generated history has no such run")


def test_run_detail(reader, history):
    run = _busy_run(history)
    rid = run["run_id"]
    answer = reader.get(f"/onefile-sync/api/runs/{quote(rid, safe='')}")
    assert answer.status_code == 200
    detail = answer.json()
    assert detail["run"]["run_id"] == rid
    # counts per stage
    stages = {s["stage"]: s["counts"] for s in detail["stages"]}
    expected_stages: dict[str, dict[str, int]] = {}
    for c in history.counts:
        if c["run_id"] == rid:
            expected_stages.setdefault(c["stage"], {})[c["name"]] = c["value"]
    assert stages == expected_stages
    # changes per field, from the audit
    per_field: dict[tuple, int] = {}
    for a in history.audit:
        if a["run_id"] == rid:
            key = (a["system"], a["entity"], a["field"])
            per_field[key] = per_field.get(key, 0) + 1
    got = {(f["system"], f["entity"], f["field"]): f["changes"] for f in detail["field_changes"]}
    assert got == per_field
    assert {f["direction"] for f in detail["field_changes"]} <= set(queries.DIRECTIONS.values())
    # rejects grouped by reason kind, with their rows
    rejects = [r for r in history.rejects if r["run_id"] == rid]
    assert detail["rejects"]["total"] == len(rejects)
    groups = {g["kind"]: g for g in detail["rejects"]["groups"]}
    for kind in {queries.reject_kind(r["reason"]) for r in rejects}:
        wanted = sorted(r["source_id"] for r in rejects if queries.reject_kind(r["reason"]) == kind)
        assert sorted(r["source_id"] for r in groups[kind]["rows"]) == wanted
        assert groups[kind]["count"] == len(wanted)
    # conflicts and pending outbox rows
    assert [c["reason"] for c in detail["conflicts"]] == [
        r["reason"] for r in rejects if r["reason"].startswith("conflict")
    ]
    pending = [
        o for o in history.outbox if o["run_id"] == rid and o["state"] in ("pending", "failed")
    ]
    assert sorted(o["state"] for o in detail["outbox_pending"]) == sorted(
        o["state"] for o in pending
    )


def test_run_page_shows_the_run_and_links_to_airflow_relatively(reader, history):
    rid = _busy_run(history)["run_id"]
    quoted = quote(rid, safe="")
    html = reader.get(f"/onefile-sync/runs/{quoted}", headers={"Accept": "text/html"}).text
    assert f"Run {rid}" in html
    assert f'href="../../dags/onefile_picsweb_sync/runs/{quoted}"' in html
    assert 'href="../static/sync_page.css"' in html
    for group in ("Counts per stage", "Changes per field", "Rejects", "Conflicts", "Outbox rows"):
        assert group in html
    # no absolute link anywhere: the page works under any proxy path
    assert not re.findall(r'(?:href|src|action)="/', html)


def test_a_dry_run_shows_what_it_would_change_or_says_why_not(reader, history):
    dry = next(r for r in history.runs if (history.summaries.get(r["run_id"]) or {}).get("dry_run"))
    detail = reader.get(f"/onefile-sync/api/runs/{quote(dry['run_id'], safe='')}").json()
    assert detail["run"]["type"] == "dry run"
    try:
        import picsweb_sync.run.dry_run  # noqa: F401
    except ImportError:
        assert detail["field_changes"] == []
        assert "not recorded" in detail["field_changes_note"]
    else:
        assert detail["field_changes_note"] is None or "could not" in detail["field_changes_note"]


def test_an_unknown_run_is_404(reader):
    assert reader.get("/onefile-sync/api/runs/manual__1999").status_code == 404
    page = reader.get("/onefile-sync/runs/manual__1999", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "No sync run" in page.text


# ----- history page ------------------------------------------------------------------------
def test_history_page_lists_runs_links_them_and_pages_back(reader, history):
    html = reader.get("/onefile-sync/", headers={"Accept": "text/html"}).text
    newest = max(history.runs, key=lambda r: r["started_at"])
    assert f'href="./runs/{quote(newest["run_id"], safe="")}"' in html
    assert html.count('class="run ') == queries.DEFAULT_RUNS
    assert 'id="changes-chart"' in html and 'src="./static/plotly.min.js"' in html
    older = re.search(r'id="older" href="\./\?([^"]+)"', html).group(1)
    second = reader.get(
        f"/onefile-sync/?{older.replace('&amp;', '&')}", headers={"Accept": "text/html"}
    )
    assert second.status_code == 200
    assert newest["run_id"] not in second.text
    assert second.text.count('class="run ') == queries.DEFAULT_RUNS
    assert not re.findall(r'(?:href|src|action)="/', html + second.text)


def test_static_files(reader):
    plotly = reader.get("/onefile-sync/static/plotly.min.js")
    assert plotly.status_code == 200 and "text/javascript" in plotly.headers["content-type"]
    assert len(plotly.content) > 1_000_000  # the whole library, served locally
    assert reader.get("/onefile-sync/static/app.py").status_code == 404
    assert reader.get("/onefile-sync/static/..%2Fapp.py").status_code == 404


# ----- audit search ------------------------------------------------------------------------
def _audit(reader, **params):
    answer = reader.get("/onefile-sync/api/audit", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _all_audit(reader, **params):
    rows, cursor = [], None
    while True:
        data = _audit(reader, **params, **({"before": cursor} if cursor else {}))
        rows.extend(data["changes"])
        cursor = data["next"]
        if cursor is None:
            return rows, data


def _busiest_trainee(history):
    counts = {}
    for t in history.trainees:
        if t["onefile_learner_id"]:
            counts[t["trainee_id"]] = len(
                history.audit_of(history.keys_of_trainee(t["trainee_id"]))
            )
    return max(counts, key=counts.get)


@pytest.mark.parametrize("by", ["auto", "trainee", "learner", "name"])
def test_audit_search_by_each_learner_key(reader, history, by):
    trainee_id = _busiest_trainee(history)
    trainee = next(t for t in history.trainees if t["trainee_id"] == trainee_id)
    q = {
        "auto": str(trainee_id),
        "trainee": str(trainee_id),
        "learner": str(trainee["onefile_learner_id"]),
        "name": f"{trainee['first_name']} {trainee['surname']}",
    }[by]
    rows, data = _all_audit(reader, q=q, by=by, limit=7)
    matched = {m["trainee_id"] for m in data["learners"]}
    assert trainee_id in matched
    keys = set().union(*(history.keys_of_trainee(t) for t in matched))
    expected = history.audit_of(keys)
    assert expected, "the generated history changed nothing of this learner"
    assert [r["audit_id"] for r in rows] == [a["audit_id"] for a in expected]
    both = {r["direction"] for r in rows}
    assert both == set(queries.DIRECTIONS.values())  # changes both ways are listed
    first = rows[0]
    source = next(a for a in history.audit if a["audit_id"] == first["audit_id"])
    assert (first["old_value"], first["new_value"], first["run_id"]) == (
        source["old_value"],
        source["new_value"],
        source["run_id"],
    )


def test_audit_search_by_onefile_learner_id_finds_only_that_learner(reader, history):
    trainee_id = _busiest_trainee(history)
    learner = next(t for t in history.trainees if t["trainee_id"] == trainee_id)
    data = _audit(reader, q=str(learner["onefile_learner_id"]), by="learner")
    assert [m["trainee_id"] for m in data["learners"]] == [trainee_id]


def test_audit_search_by_a_name_with_like_wildcards(reader, history):
    """``%`` and ``_`` in a name are matched literally, not as wildcards."""
    data = _audit(reader, q="o'brien_100%", by="name")
    assert [m["name"] for m in data["learners"]] == [f"{UNIQUE['first_name']} {UNIQUE['surname']}"]
    assert _audit(reader, q="o'brien_1000", by="name")["learners"] == []
    assert _audit(reader, q="zo", by="name")["learners"][0]["trainee_id"] == 1


def test_a_common_name_matches_at_most_the_bound(reader, history):
    data = _audit(reader, q="a", by="name", limit=5)
    assert len(data["learners"]) == queries.MAX_LEARNERS
    assert data["truncated"] is True


@pytest.mark.parametrize("which", ["picsweb", "onefile"])
def test_audit_search_by_review_id(reader, history, which):
    linked = [a for a in history.audit if a["entity"] == "review"]
    assert linked
    review_id = int(linked[0]["entity_key"])
    review = next(r for r in history.reviews if r["review_id"] == review_id)
    q = review_id if which == "picsweb" else review["onefile_system_id"]
    rows, data = _all_audit(reader, q=str(q), by="review")
    assert [r["review_id"] for r in data["reviews"]] == [review_id]
    keys = {
        ("picsweb", "review", str(review_id)),
        ("onefile", "Review", str(review["onefile_system_id"])),
    }
    assert [r["audit_id"] for r in rows] == [a["audit_id"] for a in history.audit_of(keys)]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"q": ""}, 400),
        ({"q": "   "}, 400),
        ({"q": "x" * 101}, 400),
        ({"q": "Smith", "by": "review"}, 400),
        ({"q": "Smith", "by": "trainee"}, 400),
        ({"q": "1", "by": "everything"}, 400),
        ({"q": "1", "before": "garbage"}, 400),
        ({}, 422),
    ],
)
def test_audit_search_bad_input_is_a_clear_error(reader, params, status):
    answer = reader.get("/onefile-sync/api/audit", params=params)
    assert answer.status_code == status
    assert answer.json()["detail"]


@pytest.mark.parametrize("q", ["999999", "Nobody Here", "99999999999999999999"])
def test_audit_search_for_nobody_finds_nothing(reader, q):
    answer = reader.get("/onefile-sync/api/audit", params={"q": q})
    assert answer.status_code in (200, 400)
    if answer.status_code == 200:
        assert answer.json()["changes"] == [] and answer.json()["learners"] == []


def test_audit_page(reader, history):
    trainee_id = _busiest_trainee(history)
    html = reader.get(
        "/onefile-sync/audit", params={"q": str(trainee_id)}, headers={"Accept": "text/html"}
    ).text
    assert f"(trainee {trainee_id}" in html
    expected = history.audit_of(history.keys_of_trainee(trainee_id))
    assert html.count('class="change"') == min(len(expected), queries.DEFAULT_AUDIT)
    newest = expected[0]
    assert f'href="./runs/{quote(newest["run_id"], safe="")}"' in html
    assert not re.findall(r'(?:href|src|action)="/', html)
    empty = reader.get("/onefile-sync/audit", headers={"Accept": "text/html"})
    assert empty.status_code == 200 and 'name="q"' in empty.text


# ----- a dry run's changes (picsweb_sync.run.dry_run.would_change) ---------------------------
def _would_change_rows():
    import pandas as pd

    return pd.DataFrame(
        {
            "system": ["picsweb", "picsweb", "picsweb", "onefile"],
            "entity": ["trainee_qualification", "trainee_qualification", "review", "LearningAim"],
            "entity_key": ["11", "12", "new (OneFile review 5)", "500011"],
            "field": ["elements_done", "elements_done", "actual_date", "RegistrationNumber"],
            "old": ["1", None, None, None],
            "new": ["2", "3", "2025-01-01", "R1"],
        }
    )


def test_a_dry_run_lists_per_field_what_it_would_change(reader, history, monkeypatch):
    import picsweb_sync.run.dry_run as dry_run

    seen = []

    def would_change(conn, run_id):
        seen.append(run_id)
        return _would_change_rows()

    monkeypatch.setattr(dry_run, "would_change", would_change)
    dry = next(r for r in history.runs if (history.summaries.get(r["run_id"]) or {}).get("dry_run"))
    detail = reader.get(f"/onefile-sync/api/runs/{quote(dry['run_id'], safe='')}").json()
    assert seen == [dry["run_id"]]
    assert detail["field_changes_note"] is None
    got = {
        (f["system"], f["entity"], f["field"], f["direction"]): f["changes"]
        for f in detail["field_changes"]
    }
    assert got == {
        ("onefile", "LearningAim", "RegistrationNumber", "PICSWeb → OneFile"): 1,
        ("picsweb", "review", "actual_date", "OneFile → PICSWeb"): 1,
        ("picsweb", "trainee_qualification", "elements_done", "OneFile → PICSWeb"): 2,
    }
    html = reader.get(
        f"/onefile-sync/runs/{quote(dry['run_id'], safe='')}", headers={"Accept": "text/html"}
    ).text
    assert "what this dry run would change" in html


def test_a_dry_run_whose_changes_cannot_be_read_still_shows(reader, history, monkeypatch):
    import picsweb_sync.run.dry_run as dry_run

    def broken(conn, run_id):
        raise RuntimeError("change set table missing")

    monkeypatch.setattr(dry_run, "would_change", broken)
    dry = next(r for r in history.runs if (history.summaries.get(r["run_id"]) or {}).get("dry_run"))
    answer = reader.get(f"/onefile-sync/api/runs/{quote(dry['run_id'], safe='')}")
    assert answer.status_code == 200
    assert "could not be read (RuntimeError)" in answer.json()["field_changes_note"]
    assert "change set table missing" not in answer.text
