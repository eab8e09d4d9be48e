"""The run summary's pure parts: reject kinds, thresholds, the run's note and page link."""

from __future__ import annotations

import pytest

from picsweb_sync.rules.drift import REASONS
from picsweb_sync.run.note_text import NOTE_MAX_CHARS, drift_line, run_page_url, summary_text
from picsweb_sync.run.summary import SUMMARY_KEYS, compact, drift_by_reason, reject_kind
from picsweb_sync.run.thresholds import THRESHOLD_DEFAULTS, crossed_thresholds, thresholds_failure


def counts(**values) -> dict:
    summary = dict.fromkeys(SUMMARY_KEYS, 0) | {"dry_run": False, "rejects_by_kind": {}}
    return summary | values


OFF = dict.fromkeys(THRESHOLD_DEFAULTS)  # every threshold off


def drift(**left: int) -> dict:
    """A drift report's counts as the summary holds them: every reason, 0 unless given."""
    return {"drift": dict.fromkeys(REASONS, 0) | left}


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("RegistrationNumber: 60 characters, longer than PICSWeb's ...", "RegistrationNumber"),
        ("not a JSON object: null", "not a JSON object"),
        (
            "no officer with a OneFile ID (review officer 3, main officer none)",
            "no officer with a OneFile ID",
        ),
        ("OneFile refused: HTTP 400 bad date", "OneFile refused"),
        ("conflict: title changed in PICSWeb since the merge read it (now 'a')", "conflict"),
        # the first of " (" and ":" ends the kind, whichever comes first
        ("a (b: c)", "a"),
        ("x: y (z)", "x"),
        (
            "OneFile learner 7 is in no synced organisation",
            "OneFile learner 7 is in no synced organisation",
        ),
        ("", "unknown"),
        (None, "unknown"),
        (": nothing before the colon", "unknown"),
    ],
)
def test_reject_kind_is_the_reason_up_to_its_first_bracket_or_colon(reason, kind):
    assert reject_kind(reason) == kind


# Rows: 10 learners + 20 aims + 5 assessors + 15 reviews = 50 rows extracted.
ROWS = {
    "learners_extracted": 10,
    "learning_aims_extracted": 20,
    "assessors_extracted": 5,
    "reviews_extracted": 15,
}


