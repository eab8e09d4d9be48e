"""Rules 1-4 of the daily sync: qualification matching, elements, registration and
certificate fields (``shared/contract/picsweb-schema.md``, "Matching" and "Rules").

Decisions the contract leaves open, made here once:
- qualification codes match after trimming and ignoring case (SQL Server's default
  collation compares them that way in PICSWeb itself);
- a qualification already linked to a OneFile aim is never re-linked by code, and a code
  that two qualifications (or two aims) share links nothing: a wrong link would copy one
  qualification's dates onto another, while a missing one is only counted;
- an aim that two qualifications both claim by ID is skipped and counted, for the same reason;
- the same aim staged more than once (two organisations' searches return it, or two pages)
  is one aim when its copies agree in every value but ``organisation_id`` and ``raw``
  (text compared trimmed, blank and null alike, as the rules see it); the copy of the
  lowest organisation is kept and the others counted (``aims_duplicate_copies``). Copies
  that really differ (OneFile changed the aim between two searches) are skipped for this
  run and counted (``aims_conflicting_copies``): which one is current is unknown, and a
  wrong one would be written to both systems; the next run's copies agree again. The
  same holds for staged learners (counted once) and, in ``reviews``, for reviews;
- rule 1 takes OneFile's counts only where OneFile has one: a null ``TotalElements`` is
  "not known", not "zero", so it never wipes PICSWeb's value;
- rules 2-4 compare text after trimming (case kept: ``ab1`` and ``AB1`` differ and OneFile
  wins) and write the trimmed value; dates compare as UK dates (the parsed frames already
  hold UK dates). Blank is :func:`~picsweb_sync.rules.blank.is_blank`, so a PICSWeb
  ``'  '`` is filled from OneFile, and OneFile ``''`` against PICSWeb null changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from picsweb_sync.onefile.names import ONEFILE_ENTITY, ONEFILE_NAMES
from picsweb_sync.onefile.ukdates import date_to_onefile
from picsweb_sync.rules import changes
from picsweb_sync.rules.blank import is_blank

TABLE = "trainee_qualification"
LINK_RULE = "match_learning_aim"
ELEMENTS_RULE = "rule1_elements"
ELEMENT_FIELDS = ("total_elements", "elements_done")
# Rules 2-4: (column, the same in PICSWeb and staging; rule; is it a date).
FILL_RULES: tuple[tuple[str, str, bool], ...] = (
    ("registration_number", "rule2_registration_number", False),
    ("registration_date", "rule2_registration_date", True),
    ("certificate_applied_date", "rule3_certificate_applied_date", True),
    ("certificate_received_date", "rule4_certificate_received_date", True),
)
PICSWEB_RULES = [LINK_RULE, ELEMENTS_RULE, *(rule for _, rule, _ in FILL_RULES)]
ONEFILE_RULES = [rule for _, rule, _ in FILL_RULES]
_ENTITY = "learning_aims"
_OF, _PW = "_onefile", "_picsweb"


@dataclass(frozen=True)
class QualificationMerge:
    """What rules 1-4 decided: PICSWeb field changes, OneFile aim updates, and counts."""

    picsweb_updates: pd.DataFrame
    onefile_updates: pd.DataFrame
    counts: dict[str, int]


def merge_qualifications(
    learners: pd.DataFrame,
    learning_aims: pd.DataFrame,
    trainees: pd.DataFrame,
    qualifications: pd.DataFrame,
    units: pd.DataFrame,
) -> QualificationMerge:
    """Match OneFile aims to PICSWeb qualifications and apply rules 1-4 to each pair.

    ``learners``/``learning_aims`` are parsed OneFile frames; ``trainees``,
    ``qualifications`` and ``units`` are the PICSWeb tables ``trainee``,
    ``trainee_qualification`` and ``trainee_qualification_unit``. A qualification linked
    by code in this merge gets its rules applied in the same merge (with the values it
    has now), alongside the update that records the link.
    """
    learner_ids = learners["learner_id"].dropna().drop_duplicates()
    linked_learners = learner_ids.isin(trainees["onefile_learner_id"].dropna())
    learning_aims, duplicates, conflicting = distinct_copies(learning_aims, "learning_aim_id")
    links, link_updates, counts = match_learning_aims(learning_aims, trainees, qualifications)
    pairs = linked_pairs(links, learning_aims, qualifications)
    with_units = pairs["tq_id"].isin(units["tq_id"])
    picsweb = [link_updates, elements_from_onefile(pairs[~with_units])]
    onefile = []
    for column, rule, is_date in FILL_RULES:
        to_picsweb, to_onefile = fill_blank_then_onefile_wins(pairs, column, rule, is_date)
        picsweb.append(to_picsweb)
        onefile.append(to_onefile)
    picsweb_updates = changes.concat(picsweb)
    onefile_updates = changes.concat(onefile)
    counts |= {
        "aims_duplicate_copies": duplicates,
        "aims_conflicting_copies": conflicting,
        "learners_linked": int(linked_learners.sum()),
        "learners_unlinked": int((~linked_learners).sum()),
        "qualifications_with_units": int(with_units.sum()),
        **changes.rule_counts(PICSWEB_RULES, picsweb_updates, "picsweb_"),
        **changes.rule_counts(ONEFILE_RULES, onefile_updates, "onefile_"),
    }
    return QualificationMerge(picsweb_updates, onefile_updates, counts)


def linked_pairs(
    links: pd.DataFrame, learning_aims: pd.DataFrame, qualifications: pd.DataFrame
) -> pd.DataFrame:
    """Each linked aim beside its qualification: OneFile's columns suffixed ``_onefile``,
    PICSWeb's ``_picsweb`` (the frame rules 1-4 and the drift report compare)."""
    return links.merge(learning_aims, on="learning_aim_id").merge(
        qualifications, on="tq_id", suffixes=(_OF, _PW)
    )


