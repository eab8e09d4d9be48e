"""Change sets: what the merges decided (docs/architecture.md), kept in the staging
database for the loads and pushes, partitioned by run and by the merge that wrote them."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import BigInteger, Column, Integer, String, Table, UnicodeText, select
from sqlalchemy.engine import Connection

from picsweb_sync.storage.project_tables.common import as_objects, partitioned
from picsweb_sync.storage.project_tables.picsweb_changes import (
    field_change_columns,
    gather_field_values,
    review_insert_columns,
    spread_field_changes,
)
from picsweb_sync.storage.sqlframes import read_frame, replace_partition


def _change_set(name: str, *columns: Column) -> Table:
    """A change set table, partitioned by run and by the merge that wrote it: the
    qualification and review merges both decide PICSWeb field changes, and rerunning one
    must not wipe the other's."""
    return partitioned(
        name,
        Column("merge_name", String(30), nullable=False),
        *columns,
        by=("run_id", "merge_name"),
    )


CHANGE_SETS: dict[str, Table] = {
    "picsweb_updates": _change_set("sync_cs_picsweb_update", *field_change_columns()),
    "picsweb_review_inserts": _change_set("sync_cs_review_insert", *review_insert_columns()),
    "onefile_updates": _change_set(
        "sync_cs_onefile_update",
        Column("change_no", Integer, nullable=False),
        Column("entity", String(40), nullable=False),
        Column("entity_id", BigInteger, nullable=False),
        Column("field", String(64), nullable=False),
        Column("old", UnicodeText),  # JSON: OneFile wire values are strings or ints
        Column("new", UnicodeText),
        Column("rule", String(64)),
    ),
    "review_uploads": _change_set(
        "sync_cs_review_upload",
        Column("review_id", BigInteger, nullable=False),
        Column("trainee_id", BigInteger),
        Column("learner_id", BigInteger),
        Column("organisation_id", BigInteger),
        Column("assessor_id", BigInteger),
        Column("visit_type_id", Integer),
        Column("scheduled_for", String(20)),
        Column("visit_from", String(20)),
        Column("visit_to", String(20)),
    ),
}


def _json(series: pd.Series) -> pd.Series:
    return as_objects(series).map(json.dumps)


def replace_change_set(
    conn: Connection, run_id: str, kind: str, frame: pd.DataFrame, merge_name: str = "all"
) -> int:
    """Replace this run's change set ``kind`` (a key of :data:`CHANGE_SETS`) written by
    ``merge_name`` by ``frame``.

    ``frame`` has the shape of docs/architecture.md for that kind.
    """
    if kind == "picsweb_updates":
        frame = spread_field_changes(frame)
    elif kind == "onefile_updates":
        frame = frame.assign(change_no=range(len(frame)), old=_json(frame["old"]))
        frame = frame.assign(new=_json(frame["new"]))
    partition = {"run_id": run_id, "merge_name": merge_name}
    return replace_partition(conn, CHANGE_SETS[kind], partition, frame)


def read_change_set(
    conn: Connection, run_id: str, kind: str, merge_name: str = "all"
) -> pd.DataFrame:
    """This run's change set ``kind`` of ``merge_name`` in the shape
    :func:`replace_change_set` was given."""
    table = CHANGE_SETS[kind]
    columns = [c for c in table.c if c.name not in ("run_id", "merge_name", "created_at")]
    order = [table.c.change_no] if "change_no" in table.c else []
    where = (table.c.run_id == run_id) & (table.c.merge_name == merge_name)
    frame = read_frame(conn, select(*columns).where(where).order_by(*order))
    if kind == "picsweb_updates":
        return pd.DataFrame(
            {
                "table": frame["table_name"],
                "key": frame["entity_key"],
                "field": frame["field"],
                "old": gather_field_values(frame, "old"),
                "new": gather_field_values(frame, "new"),
                "rule": frame["rule"],
            }
        )
    if kind == "onefile_updates":
        decoded = {side: frame[side].map(json.loads).astype(object) for side in ("old", "new")}
        return frame.drop(columns="change_no").assign(**decoded)
    return frame