@pytest.mark.parametrize(
    ("summary", "params", "crossed"),
    [
        pytest.param(counts(), {}, [], id="a clean run with the defaults"),
        pytest.param(counts(**ROWS), {}, [], id="rows, no rejects"),
        pytest.param(
            counts(**ROWS, rejects=3), OFF | {"max_rejects": 3}, [], id="exactly at max_rejects"
        ),
        pytest.param(
            counts(**ROWS, rejects=4),
            OFF | {"max_rejects": 3},
            ["rejects 4 > max_rejects 3"],
            id="one over max_rejects",
        ),
        pytest.param(
            counts(**ROWS, rejects=1),
            OFF | {"max_rejects": 0},
            ["rejects 1 > max_rejects 0"],
            id="max_rejects 0: any reject",
        ),
        pytest.param(counts(**ROWS, rejects=1000), OFF, [], id="every threshold null: off"),
        pytest.param(
            counts(**ROWS, rejects=5),
            OFF | {"max_reject_share": 0.1},
            [],
            id="exactly at the reject share (5 of 50 = 10 %)",
        ),
        pytest.param(
            counts(**ROWS, rejects=6),
            OFF | {"max_reject_share": 0.1},
            ["rejects 6 of 50 rows (12 %) > max_reject_share 10 %"],
            id="over the reject share",
        ),
        pytest.param(
            counts(learners_extracted=800, rejects=42),
            OFF | {"max_rejects": 40, "max_reject_share": 0.05},
            [
                "rejects 42 > max_rejects 40",
                "rejects 42 of 800 rows (5.3 %) > max_reject_share 5 %",
            ],
            id="count and share both crossed, each named",
        ),
        pytest.param(
            counts(learners_extracted=10000, rejects=501),
            OFF | {"max_reject_share": 0.05},
            ["rejects 501 of 10000 rows (5.01 %) > max_reject_share 5 %"],
            id="just over the share: shown with the digits that tell it apart",
        ),
        pytest.param(
            counts(rejects=2),
            OFF | {"max_reject_share": 0.5},
            ["rejects 2 of 0 rows > max_reject_share 50 %"],
            id="rejects with no row extracted: the share is crossed",
        ),
        pytest.param(
            counts(), OFF | {"max_reject_share": 0.0}, [], id="0 of 0 rows: nothing to share"
        ),
        pytest.param(
            counts(**ROWS), OFF | {"max_reject_share": 0.0}, [], id="share 0 and no rejects"
        ),
        pytest.param(
            counts(**ROWS, rejects=1),
            OFF | {"max_reject_share": 0},
            ["rejects 1 of 50 rows (2 %) > max_reject_share 0 %"],
            id="share 0: any reject",
        ),
        pytest.param(
            counts(conflicts=50, picsweb_fields_changed=1000),
            OFF | {"max_conflicts": 50},
            [],
            id="exactly at max_conflicts",
        ),
        pytest.param(
            counts(conflicts=51, picsweb_fields_changed=1000),
            OFF | {"max_conflicts": 50},
            ["conflicts 51 > max_conflicts 50"],
            id="over max_conflicts",
        ),
        pytest.param(
            counts(conflicts=1, picsweb_fields_changed=9),
            OFF | {"max_conflict_share": 0.1},
            [],
            id="exactly at the conflict share (1 of 10 tried)",
        ),
        pytest.param(
            counts(conflicts=2, picsweb_fields_changed=8),
            OFF | {"max_conflict_share": 0.1},
            ["conflicts 2 of 10 PICSWeb changes tried (20 %) > max_conflict_share 10 %"],
            id="over the conflict share",
        ),
        pytest.param(
            counts(conflicts=3),
            OFF | {"max_conflict_share": 0.5},
            ["conflicts 3 of 3 PICSWeb changes tried (100 %) > max_conflict_share 50 %"],
            id="every change a conflict",
        ),
        pytest.param(
            counts(), OFF | {"max_conflict_share": 0.0}, [], id="no change tried: no share"
        ),
        pytest.param(
            counts(**ROWS, rejects=101, conflicts=51, picsweb_fields_changed=100),
            {},
            [
                "rejects 101 > max_rejects 100",
                "rejects 101 of 50 rows (202 %) > max_reject_share 10 %",
                "conflicts 51 > max_conflicts 50",
                "conflicts 51 of 151 PICSWeb changes tried (33.8 %) > max_conflict_share 10 %",
            ],
            id="the defaults when the Params are absent",
        ),
        pytest.param(
            counts(learners_extracted=1000, rejects=100, conflicts=50, picsweb_fields_changed=450),
            {},
            [],
            id="at every default exactly",
        ),
        # ----- max_unexplained: the drift report's differences no reason explains -----
        pytest.param(counts(**drift()), {}, [], id="a drift report, no difference"),
        pytest.param(
            counts(**drift(not_linked=40, reject=3, pending_outbox=2)),
            {},
            [],
            id="explained differences only: never crossed",
        ),
        pytest.param(
            counts(**drift(unexplained=1, not_linked=4)),
            {},
            ["unexplained differences 1 > max_unexplained 0"],
            id="one unexplained with the default 0",
        ),
        pytest.param(
            counts(**drift(unexplained=1)),
            OFF | {"max_unexplained": 0},
            ["unexplained differences 1 > max_unexplained 0"],
            id="max_unexplained 0: any unexplained",
        ),
        pytest.param(
            counts(**drift(unexplained=3)),
            OFF | {"max_unexplained": 3},
            [],
            id="exactly at max_unexplained",
        ),
        pytest.param(
            counts(**drift(unexplained=4)),
            OFF | {"max_unexplained": 3},
            ["unexplained differences 4 > max_unexplained 3"],
            id="one over max_unexplained",
        ),
        pytest.param(
            counts(**drift(unexplained=500)),
            OFF | {"max_unexplained": None},
            [],
            id="max_unexplained null: off",
        ),
        pytest.param(counts(), {}, [], id="no drift report (a dry run): nothing to cross"),
        pytest.param(
            counts(**ROWS, rejects=6, **drift(unexplained=2)),
            OFF | {"max_rejects": 5, "max_unexplained": 0},
            ["rejects 6 > max_rejects 5", "unexplained differences 2 > max_unexplained 0"],
            id="with another threshold: each named, unexplained last",
        ),
    ],
)
def test_crossed_thresholds(summary, params, crossed):
    assert crossed_thresholds(summary, params) == crossed