def distinct_copies(frame: pd.DataFrame, key: str) -> tuple[pd.DataFrame, int, int]:
    """One row per ``key`` of a staged frame that may hold an entity more than once.

    Copies that agree in every value but ``organisation_id`` and ``raw`` (text compared
    trimmed, a blank string as null) are one: the copy of the lowest ``organisation_id``
    is kept. A ``key`` whose copies differ is dropped altogether. Returns (the rows kept,
    in their original order; how many identical copies were dropped; how many keys had
    differing copies).
    """
    frame = frame.reset_index(drop=True)
    compared = [name for name in frame.columns if name not in ("organisation_id", "raw")]
    values = pd.DataFrame({name: _comparable(frame[name]) for name in compared})
    if "organisation_id" in frame.columns:
        values = values.loc[frame.sort_values("organisation_id", kind="stable").index]
    distinct = values.drop_duplicates()
    differing = distinct[key].duplicated(keep=False)
    kept = frame.loc[distinct.index[~differing].sort_values()]
    return kept, len(frame) - len(distinct), int(distinct.loc[differing, key].nunique())


def _comparable(values: pd.Series) -> pd.Series:
    """Values as the rules compare them: text trimmed, blank text null; others as they are."""
    if not isinstance(values.dtype, pd.StringDtype):
        return values
    trimmed = values.str.strip()
    return trimmed.mask(trimmed.eq("")).astype("string")


