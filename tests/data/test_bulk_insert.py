"""The bulk path (``sqlframes.bulk_insert``): every awkward value reads back exactly as it was
written, on PostgreSQL (``COPY``, through both drivers) and SQLite (``executemany``), and
exactly as the plain one-``INSERT``-per-row path leaves it; SQL Server's batches stay within
its limits and compile as T-SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Time,
    UnicodeText,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from picsweb_sync.storage.engines import engine_for_url
from picsweb_sync.storage.sqlframes import (
    MSSQL_MAX_PARAMETERS,
    MSSQL_MAX_VALUES_ROWS,
    bulk_insert,
    copy_text,
    multirow_inserts,
    plain,
    read_frame,
    to_records,
)

from .test_mssql_compile import tsql


def naive_utc(*fields: int) -> dt.datetime:
    """An instant in the project's convention: naive UTC."""
    return dt.datetime(*fields, tzinfo=dt.UTC).replace(tzinfo=None)


meta = MetaData()
values_table = Table(
    "t_bulk_values",
    meta,
    Column("n", Integer, nullable=False),  # row order
    Column("text", UnicodeText),
    Column("code", CHAR(1)),
    Column("big", BigInteger),
    Column("day", Date),
    Column("at", Time),
    Column("instant", DateTime),
    Column("flag", Boolean),
)
STAMP = naive_utc(2026, 3, 29, 1, 0, 0, 123456)
defaults_table = Table(
    "t_bulk_defaults",
    meta,
    Column("n", Integer, nullable=False),
    Column("kind", String(10), nullable=False, default="plain"),
    Column("created_at", DateTime, nullable=False, default=lambda: STAMP),
)

# (case, column, value written); each reads back as the value itself (None for NULL).
AWKWARD = [
    ("null text", "text", None),
    ("empty text, not NULL", "text", ""),
    ("blank text", "text", "   "),
    ("tab", "text", "a\tb"),
    ("newline", "text", "line 1\nline 2"),
    ("carriage return and CRLF", "text", "a\rb\r\nc"),
    ("backslash", "text", "C:\\path\\to\\file"),
    ("backslash-N, COPY's NULL marker", "text", "\\N"),
    ("backslash-dot, COPY's end marker", "text", "\\."),
    ("trailing backslash", "text", "ends with \\"),
    ("escape-looking text", "text", "\\t is not a tab, \\n is not a newline"),
    ("single and double quotes", "text", 'O\'Brien said "hi"'),
    ("commas and semicolons", "text", "a,b;c|d"),
    ("unicode", "text", "Siân Ó Briain, Łukasz, Zoë, 東京, مرحبا, 🎓"),
    ("combining characters", "text", "e\u0301 n\u0303"),
    ("very long text", "text", "Level 3 Diploma in Engineering \\\t\n" * 4000),
    ("text NULL is not the string None", "text", "None"),
    ("text 'nan' stays text", "text", "nan"),
    ("one-char code", "code", "U"),
    ("NULL code", "code", None),
    ("bigint max", "big", 2**63 - 1),
    ("bigint min", "big", -(2**63)),
    ("bigint beyond float precision", "big", 9_007_199_254_740_993),
    ("zero", "big", 0),
    ("NULL bigint", "big", None),
    ("date", "day", dt.date(2026, 3, 29)),
    ("early date", "day", dt.date(1900, 1, 1)),
    ("late date", "day", dt.date(9999, 12, 31)),
    ("NULL date", "day", None),
    ("midnight", "at", dt.time(0, 0)),
    ("time with microseconds", "at", dt.time(23, 59, 59, 999999)),
    ("NULL time", "at", None),
    (
        "UTC instant just before the spring change",
        "instant",
        naive_utc(2026, 3, 29, 0, 59, 59, 999999),
    ),
    ("UTC instant at the spring change", "instant", naive_utc(2026, 3, 29, 1, 0)),
    ("UTC instant in the repeated autumn hour", "instant", naive_utc(2026, 10, 25, 1, 30)),
    ("instant with whole seconds", "instant", naive_utc(2026, 10, 25, 0, 59, 59)),
    ("NULL instant", "instant", None),
    ("true", "flag", True),
    ("false", "flag", False),
    ("NULL flag", "flag", None),
]


DTYPES = {
    "n": "Int64",
    "text": "string",
    "code": "string",
    "big": "Int64",
    "day": object,
    "at": object,
    "instant": "datetime64[us]",
    "flag": "boolean",
}