def test_the_failure_text_names_every_threshold_and_says_the_data_was_synced():
    text = thresholds_failure(["rejects 4 > max_rejects 3", "conflicts 9 > max_conflicts 1"])
    assert text.startswith("thresholds crossed: rejects 4 > max_rejects 3; conflicts 9 >")
    assert "synced" in text


@pytest.mark.parametrize(
    ("run_id", "base_url", "url"),
    [
        (
            "scheduled__2026-03-20T02:00:00+00:00",
            "https://airflow.example.org/",
            "https://airflow.example.org/onefile-sync/runs/scheduled__2026-03-20T02%3A00%3A00%2B00%3A00",
        ),
        ("manual run/1", "http://h:8080", "http://h:8080/onefile-sync/runs/manual%20run%2F1"),
        ("r1", "", "/onefile-sync/runs/r1"),
    ],
)
def test_the_run_page_url_quotes_the_run_id_under_the_base_url(run_id, base_url, url):
    assert run_page_url(run_id, base_url) == url


def test_without_a_configured_base_url_the_page_link_is_relative(monkeypatch):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert run_page_url("r 1") == "/onefile-sync/runs/r%201"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://af.example.org")
    assert run_page_url("r 1") == "https://af.example.org/onefile-sync/runs/r%201"


FULL = counts(
    learners_extracted=40,
    learning_aims_extracted=80,
    assessors_extracted=6,
    reviews_extracted=120,
    picsweb_fields_changed=12,
    picsweb_reviews_created=3,
    onefile_fields_changed=5,
    onefile_reviews_created=1,
    rejects=4,
    conflicts=1,
    outbox_pending=0,
    rejects_by_kind={"RegistrationNumber": 3, "not a JSON object": 1},
)
PAGE = "https://af.example.org/onefile-sync/runs/r1"


def test_the_note_of_a_successful_run_names_every_number_and_links_the_page():
    text = summary_text(FULL, "success", PAGE)
    assert text.splitlines() == [
        "✅ synced  ",
        "extracted 40 learners, 80 aims, 6 assessors, 120 reviews  ",
        "PICSWeb: 12 fields changed, 3 reviews created · OneFile: 5 fields changed, "
        "1 review created  ",
        "4 rejects (RegistrationNumber: 3, not a JSON object: 1) · 1 conflict · "
        "0 outbox rows pending  ",
        f"[details]({PAGE})",
    ]


@pytest.mark.parametrize(
    ("summary", "outcome", "kwargs", "says", "not_says"),
    [
        (
            FULL | {"dry_run": True},
            "success",
            {},
            ["🧪 dry run (nothing written)", "would change PICSWeb: 12 fields changed"],
            ["✅ synced\n"],
        ),
        (
            FULL,
            "failed",
            {"failure": "load_reviews (try 3): RuntimeError: boom\npush_reviews: failed"},
            ["❌ failed", "load_reviews (try 3): RuntimeError: boom push_reviews: failed"],
            ["✅"],
        ),
        (
            FULL,
            "failed",
            {"thresholds": ["rejects 4 > max_rejects 3"], "failure": "thresholds crossed: x"},
            ["⚠️ thresholds crossed: rejects 4 > max_rejects 3 (the data was synced)"],
            ["❌", "thresholds crossed: x"],
        ),
        (counts(), "integration_off", {}, ["⏸️ integration off", "0 rejects · 0 conflicts"], []),
        (
            counts(rejects=1, rejects_by_kind={"a": 1}, outbox_pending=2, conflicts=2),
            "success",
            {},
            ["1 reject (a: 1) · 2 conflicts · 2 outbox rows pending"],
            [],
        ),
    ],
    ids=["dry run", "failed", "thresholds", "integration off", "singular and plural"],
)
def test_the_note_says_how_the_run_ended(summary, outcome, kwargs, says, not_says):
    text = summary_text(summary, outcome, PAGE, **kwargs)
    for part in says:
        assert part in text
    for part in not_says:
        assert part not in text
    assert text.endswith(f"[details]({PAGE})")


def test_the_note_shows_the_commonest_kinds_and_counts_the_rest():
    kinds = {f"kind {i}": 10 - i for i in range(7)}
    text = summary_text(counts(rejects=sum(kinds.values()), rejects_by_kind=kinds), "success", PAGE)
    assert "(kind 0: 10, kind 1: 9, kind 2: 8, kind 3: 7, 3 more kinds)" in text