def match_learning_aims(
    learning_aims: pd.DataFrame, trainees: pd.DataFrame, qualifications: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Pair aims with qualifications: by ``onefile_learning_aim_id``, else by code.

    Returns (``learning_aim_id``/``tq_id`` pairs, the ``match_learning_aim`` updates that
    record new links, counts). Null keys never match: pandas would pair NA with NA.
    The counts are :func:`aim_link_outcomes`' outcomes, counted.
    """
    outcomes = aim_link_outcomes(learning_aims, trainees, qualifications)
    by_code = outcomes[outcomes["outcome"].eq(LINKED_BY_CODE)]
    link_updates = changes.picsweb_updates(
        TABLE,
        by_code["tq_id"],
        "onefile_learning_aim_id",
        pd.Series(None, index=by_code.index, dtype=object),
        by_code["learning_aim_id"],
        LINK_RULE,
    )
    made = outcomes["outcome"].value_counts()
    counts = {f"aims_{outcome}": int(made.get(outcome, 0)) for outcome in LINK_OUTCOMES}
    linked = outcomes["outcome"].isin((LINKED_BY_ID, LINKED_BY_CODE))
    links = outcomes.loc[linked, ["learning_aim_id", "tq_id"]].reset_index(drop=True)
    links["tq_id"] = links["tq_id"].astype("Int64")
    return links, link_updates, counts


# What became of each aim's link, in the order they are tried (also the count names).
LINKED_BY_ID, CLAIMED_TWICE, LINKED_BY_CODE = "linked_by_id", "claimed_twice", "linked_by_code"
AMBIGUOUS_CODE, UNMATCHED, LEARNER_UNLINKED = "ambiguous_code", "unmatched", "learner_unlinked"
LINK_OUTCOMES = (
    LINKED_BY_ID, CLAIMED_TWICE, LINKED_BY_CODE, AMBIGUOUS_CODE, UNMATCHED, LEARNER_UNLINKED
)  # fmt: skip


def aim_link_outcomes(
    learning_aims: pd.DataFrame, trainees: pd.DataFrame, qualifications: pd.DataFrame
) -> pd.DataFrame:
    """Per aim (one row per ``learning_aim_id`` of ``learning_aims``): ``outcome`` (one of
    :data:`LINK_OUTCOMES`) and ``tq_id`` (the qualification it is linked to, else NA).

    A qualification already linked to the aim by ID is its pair, unless two claim it
    (``claimed_twice``: neither is paired). Otherwise an aim of a linked trainee is paired
    by code with the one unlinked qualification of that trainee with the same code, where
    neither side has another candidate (else ``ambiguous_code``; none: ``unmatched``). An
    aim whose learner no trainee claims is ``learner_unlinked``.
    """
    by_id = learning_aims[["learning_aim_id"]].merge(
        qualifications[["tq_id", "onefile_learning_aim_id"]].dropna(),
        left_on="learning_aim_id",
        right_on="onefile_learning_aim_id",
    )[["learning_aim_id", "tq_id"]]
    claimed_twice = by_id["learning_aim_id"].duplicated(keep=False)
    rest = learning_aims[~learning_aims["learning_aim_id"].isin(by_id["learning_aim_id"])]
    with_trainee = rest[["learning_aim_id", "learner_id", "code"]].merge(
        trainees[["trainee_id", "onefile_learner_id"]].dropna(),
        left_on="learner_id",
        right_on="onefile_learner_id",
    )
    by_code, ambiguous = _match_by_code(with_trainee, qualifications)
    outcome = pd.Series(LEARNER_UNLINKED, index=learning_aims.index, dtype="string")
    aim = learning_aims["learning_aim_id"]
    outcome[aim.isin(with_trainee["learning_aim_id"])] = UNMATCHED
    outcome[aim.isin(ambiguous)] = AMBIGUOUS_CODE
    outcome[aim.isin(by_code["learning_aim_id"])] = LINKED_BY_CODE
    outcome[aim.isin(by_id.loc[claimed_twice, "learning_aim_id"])] = CLAIMED_TWICE
    outcome[aim.isin(by_id.loc[~claimed_twice, "learning_aim_id"])] = LINKED_BY_ID
    pairs = pd.concat([by_id[~claimed_twice], by_code], ignore_index=True)
    tq = aim.map(pairs.set_index("learning_aim_id")["tq_id"]) if len(pairs) else None
    return pd.DataFrame(
        {
            "learning_aim_id": aim.astype("Int64"),
            "outcome": outcome,
            "tq_id": pd.Series(tq, index=aim.index, dtype="Int64"),
        }
    ).reset_index(drop=True)


def _match_by_code(
    aims: pd.DataFrame, qualifications: pd.DataFrame
) -> tuple[pd.DataFrame, pd.Series]:
    """Link each aim (of a linked trainee) to the one unlinked qualification of that
    trainee with the same code, where neither side has another candidate.

    Returns (the ``learning_aim_id``/``tq_id`` links, the IDs of the aims that were ambiguous).
    """
    free = qualifications[qualifications["onefile_learning_aim_id"].isna()]
    free = free.assign(code_key=_code_key(free["qualification_code"]))
    candidates = aims.assign(code_key=_code_key(aims["code"])).dropna(subset="code_key")
    candidates = candidates.merge(
        free[["tq_id", "trainee_id", "code_key"]].dropna(), on=["trainee_id", "code_key"]
    )
    per_aim = candidates.groupby("learning_aim_id")["tq_id"].transform("size")
    per_qualification = candidates.groupby("tq_id")["learning_aim_id"].transform("size")
    single = (per_aim == 1) & (per_qualification == 1)
    ambiguous = candidates.loc[~single, "learning_aim_id"].drop_duplicates()
    return candidates.loc[single, ["learning_aim_id", "tq_id"]], ambiguous


def _code_key(codes: pd.Series) -> pd.Series:
    """Codes as compared: trimmed, case-folded, blank -> NA (a blank code matches nothing)."""
    key = codes.astype("string").str.strip().str.casefold()
    return key.mask(key.eq(""))


def elements_from_onefile(pairs: pd.DataFrame) -> pd.DataFrame:
    """Rule 1: ``total_elements`` and ``elements_done`` take OneFile's values.

    ``pairs`` must already exclude qualifications with units (their units drive progress
    in PICSWeb). A OneFile null is unknown and changes nothing; equal values neither.
    """
    updates = []
    for field in ELEMENT_FIELDS:
        onefile, picsweb = pairs[field + _OF], pairs[field + _PW]
        change = onefile.notna() & changes.differs(picsweb, onefile)
        updates.append(
            changes.picsweb_updates(
                TABLE,
                pairs.loc[change, "tq_id"],
                field,
                picsweb[change],
                onefile[change],
                ELEMENTS_RULE,
            )
        )
    return changes.concat(updates)


def fill_blank_then_onefile_wins(
    pairs: pd.DataFrame,
    column: str,
    rule: str,
    is_date: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rules 2-4 for one field: the blank side is filled from the other; where both have
    a value and they differ, OneFile's wins; equal values change nothing.

    Text is compared and written trimmed; dates go to OneFile as midnight UTC.
    Returns (``picsweb_updates`` rows, ``onefile_updates`` rows in OneFile's wire form).
    """
    picsweb, onefile = pairs[column + _PW], pairs[column + _OF]
    wire = date_to_onefile if is_date else changes.objects
    picsweb_value, onefile_value = picsweb, onefile
    if not is_date:
        picsweb_value, onefile_value = _trimmed(picsweb), _trimmed(onefile)
    picsweb_blank, onefile_blank = is_blank(picsweb), is_blank(onefile)
    to_picsweb = ~onefile_blank & (picsweb_blank | changes.differs(picsweb_value, onefile_value))
    to_onefile = onefile_blank & ~picsweb_blank
    return (
        changes.picsweb_updates(
            TABLE,
            pairs.loc[to_picsweb, "tq_id"],
            column,
            picsweb[to_picsweb],
            onefile_value[to_picsweb],
            rule,
        ),
        changes.onefile_updates(
            ONEFILE_ENTITY[_ENTITY],
            pairs.loc[to_onefile, "learning_aim_id"],
            ONEFILE_NAMES[_ENTITY][column],
            wire(onefile[to_onefile]),
            wire(picsweb_value[to_onefile]),
            rule,
        ),
    )


def _trimmed(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip()
