"""Dry runs: what a run would change in PICSWeb and OneFile, recorded without changing it.

A run with the ``dry_run`` Param on extracts and merges as usual (staging and the change
sets are the sync's own ``sync_*`` tables). Its loads and pushes then only *read* the two
systems and work out what the real tasks would do at that moment:

- ``load_qualifications`` / ``load_reviews`` classify the PICSWeb change set read-only
  (``picsweb_sync.storage.picsweb_writes.classify_updates``): a change whose row still holds the value the
  merge read *would change*; one whose row holds another value *would conflict* (the same
  ``conflict`` reject as a real load); one already at its new value is ``already_equal``.
  A downloaded review PICSWeb does not hold yet *would be inserted*.
- ``push_learning_aims`` re-checks each aim update against OneFile (read by searches) and
  PICSWeb as they are now, as the real push does just before sending, and keeps the
  fields it *would send*.
- ``push_reviews`` plans each planned upload again from the PICSWeb review as it is now:
  the creates it *would send*. Nothing is put in the outbox, so no later run can ever send
  a dry run's plan; unknown creates of other runs are left for a real run to settle.

Each task records the counts a real one records, under the same names (``fields_changed``,
``reviews_inserted``, ``sent``, ...: in a dry run they say what *would* happen), and what
it would change as change sets of its own, partitioned apart from the merges' own
(``merge_name`` ``dry_run:<what>``, purged with the run's other rows). No PICSWeb table and
no OneFile record is written, no lock is taken and no freshness mark is left.

:func:`would_change` reads those change sets back in the shape of ``sync_audit``, for the
sync page of a run whose ``sync_run_summary.dry_run`` is true.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection

from picsweb_sync.storage import project_tables

PREFIX = "dry_run:"
# merge_name of each dry-run change set (``sync_cs_*`` tables, ``merge_name`` column).
QUALIFICATIONS = (
    PREFIX + "qualifications"
)  # picsweb_updates: fields load_qualifications would change
REVIEWS = PREFIX + "reviews"  # picsweb_updates / picsweb_review_inserts of load_reviews
LEARNING_AIMS = PREFIX + "learning_aims"  # onefile_updates: fields push_learning_aims would send
REVIEW_CREATES = PREFIX + "review_creates"  # review_uploads: creates push_reviews would send
REFLECTED = PREFIX + "review_uploads"  # picsweb_updates: fields push_reviews would copy back

WOULD_CHANGE_COLUMNS = ["system", "entity", "entity_key", "field", "old", "new"]
# The Review body fields listed for a review create (besides the PICSWeb review it is from).
REVIEW_CREATE_FIELDS = {
    "LearnerID": "learner_id",
    "ScheduledFor": "scheduled_for",
    "AssessorID": "assessor_id",
}


# ----- written by the dry-run loads and pushes ---------------------------------------------
def record_load(
    conn: Connection,
    run_id: str,
    merge_name: str,
    would_apply: pd.DataFrame,
    would_insert: pd.DataFrame | None = None,
) -> None:
    """Keep what a dry-run load would write: ``would_apply`` (``picsweb_updates`` rows
    whose row still holds the merge's old value) and, for the review load, the
    ``picsweb_review_inserts`` rows PICSWeb does not hold yet. Replaces the run's earlier
    record (a retried task)."""
    name = PREFIX + merge_name
    updates = would_apply[["table", "key", "field", "old", "new", "rule"]]
    project_tables.replace_change_set(conn, run_id, "picsweb_updates", updates, name)
    if would_insert is not None:
        project_tables.replace_change_set(
            conn, run_id, "picsweb_review_inserts", would_insert, name
        )


def record_aim_updates(conn: Connection, run_id: str, would_send: pd.DataFrame) -> None:
    """Keep the ``onefile_updates`` rows (fields of learning aims) a dry-run push would send."""
    project_tables.replace_change_set(conn, run_id, "onefile_updates", would_send, LEARNING_AIMS)


def record_review_creates(
    conn: Connection,
    run_id: str,
    would_send: pd.DataFrame,
    would_reflect: pd.DataFrame | None = None,
) -> None:
    """Keep the ``review_uploads`` rows (as planned again just now) a dry-run push would
    send, and the ``picsweb_updates`` it would then copy back onto those PICSWeb reviews."""
    project_tables.replace_change_set(conn, run_id, "review_uploads", would_send, REVIEW_CREATES)
    reflected = would_reflect if would_reflect is not None else _no_field_changes()
    reflected = reflected[["table", "key", "field", "old", "new", "rule"]]
    project_tables.replace_change_set(conn, run_id, "picsweb_updates", reflected, REFLECTED)


def _no_field_changes() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object) for c in ["table", "key", "field", "old", "new", "rule"]}
    )


def as_loaded(rows: pd.DataFrame, would_apply: pd.DataFrame, table: str, key: str) -> pd.DataFrame:
    """PICSWeb ``rows`` of ``table`` (key column ``key``) as the real load would leave them:
    each ``picsweb_updates`` change in ``would_apply`` of that table written over them.

    A dry run's push re-checks against PICSWeb *after* its load, as the real push does
    (a learning aim the load links to a qualification is sent to), without the load."""
    rows = rows.reset_index(drop=True).copy()
    changes = would_apply[would_apply["table"] == table]
    position = pd.Series(rows.index, index=rows[key].astype("Int64"))
    for entity_key, field, new in zip(
        changes["key"], changes["field"], changes["new"], strict=True
    ):
        if int(entity_key) in position.index:
            rows.loc[position[int(entity_key)], field] = pd.NA if new is None else new
    return rows


def would_apply(conn: Connection, run_id: str, merge_name: str) -> pd.DataFrame:
    """The ``picsweb_updates`` rows the dry-run load of ``merge_name`` would apply."""
    return project_tables.read_change_set(conn, run_id, "picsweb_updates", PREFIX + merge_name)


# ----- read by the sync page ----------------------------------------------------------------
def would_change(conn: Connection, run_id: str) -> pd.DataFrame:
    """What the dry run ``run_id`` would have changed, one row per field, in the shape of
    the ``sync_audit`` rows a real run writes: ``system`` (``picsweb``/``onefile``),
    ``entity``, ``entity_key``, ``field``, ``old``, ``new`` (values as the audit keeps them:
    text, ISO dates and times, ``None`` for null).

    - PICSWeb field updates: ``entity`` the table (``trainee_qualification``, ``review``),
      ``entity_key`` its key, ``old`` what PICSWeb holds, ``new`` what it would hold.
    - PICSWeb reviews that would be inserted (downloaded from OneFile): ``entity`` ``review``,
      ``entity_key`` ``new (OneFile review <ID>)`` (the PICSWeb key does not exist yet), a row
      per non-null field, ``old`` null, as a real insert is audited.
    - OneFile learning-aim updates: ``entity`` ``LearningAim``, ``entity_key`` the aim's
      ID, ``field`` OneFile's field name, ``old`` null (only blanks are filled), ``new`` the
      value that would be sent.
    - OneFile reviews that would be created: ``entity`` ``Review``, ``entity_key``
      ``new (PICSWeb review <review_id>)``, a row ``created_from_picsweb_review`` (``new``
      the PICSWeb review, as the real audit's) and the ``LearnerID``, ``ScheduledFor`` and
      ``AssessorID`` that would be sent.

    - The fields the review push would then copy back onto the PICSWeb reviews it uploads
      (rule 6 at once: attended ``U``, the officer, a start time), as PICSWeb field updates
      of those reviews. Their link (``onefile_system_id``, OneFile's new ID) is not listed:
      OneFile assigns it.

    Ordered by system, entity, key and field. Empty for a run that was not a dry run (or
    whose loads and pushes did not get that far).
    """
    names = (QUALIFICATIONS, REVIEWS, REFLECTED)
    frames = [_picsweb_updates(conn, run_id, name) for name in names]
    frames += [
        _review_inserts(conn, run_id),
        _aim_updates(conn, run_id),
        _review_creates(conn, run_id),
    ]
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in WOULD_CHANGE_COLUMNS})
    rows = pd.concat(frames, ignore_index=True)
    text = {  # plain objects, None for null (pandas would infer its str dtype, NaN for null)
        "entity_key": [str(key) for key in rows["entity_key"]],
        "old": [project_tables.audit_text(value) for value in rows["old"]],
        "new": [project_tables.audit_text(value) for value in rows["new"]],
        "_key": [str(key).zfill(20) for key in rows["entity_key"]],  # numeric keys in order
    }
    rows = rows.assign(**{name: pd.Series(v, dtype=object) for name, v in text.items()})
    rows = rows.sort_values(["system", "entity", "_key", "field"], kind="stable")
    return pd.DataFrame(
        {name: pd.Series(list(rows[name]), dtype=object) for name in WOULD_CHANGE_COLUMNS}
    )


def _picsweb_updates(conn: Connection, run_id: str, name: str) -> pd.DataFrame:
    changes = project_tables.read_change_set(conn, run_id, "picsweb_updates", name)
    return pd.DataFrame(
        {
            "system": "picsweb",
            "entity": changes["table"],
            "entity_key": changes["key"].astype(object),
            "field": changes["field"],
            "old": changes["old"],
            "new": changes["new"],
        }
    )


def _review_inserts(conn: Connection, run_id: str) -> pd.DataFrame:
    inserts = project_tables.read_change_set(conn, run_id, "picsweb_review_inserts", REVIEWS)
    key = _new_keys("OneFile review", inserts["onefile_system_id"])
    values = inserts.astype(object).where(inserts.notna(), None).assign(entity_key=key)
    fields = values.melt(id_vars="entity_key", var_name="field", value_name="new")
    fields = fields[fields["new"].notna()]
    return fields.assign(system="picsweb", entity="review", old=None)


def _aim_updates(conn: Connection, run_id: str) -> pd.DataFrame:
    changes = project_tables.read_change_set(conn, run_id, "onefile_updates", LEARNING_AIMS)
    return pd.DataFrame(
        {
            "system": "onefile",
            "entity": changes["entity"],
            "entity_key": changes["entity_id"].astype(object),
            "field": changes["field"],
            "old": None,  # as the real push audits: sent only where OneFile is blank
            "new": changes["new"],
        }
    )


def _review_creates(conn: Connection, run_id: str) -> pd.DataFrame:
    uploads = project_tables.read_change_set(conn, run_id, "review_uploads", REVIEW_CREATES)
    key = _new_keys("PICSWeb review", uploads["review_id"])
    rows = [pd.DataFrame({"entity_key": key, "field": "created_from_picsweb_review"})]
    rows[0]["new"] = uploads["review_id"].astype(object).to_numpy()
    for field, column in REVIEW_CREATE_FIELDS.items():
        frame = pd.DataFrame({"entity_key": key, "field": field})
        frame["new"] = uploads[column].astype(object).to_numpy()
        rows.append(frame)
    return pd.concat(rows, ignore_index=True).assign(system="onefile", entity="Review", old=None)


def _new_keys(what: str, ids: pd.Series) -> pd.Series:
    """``new (<what> <id>)``: the key of a record that does not exist yet."""
    return pd.Series([f"new ({what} {int(i)})" for i in ids], index=ids.index, dtype=object)