def test_the_note_fits_airflow_s_1000_characters_and_keeps_its_link():
    long = counts(rejects_by_kind={"k" * 400: 1, "j" * 400: 2})
    text = summary_text(long, "failed", PAGE, failure="x" * 5000, thresholds=["t" * 900])
    assert len(text) <= NOTE_MAX_CHARS
    assert text.endswith(f"[details]({PAGE})")
    short = summary_text(long, "failed", PAGE, failure="y" * 5000)
    assert len(short) <= NOTE_MAX_CHARS
    assert "y" * 200 in short and "y" * 400 not in short  # the failure is cut, not all of it


def test_the_xcom_copy_keeps_the_commonest_reject_kinds_and_sums_the_rest():
    kinds = {f"OneFile learner {i} is in no synced organisation": 1 for i in range(30)}
    full = counts(rejects=32, rejects_by_kind={"not a JSON object": 2} | kinds)
    small = compact(full, kinds=3)
    assert list(small["rejects_by_kind"].values()) == [2, 1, 1, 28]
    assert list(small["rejects_by_kind"])[-1] == "other kinds"
    assert sum(small["rejects_by_kind"].values()) == 32
    assert {k: v for k, v in small.items() if k != "rejects_by_kind"} == {
        k: v for k, v in full.items() if k != "rejects_by_kind"
    }
    assert compact(counts(rejects_by_kind={"a": 1}), kinds=1) == counts(rejects_by_kind={"a": 1})


# ----- the drift report's counts ------------------------------------------------------------
def test_the_drift_counts_read_in_the_report_s_order_unexplained_first():
    stored = {"drift": {"pending_outbox": 1, "not_linked": 2, "unexplained": 3, "new_one": 4}}
    assert list(drift_by_reason(stored)) == [
        "unexplained",
        "not_linked",
        "pending_outbox",
        "new_one",  # a reason added later still shows, after the known ones
    ]
    assert drift_by_reason(counts()) is None  # no report: not the same as no difference
    assert drift_by_reason(counts(**drift())) == dict.fromkeys(REASONS, 0)


@pytest.mark.parametrize(
    ("summary", "line"),
    [
        pytest.param(counts(), None, id="no drift report: no line"),
        pytest.param(
            counts(**drift()),
            "drift: no difference left between OneFile and PICSWeb",
            id="nothing left",
        ),
        pytest.param(
            counts(**drift(not_linked=2, pending_outbox=1)),
            "drift: 3 differences left, 0 unexplained (not linked 2, pending in the outbox 1)",
            id="explained only, in the report's order",
        ),
        pytest.param(
            counts(**drift(changed_since=1)),
            "drift: 1 difference left, 0 unexplained (changed since the run read it 1)",
            id="one difference",
        ),
        pytest.param(
            counts(**drift(unexplained=2, reject=1, rule_keeps_picsweb=3)),
            "⚠️ drift: 2 unexplained (a defect of the sync), 6 differences left in all "
            "(set aside as a reject 1, rule keeps PICSWeb's value 3)",
            id="unexplained named first",
        ),
        pytest.param(
            counts(**drift(unexplained=1)),
            "⚠️ drift: 1 unexplained (a defect of the sync), 1 difference left in all",
            id="only unexplained",
        ),
    ],
)
def test_the_note_s_drift_line(summary, line):
    assert drift_line(summary) == line


def test_the_note_shows_the_drift_line_before_its_link():
    text = summary_text(FULL | drift(not_linked=2, pending_outbox=1), "success", PAGE)
    assert text.splitlines()[-2:] == [
        "drift: 3 differences left, 0 unexplained (not linked 2, pending in the outbox 1)  ",
        f"[details]({PAGE})",
    ]
    assert "drift" not in summary_text(FULL, "success", PAGE)  # a dry run has no report
    crossed = summary_text(
        FULL | drift(unexplained=1),
        "failed",
        PAGE,
        thresholds=["unexplained differences 1 > max_unexplained 0"],
    )
    assert crossed.startswith("⚠️ thresholds crossed: unexplained differences 1 > max_unexplained 0")
    assert "⚠️ drift: 1 unexplained" in crossed
