"""Exact comparison of PICSWeb values, in SQL and in Python.

A guarded write applies a change only where the row still holds the value the merge read,
so "still holds" must mean the same value, not one the database's collation calls equal.
:class:`ExactText` (and :class:`ExactChar` for fixed-length columns) compiles a text
comparison per dialect so it is exact whatever the collation; :func:`same` is the NULL-safe
equality the set-based statements use, and :func:`same_value` the same judgement in Python,
for values read back (the dry run's classification).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import CHAR, NCHAR, Column, ColumnElement, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from picsweb_sync.storage.sqlframes import value_kind

MSSQL_EXACT_COLLATION = "Latin1_General_100_BIN2"


class ExactText(FunctionElement):
    """A text expression compared exactly (code point for code point), whatever the
    collation of its column or database. Wrap both sides of the comparison.

    PICSWeb's SQL Server compares text with the database's default collation, which is
    case-insensitive, and T-SQL's ``=`` ignores trailing spaces, so ``'ab' = 'AB '`` holds
    there. Compiled per dialect: on SQL Server ``(expr + N'|') COLLATE
    Latin1_General_100_BIN2`` (a binary collation; the sentinel character keeps trailing
    spaces significant); on PostgreSQL ``expr COLLATE "C"`` (overriding, say, a
    case-insensitive ICU collation); elsewhere (SQLite, binary by default) the expression
    itself.
    """

    inherit_cache = True
    name = "exact_text"

    def __init__(self, expr: ColumnElement) -> None:
        super().__init__(expr)
        self.type = expr.type


class ExactChar(ExactText):
    """:class:`ExactText` for a fixed-length ``CHAR`` column, whose trailing spaces are
    padding, not data (SQL Server and PostgreSQL both pad and compare them away): on SQL
    Server only the binary collation, no sentinel."""

    inherit_cache = True
    name = "exact_char"


def _exact_argument(element: ExactText, compiler: Any, **kw: Any) -> str:
    (argument,) = element.clauses
    return compiler.process(argument.self_group(), **kw)


@compiles(ExactText)
def _exact_default(element: ExactText, compiler: Any, **kw: Any) -> str:
    return _exact_argument(element, compiler, **kw)


@compiles(ExactText, "postgresql")
def _exact_postgresql(element: ExactText, compiler: Any, **kw: Any) -> str:
    return f'{_exact_argument(element, compiler, **kw)} COLLATE "C"'


@compiles(ExactText, "mssql")
def _exact_mssql(element: ExactText, compiler: Any, **kw: Any) -> str:
    return f"({_exact_argument(element, compiler, **kw)} + N'|') COLLATE {MSSQL_EXACT_COLLATION}"


@compiles(ExactChar, "mssql")
def _exact_char_mssql(element: ExactChar, compiler: Any, **kw: Any) -> str:
    return f"{_exact_argument(element, compiler, **kw)} COLLATE {MSSQL_EXACT_COLLATION}"


def same(a: ColumnElement, b: ColumnElement, target: Column) -> ColumnElement:
    """NULL-safe equality that T-SQL understands too (no ``IS NOT DISTINCT FROM``) of two
    values of the PICSWeb column ``target``; text compares exactly (:class:`ExactText`)."""
    if value_kind(target.type) != "text":
        equal = a == b
    else:
        exact = ExactChar if isinstance(target.type, CHAR | NCHAR) else ExactText
        equal = exact(a) == exact(b)
    return or_(equal, a.is_(None) & b.is_(None))


def same_value(a: Any, b: Any, kind: str, *, char: bool = False) -> bool:
    """:func:`same` in Python, for values read back: NULL equals only NULL; text exactly
    (a fixed-length ``CHAR``'s trailing spaces are padding); other kinds by value."""
    if a is None or b is None:
        return a is None and b is None
    if kind == "text":
        a, b = str(a), str(b)
        return a.rstrip(" ") == b.rstrip(" ") if char else a == b
    if kind == "int":
        return int(a) == int(b)
    if kind == "datetime":
        return pd.Timestamp(a) == pd.Timestamp(b)
    if kind == "date":
        return pd.Timestamp(a).date() == pd.Timestamp(b).date()
    return a == b