def _frame(cases: list[tuple[str, str, object]]) -> pd.DataFrame:
    """One row per case: the case's value in its column, NULL elsewhere (except ``n``)."""
    rows = [{"n": i, column: value} for i, (_, column, value) in enumerate(cases)]
    return pd.DataFrame(
        {
            name: pd.Series([row.get(name) for row in rows], dtype=dtype)
            for name, dtype in DTYPES.items()
        }
    )


def _read(engine: Engine, table: Table = values_table) -> pd.DataFrame:
    with engine.connect() as conn:
        return read_frame(conn, select(table).order_by(table.c.n))


@pytest.fixture(params=["sqlite", "postgres-psycopg2", "postgres-psycopg3"])
def bulk_engine(request) -> Iterator[Engine]:
    """An empty database with the test tables: SQLite, and PostgreSQL through psycopg2
    (the engines' driver) and psycopg 3 (both drivers' ``COPY``)."""
    if request.param == "sqlite":
        db_url = request.getfixturevalue("sqlite_url")
    else:
        db_url = request.getfixturevalue("pg_url")
        assert db_url.startswith("postgresql+psycopg2://")
        if request.param == "postgres-psycopg3":
            db_url = db_url.replace("postgresql+psycopg2://", "postgresql+psycopg://")
    engine = engine_for_url(db_url)
    meta.create_all(engine)
    yield engine
    engine.dispose()


def _as_written(value: object) -> object:
    """A value read back into a frame as the Python value that was written."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else plain(value)


def test_every_awkward_value_reads_back_exactly(bulk_engine):
    """One row per case (table ``AWKWARD``): its value, of its type, in its column, and
    NULL in every other column (nothing leaks, NULL stays NULL, ``''`` stays ``''``)."""
    with bulk_engine.begin() as conn:
        assert bulk_insert(conn, values_table, _frame(AWKWARD)) == len(AWKWARD)
    back = _read(bulk_engine)
    assert back["n"].tolist() == list(range(len(AWKWARD)))
    wrong = []
    for (case, column, value), (_, row) in zip(AWKWARD, back.iterrows(), strict=True):
        found = _as_written(row[column])
        if found != value or type(found) is not type(value):
            wrong.append((case, value, found))
        leaked = [c for c in DTYPES if c not in ("n", column) and _as_written(row[c]) is not None]
        if leaked:
            wrong.append((case, "leaked into", leaked))
    assert wrong == []


def test_bulk_leaves_the_rows_the_plain_insert_leaves(bulk_engine):
    """All the awkward rows at once, through the bulk path and through one ``INSERT`` per
    row as the data layer did before it: the two tables read back identical."""
    frame = _frame(AWKWARD)
    plain = Table("t_bulk_plain", MetaData(), *(c.copy() for c in values_table.c))
    plain.create(bulk_engine)
    with bulk_engine.begin() as conn:
        bulk_insert(conn, values_table, frame)
        for record in to_records(frame, plain):
            conn.execute(insert(plain), record)
    bulk, one_by_one = _read(bulk_engine), _read(bulk_engine, plain)
    pd.testing.assert_frame_equal(bulk, one_by_one)
    assert len(bulk) == len(AWKWARD)


def test_aware_instants_are_stored_as_naive_utc(bulk_engine):
    london = dt.timezone(dt.timedelta(hours=1))  # BST
    frame = pd.DataFrame(
        {"n": [1, 2], "instant": [dt.datetime(2026, 3, 29, 2, 30, tzinfo=london), None]}
    )
    with bulk_engine.begin() as conn:
        bulk_insert(conn, values_table, frame)
    assert _read(bulk_engine)["instant"].tolist()[0] == pd.Timestamp("2026-03-29 01:30")


def test_missing_columns_get_the_python_defaults(bulk_engine):
    """``COPY`` never runs SQLAlchemy's defaults: the bulk path fills them itself."""
    with bulk_engine.begin() as conn:
        bulk_insert(conn, defaults_table, pd.DataFrame({"n": [1, 2]}))
        bulk_insert(conn, defaults_table, pd.DataFrame({"n": [3], "kind": ["given"]}))
    back = _read(bulk_engine, defaults_table)
    assert back["kind"].tolist() == ["plain", "plain", "given"]
    assert back["created_at"].tolist() == [pd.Timestamp(STAMP)] * 3


