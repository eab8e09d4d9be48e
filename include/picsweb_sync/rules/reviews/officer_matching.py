"""Officer matching (``shared/contract/picsweb-schema.md``, "Matching"): each OneFile
assessor's PICSWeb officer, for rule 6's ``officer_id``.

Decisions the contract leaves open, made here once: matching starts from the review's
``AssessorID`` itself: an officer whose ``onefile_id`` is that ID matches even when the
OneFile user was not extracted this run (archived, another role or organisation, a rejected
row). Only an ID no officer claims is matched by email, which needs the staged assessor's
email. Two officers with that ``onefile_id``, or (with none) two officers with that email,
match nobody; emails compare trimmed and case-insensitively; a blank email matches nothing;
an assessor staged twice whose copies give two different emails is matched by ID only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def match_officers(assessors: pd.DataFrame, officers: pd.DataFrame) -> pd.DataFrame:
    """Each staged OneFile assessor's PICSWeb officer: ``assessor_id``, ``officer_id``
    (Int64, NA when none) and ``matched_by`` (``onefile_id``, ``email``, ``ambiguous``,
    ``none``). :func:`match_assessor_ids` for the IDs of ``assessors`` themselves."""
    return match_assessor_ids(assessors["assessor_id"], assessors, officers)


def match_assessor_ids(
    assessor_ids: pd.Series, assessors: pd.DataFrame, officers: pd.DataFrame
) -> pd.DataFrame:
    """The PICSWeb officer of each distinct OneFile assessor ID in ``assessor_ids`` (nulls
    dropped), in the shape of :func:`match_officers`.

    ``officer.onefile_id`` first, straight from the ID: the assessor need not be among the
    staged ``assessors`` (archived, another role or organisation, a rejected row). Only an
    ID no officer claims is matched by email, which needs the staged assessor's email, and
    only to a single officer. An assessor staged more than once (two organisations, two
    roles) has one email: its copies' non-blank emails must agree, else it is ambiguous.
    """
    ids = pd.Series(assessor_ids, dtype="Int64").dropna().drop_duplicates()
    result = pd.DataFrame({"assessor_id": ids.to_numpy()})
    by_id = _candidates(
        result.merge(
            officers[["officer_id", "onefile_id"]].dropna(),
            left_on="assessor_id",
            right_on="onefile_id",
        )
    )
    emails, disagreeing = _assessor_emails(assessors)
    officer_emails = officers.assign(email_key=_email_key(officers["email"]))
    by_email = _candidates(
        result.merge(emails, on="assessor_id").merge(
            officer_emails[["officer_id", "email_key"]].dropna(), on="email_key"
        )
    )
    result = result.merge(by_id, on="assessor_id", how="left")
    result = result.merge(by_email, on="assessor_id", how="left", suffixes=("", "_email"))
    id_count = result["candidates"].fillna(0)
    email_count = result["candidates_email"].fillna(0)
    email_unsure = result["assessor_id"].isin(disagreeing).to_numpy(dtype=bool)
    use_email = (id_count == 0) & (email_count == 1)
    officer_id = (
        result["officer_id"]
        .where(id_count == 1)
        .fillna(result["officer_id_email"].where(use_email))
    )
    matched_by = np.select(
        [
            id_count == 1,
            use_email,
            (id_count > 1) | (email_count > 1) | ((id_count == 0) & email_unsure),
        ],
        ["onefile_id", "email", "ambiguous"],
        default="none",
    )
    return pd.DataFrame(
        {
            "assessor_id": result["assessor_id"].astype("Int64"),
            "officer_id": officer_id.astype("Int64"),
            "matched_by": pd.Series(matched_by, index=result.index, dtype="string"),
        }
    ).reset_index(drop=True)


def _assessor_emails(assessors: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(``assessor_id``/``email_key`` of each staged assessor with one non-blank email,
    the IDs whose copies give different emails)."""
    keys = (
        pd.DataFrame(
            {
                "assessor_id": assessors["assessor_id"].astype("Int64"),
                "email_key": _email_key(assessors["email"]),
            }
        )
        .dropna()
        .drop_duplicates()
    )
    disagree = keys["assessor_id"].duplicated(keep=False)
    return keys[~disagree], keys.loc[disagree, "assessor_id"].drop_duplicates()


def _candidates(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per assessor: one candidate officer and how many there are."""
    return pairs.groupby("assessor_id", as_index=False).agg(
        officer_id=("officer_id", "first"), candidates=("officer_id", "size")
    )


def _email_key(emails: pd.Series) -> pd.Series:
    key = emails.astype("string").str.strip().str.casefold()
    return key.mask(key.eq(""))