def test_a_failed_transaction_leaves_no_bulk_rows(bulk_engine):
    with pytest.raises(RuntimeError), bulk_engine.begin() as conn:
        bulk_insert(conn, values_table, _frame(AWKWARD))
        raise RuntimeError("the task failed after its bulk insert")
    assert _read(bulk_engine).empty


def test_a_refused_row_raises_what_a_statement_would_and_writes_nothing(bulk_engine):
    """A NOT NULL column given NULL: SQLAlchemy's ``IntegrityError`` on every path (the
    ``COPY`` error is reported as a failed statement is), and no row of the batch stays."""
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    with pytest.raises(IntegrityError), bulk_engine.begin() as conn:
        bulk_insert(conn, values_table, frame)
    assert _read(bulk_engine).empty


def test_bulk_insert_begins_the_transaction_a_statement_would(bulk_engine):
    """On a connection with no transaction yet (SQLAlchemy's autobegin), the rows commit
    with the caller's ``commit()`` and vanish without it."""
    with bulk_engine.connect() as conn:
        bulk_insert(conn, values_table, _frame(AWKWARD[:3]))
        conn.commit()
        bulk_insert(conn, values_table, _frame(AWKWARD[3:6]))
    assert _read(bulk_engine)["n"].tolist() == [0, 1, 2]


def test_an_empty_frame_inserts_nothing(bulk_engine):
    with bulk_engine.begin() as conn:
        assert bulk_insert(conn, values_table, _frame([])) == 0
    assert _read(bulk_engine).empty


def test_unknown_columns_are_refused_before_anything_is_written(bulk_engine):
    with pytest.raises(ValueError, match="no column"), bulk_engine.begin() as conn:
        bulk_insert(conn, values_table, pd.DataFrame({"n": [1], "typo": ["x"]}))
    assert _read(bulk_engine).empty


def test_postgresql_loads_by_copy_not_by_insert_statements(bulk_engine):
    """The fast path really is taken: no ``INSERT`` reaches PostgreSQL for the rows (SQLite
    gets its ``executemany``)."""
    statements: list[str] = []
    event.listen(bulk_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with bulk_engine.begin() as conn:
        bulk_insert(conn, values_table, _frame(AWKWARD))
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    if bulk_engine.dialect.name == "postgresql":
        assert inserts == []
    else:
        assert len(inserts) == 1
    with bulk_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(values_table)).scalar() == len(AWKWARD)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "\\N"),
        ("", ""),
        ("a\tb", "a\\tb"),
        ("a\nb\rc", "a\\nb\\rc"),
        ("\\N", "\\\\N"),
        ("back\\slash", "back\\\\slash"),
    ],
    ids=["null", "empty", "tab", "newline-cr", "null-marker-text", "backslash"],
)
def test_copy_text_escapes_what_copy_would_misread(text, expected):
    frame = pd.DataFrame({"n": [1], "text": pd.array([text], dtype="string")})
    assert copy_text(frame, values_table) == f"1\t{expected}\n"


@pytest.mark.parametrize("width", [1, 3, 8, 30])
@pytest.mark.parametrize("rows", [1, 1000, 1001, 2500])
def test_sql_server_batches_stay_within_its_limits(width, rows):
    wide = Table(
        f"t_wide_{width}",
        MetaData(),
        *(Column(f"c{i}", Integer) for i in range(width)),
    )
    frame = pd.DataFrame({f"c{i}": range(rows) for i in range(width)})
    statements = list(multirow_inserts(wide, frame))
    compiled = [stmt.compile(dialect=mssql.dialect()) for stmt in statements]
    sizes = [len(c.params) // width for c in compiled]
    assert sum(sizes) == rows  # every row, once
    assert all(size <= MSSQL_MAX_VALUES_ROWS for size in sizes)
    assert all(len(c.params) < MSSQL_MAX_PARAMETERS for c in compiled)


def test_sql_server_batches_compile_as_tsql():
    statements = list(multirow_inserts(values_table, _frame(AWKWARD[:5])))
    assert len(statements) == 1
    sql = " ".join(tsql(statements[0]).split())
    assert sql.startswith("INSERT INTO t_bulk_values (n, text, code, big, day, at, instant, flag)")
    assert sql.count("), (") == 4  # five rows in one VALUES list
